"""fit_style.py: a style fitted to unlabelled captchas recovers how they were drawn; style files load."""
import json
import os
import re

import numpy as np
import pytest

from conftest import run_script
from generate_captcha import SETTINGS_FILE, generate_split
from model import load_checkpoint
from parameters import ParameterError, make_parameters, read_style_file
from style_distance import distance, features

# How the "site" draws: hollow glyphs turned up to 20 degrees, a green border (what the fit must find).
SITE = {"style": "kaptcha", "image_width": 120, "image_height": 40, "charset": "2345678abcdefgmnpwxy",
        "captcha_length": 4, "font_sizes": (28, 30), "left_margin": (6.0, 10.0), "outline_width": 1,
        "rotation": 20.0, "ripple": (0.0, 0.0), "border_color": "#00aa00", "image_format": "png"}


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    params = make_parameters({**SITE, "seed": 7})
    generate_split(params, str(root / "site"), "site", 120)
    os.remove(root / "site" / SETTINGS_FILE)  # a real site's folder says nothing of how it was drawn
    return root / "site"


def fit(folder, style_file, *flags):
    return run_script("fit_style.py", str(folder), f"--charset={SITE['charset']}", "--captcha_length=4",
                      f"--fit_file={style_file}", "--fit_images=60", "--fit_minutes=5", *flags, timeout=600)


@pytest.mark.slow
def test_fit_recovers_how_a_folder_was_drawn(site_folder, tmp_path):
    style_file = tmp_path / "site.style.json"
    result = fit(site_folder, style_file, "--fit_rounds=2")
    fitted = make_parameters({"style_file": str(style_file)})
    assert (fitted.image_width, fitted.image_height, fitted.image_format) == (120, 40, "png")  # measured
    assert fitted.border_width == 1 and fitted.border_color == "#00aa00"
    assert fitted.outline_width >= 1  # the hollow letters
    assert abs(fitted.rotation - SITE["rotation"]) <= 5
    found = re.search(r"distance ([\d.]+) \(nearest preset \w+\) -> ([\d.]+) ", result.stdout)
    assert found and float(found.group(2)) < float(found.group(1)) / 4
    assert os.path.isfile(tmp_path / "site.style.png")


@pytest.mark.slow
def test_the_same_seed_fits_the_same_style(site_folder, tmp_path):
    first, again = tmp_path / "first.style.json", tmp_path / "again.style.json"
    result = fit(site_folder, first, "--fit_rounds=1", "--fit_images=30", "--fit_candidates=2")
    fit(site_folder, again, "--fit_rounds=1", "--fit_images=30", "--fit_candidates=2")
    assert json.loads(again.read_text()) == json.loads(first.read_text())
    # the candidates: the fit itself, then the plain look placed as this site places its text (its search, or
    # the start itself when that search is the fit)
    candidates = [tmp_path / f"first.style.candidate{number}.json" for number in (1, 2)]
    assert json.loads(candidates[0].read_text()) == json.loads(first.read_text())
    assert json.loads(candidates[1].read_text()) != json.loads(first.read_text())
    assert re.search(r"candidate 2: (searched from|preset) plain placed as measured \(", result.stdout)


def test_a_style_file_applies_under_the_flags_and_bad_ones_are_one_line_errors(tmp_path):
    path = tmp_path / "style.json"
    path.write_text(json.dumps({"style": "kaptcha", "rotation": 7.0, "outline_width": 2, "seed": 99}))
    params = make_parameters({"style_file": str(path), "outline_width": 1})
    assert (params.style, params.rotation, params.outline_width, params.seed) == ("kaptcha", 7.0, 1, 0)
    assert params.image_width == 200  # the kaptcha preset, under the file
    path.write_text(json.dumps({"rotation": 7.0, "no_such_knob": 1}))
    with pytest.raises(ParameterError, match="names unknown settings: no_such_knob"):
        make_parameters({"style_file": str(path)})
    with pytest.raises(ParameterError, match="cannot be read"):
        make_parameters({"style_file": str(tmp_path / "missing.json")})


def test_the_distance_is_zero_for_the_same_captchas_and_grows_with_a_change():
    rng = np.random.default_rng(0)
    images = np.full((40, 32, 96, 3), 255, np.uint8)
    for image in images:
        x = rng.integers(10, 60)
        image[8:24, x:x + 20] = 0
    same = distance(features(images), features(images))[0]
    shifted, parts = distance(features(np.roll(images, 10, axis=1)), features(images))
    assert same == 0 and shifted > 0.3 and parts["layout"] > 0.2 and parts["shapes"] > 1


@pytest.mark.slow
def test_one_command_from_unlabelled_captchas_to_a_model_and_again_goes_on(site_folder, tmp_path):
    """site_model.py with tiny budgets: every step runs, writes its part, and a second run redoes none."""
    work = tmp_path / "site"
    command = [str(site_folder), f"--charset={SITE['charset']}", "--captcha_length=4", f"--site_dir={work}",
               "--fit_images=30", "--fit_rounds=1", "--fit_minutes=0.3", "--site_train_count=400",
               "--site_minutes=0.15", "--site_self_minutes=0.1", "--site_candidates=2", "--choose_count=300",
               "--choose_minutes=0.1", "--choose_mix_share=0"]
    first = run_script("site_model.py", *command, timeout=900)
    assert "[6/6] list the captchas to label first" in first.stdout
    for part in ("candidates/fit.json", "candidates/fit.png", "candidates/fit.candidate2.json", "trials/trial2/model",
                 "style.json", "style.png", "generated/train", "generated_model/last.pt", "model/best.pt"):
        assert (work / part).exists(), part
    chosen = read_style_file(str(work / "style.json"))
    candidates = [str(work / "candidates" / f"fit.candidate{k}.json") for k in (1, 2)]
    assert sorted(chosen.pop("style_mix")) == candidates  # the two tried, mixed (whatever their scores)
    assert chosen in [{key: value for key, value in read_style_file(candidate).items() if key != "style_mix"}
                      for candidate in candidates]
    assert json.loads((work / "generated" / "train" / ".generator.json").read_text())["font_variety"] == 0.5
    listed = (work / "model" / "report" / "site_least_sure.tsv").read_text().splitlines()
    assert len(listed) >= 10
    assert load_checkpoint(str(work / "model" / "last.pt"))["params"]["pseudo_surest"] == 0.2  # steady surest too
    tried = json.loads((work / "trials" / "trials.json").read_text())["trials"]  # 6 s trials: some trained 6 s more
    longer = sum(trial["minutes"] == 0.2 for trial in tried)
    assert longer >= 1 and all(trial["minutes"] in (0.1, 0.2) for trial in tried)
    # the training took what the longer trials did, down to half its minutes
    assert load_checkpoint(str(work / "generated_model" / "last.pt"))["params"]["time_budget"] == pytest.approx(
        max(0.15 - 0.1 * longer, 0.075))
    again = run_script("site_model.py", *command, timeout=900)
    assert "[1/6] fit styles to the site's captchas: done already" in again.stdout
    assert "[2/6] try them: the styles whose trial models read the site steadiest: done already" in again.stdout
    assert again.stdout.count("is over") == 2  # both trainings were finished: resumed, nothing more to do


def test_a_style_file_given_to_site_model_replaces_the_fit(tmp_path):
    from PIL import Image
    from site_model import steps
    site = tmp_path / "site"
    site.mkdir()
    for number in range(3):  # a site of 240x80 captchas: read at 120x40 (about 4,800 pixels), as a labelled folder
        Image.new("RGB", (240, 80), "white").save(site / f"u{number}.png")
    style = tmp_path / "by_eye.json"
    style.write_text(json.dumps({"style": "kaptcha"}))
    params = make_parameters({"site_style_file": str(style), "charset": SITE["charset"], "captcha_length": "4"})
    plan = steps(str(site), params, str(tmp_path / "work"))
    title, _, _, done = plan[0]
    assert done and "no fit" in title and plan[1][3]  # neither a fit nor a trial of candidates
    assert all(f"--style_file={style}" in step[2] for step in plan[2:4])  # generation and training draw with it
    assert "--font_variety" not in " ".join(plan[2][2])  # a style given keeps its fonts (a fitted one: below)
    for training in plan[3:5]:  # both trainings read at the site's model size, whatever size the style draws
        assert "--image_width=120" in training[2] and "--image_height=40" in training[2]


def test_trials_trained_longer_take_their_minutes_from_the_training(tmp_path):
    from site_model import training_minutes
    params = make_parameters({"site_minutes": 20, "choose_minutes": 2})
    assert training_minutes(params, str(tmp_path)) == 20  # no trials (a style given, or not tried yet)
    trials = tmp_path / "trials.json"
    trials.write_text(json.dumps({"choose_minutes": 2, "trials": [{"minutes": 4}, {"minutes": 2}, {"minutes": 4}]}))
    assert training_minutes(params, str(tmp_path)) == 16
    assert training_minutes(make_parameters({"site_minutes": 20, "choose_minutes": 3}), str(tmp_path)) == 16
    assert training_minutes(make_parameters({"site_minutes": 6, "choose_minutes": 2}), str(tmp_path)) == 3


@pytest.mark.slow
def test_fit_presets_are_the_only_starts_and_a_wrong_name_is_one_line(site_folder):
    from fit_style import Scorer, fit_base, nearest_presets, real_images
    params = make_parameters({"charset": SITE["charset"], "captcha_length": "4", "fit_images": 10})
    base = fit_base(str(site_folder), params)
    scorer = Scorer(real_images(str(site_folder), (120, 40), 10, 0), params)
    starts = nearest_presets(scorer, (120, 40), base, ("gregwar", "securimage"))
    assert sorted(name for _, name, _ in starts) == ["gregwar", "securimage"]
    result = run_script("fit_style.py", str(site_folder), f"--charset={SITE['charset']}", "--captcha_length=4",
                        "--fit_presets=kaptcha,no_such_style", check=False)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "--fit_presets names no text style: no_such_style" in result.stderr


def drawn(settings, count=24):
    """uint8 (count, H, W, 3): captchas drawn with `settings`, as read back from their files."""
    from fit_style import Scorer
    params = make_parameters({"charset": "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", "captcha_length": "4",
                              "fit_images": count, **settings})
    return Scorer(np.zeros((1, 8, 8, 3), np.uint8), params).images(params)


@pytest.mark.parametrize("coloured", [True, False])
def test_the_layout_of_plain_text_is_measured_from_its_ink(coloured):
    from site_layout import measured_layout
    layout = {"style": "plain", "image_width": 140, "image_height": 48, "font_sizes": (34,), "char_pitch": 28.0,
              "char_jitter": 0.0, "row_shift": (6.0, 6.0), "row_shift_y": (0.0, 0.0), "rotation": 0.0,
              "color_per_char": coloured, "text_color_min": 0, "text_color_max": 200}
    found = measured_layout(drawn(layout), 4)
    assert 34 * 0.8 <= found["font_sizes"][1] <= 34 * 1.2
    assert 28 * 0.85 <= found["char_pitch"] <= 28 * 1.15
    assert abs(sum(found["row_shift"]) / 2 - 6) <= 4 and abs(sum(found["row_shift_y"]) / 2) <= 4
    assert found["color_per_char"] == coloured


@pytest.mark.parametrize("text, paper", [((100, 220), (20, 60)), ((0, 120), (200, 250))])
def test_the_colours_of_text_and_paper_are_measured(text, paper):
    from site_layout import measured_layout
    colours = {"style": "plain", "image_width": 140, "image_height": 48, "font_sizes": (34,), "char_pitch": 28.0,
               "color_per_char": True, "noise_lines": (0, 0), "text_color_min": text[0], "text_color_max": text[1],
               "background_min": paper[0], "background_max": paper[1]}
    found = measured_layout(drawn(colours, count=40), 4)
    assert abs(found["text_color_min"] - text[0]) <= 25 and abs(found["text_color_max"] - text[1]) <= 25
    assert abs(found["background_min"] - paper[0]) <= 25 and abs(found["background_max"] - paper[1]) <= 25


def test_one_pixel_lines_are_not_text_and_leave_no_layout_to_measure():
    from site_layout import measured_layout
    lines = np.full((12, 40, 120, 3), 255, np.uint8)
    lines[:, 10::7, :] = 0  # (rows 10, 17, ... of black: noise lines a pixel wide, no glyph)
    lines[:, :, 30::11] = 0
    assert measured_layout(lines, 4) == {}
    lines[:, 15:30, 20:100] = 0  # a thick block is ink
    assert measured_layout(lines, 4)["font_sizes"][1] > 15


def test_the_measured_layout_is_tried_whatever_its_distance():
    from fit_style import MEASURED_START, candidates
    style = {name: make_parameters({"rotation": float(number)}) for number, name in enumerate("abcdefgh")}
    starts = [(0.5, "seed", style["a"]), (0.6, "plain", style["b"]), (0.7, "gregwar", style["c"]),
              (0.9, MEASURED_START, style["d"])]
    searched = [(0.2, style["e"], "seed"), (0.3, style["f"], "plain"), (0.35, style["g"], "gregwar"),
                (0.4, style["h"], MEASURED_START)]
    names = [name.split(" (")[0] for name, _ in candidates(searched, starts)]
    assert names[:4] == ["searched from seed", f"searched from {MEASURED_START}", "preset seed",
                         f"preset {MEASURED_START}"]
    searched = [searched[3], *searched[:3]]  # the measured layout's search is the fit
    names = [name.split(" (")[0] for name, _ in candidates(searched, starts)]
    assert names[:3] == [f"searched from {MEASURED_START}", f"preset {MEASURED_START}", "preset seed"]
    assert len(names) == 8
