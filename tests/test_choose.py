"""choose_style.py: of a few styles, the one whose trial model reads the site's own captchas steadiest."""
import json
import os
import random

import numpy as np
import pytest

from choose_style import Trial, balance, mix_of, mixed_in, style_files
from conftest import run_script
from custom_captcha_image import make_generator
from fit_style import at_size
from generate_captcha import SETTINGS_FILE, drawing_settings, generate_split
from model import load_checkpoint
from parameters import make_parameters, read_style_file

DIGITS = "0123456789"
SITE = {"style": "seed_v1", "charset": DIGITS, "captcha_length": 4, "render_jitter": (), "seed": 3}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site drawn in the seed_v1 look (its captchas unlabelled), its own style file and another look's."""
    root = tmp_path_factory.mktemp("choose")
    params = make_parameters(SITE)
    generate_split(params, str(root / "site"), "site", 300)
    os.remove(root / "site" / SETTINGS_FILE)
    (root / "own.json").write_text(json.dumps(drawing_settings(params)))
    other = at_size("kaptcha", (params.image_width, params.image_height),
                    {"charset": DIGITS, "captcha_length": 4, "outline_width": 1, "rotation": 40.0, "glyph_dots": 1.5})
    (root / "other.json").write_text(json.dumps(drawing_settings(other)))
    return root


@pytest.mark.slow
def test_the_style_the_site_is_drawn_in_is_chosen(site):
    chosen = site / "chosen.json"
    # the best alone (no mix); a minute of training each: 18 s taught an AVX2-only CPU's trial models nothing
    result = run_script("choose_style.py", str(site / "site"), str(site / "other.json"), str(site / "own.json"),
                        f"--charset={DIGITS}", "--captcha_length=4", f"--choose_dir={site / 'trials'}",
                        f"--choose_file={chosen}", "--choose_count=1500", "--choose_minutes=1",
                        "--choose_mix_margin=0", timeout=600)
    assert f"chose {site / 'own.json'}" in result.stdout
    assert read_style_file(str(chosen)) == read_style_file(str(site / "own.json"))
    assert (site / "chosen.png").is_file()
    lines = [line for line in result.stdout.splitlines() if "  score " in line]
    scores = [float(line.split("score ")[1].split(":")[0]) for line in lines]
    alike = [float(line.split(" reads ")[1].split(" ")[0]) for line in lines]
    assert len(scores) == 2 and scores[1] > scores[0]
    assert alike[1] > alike[0] + 0.1  # own look's trial reads the site far steadier


def test_a_model_stuck_on_one_answer_is_not_balanced():
    assert balance(["1111", "1111"], list(DIGITS)) == 0
    assert balance(["0123", "4567", "89"], list(DIGITS)) == pytest.approx(1.0)
    assert 0 < balance(["0011", "0012"], list(DIGITS)) < 0.5


@pytest.mark.slow
def test_a_folder_stands_for_its_style_files_and_a_style_is_tried_once(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"style": "kaptcha", "seed": 1}))
    (tmp_path / "b.json").write_text(json.dumps({"style": "kaptcha", "seed": 2}))  # the same drawing
    (tmp_path / "c.json").write_text(json.dumps({"style": "gregwar"}))
    (tmp_path / "notes.txt").write_text("not a style")
    assert style_files([str(tmp_path)]) == [str(tmp_path / "a.json"), str(tmp_path / "c.json")]
    result = run_script("choose_style.py", str(tmp_path), str(tmp_path / "missing.json"), "--charset=0123",
                        "--captcha_length=4", check=False)
    assert result.returncode != 0 and "missing.json is neither a style file nor a folder of them" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_trial_model_that_has_not_learnt_its_style_trains_as_long_again(site, tmp_path):
    """Five seconds of training learn no style: the trial trains five more from its weights, and says so."""
    command = [str(site / "site"), str(site / "own.json"), f"--charset={DIGITS}", "--captcha_length=4",
               f"--choose_file={tmp_path / 'chosen.json'}", "--choose_count=300", "--choose_minutes=0.08"]
    result = run_script("choose_style.py", *command, f"--choose_dir={tmp_path / 'slow'}", timeout=600)
    assert "(its own test: " in result.stdout and "after 0.16 min)" in result.stdout
    trained = load_checkpoint(str(tmp_path / "slow" / "trial1" / "longer" / "last.pt"))
    assert trained["params"]["init_from"] == str(tmp_path / "slow" / "trial1" / "model" / "last.pt")
    [tried] = json.loads((tmp_path / "slow" / "trials.json").read_text())["trials"]
    assert tried["minutes"] == 0.16 and tried["own"] < 0.25 and tried["style"] == str(site / "own.json")
    never = run_script("choose_style.py", *command, f"--choose_dir={tmp_path / 'never'}", "--choose_learnt=0",
                       timeout=600)
    assert "after 0.08 min)" in never.stdout and not (tmp_path / "never" / "trial1" / "longer").exists()


def trial_scored(style, score):
    return Trial(style, "", alike=score, even=1.0, own=1.0, minutes=2.0)


def test_a_trial_model_that_learnt_nothing_does_not_win_by_guessing_steadily():
    learnt = Trial("a.json", "", alike=0.021, even=0.98, own=0.52, minutes=2)  # swust_cas, slow CPU (docs/RESULTS.md)
    guessing = Trial("b.json", "", alike=0.025, even=0.89, own=0.098, minutes=2)
    assert learnt.score > 4 * guessing.score
    assert Trial("c.json", "", alike=0.2, even=1.0, own=0.0, minutes=2).score == 0.0


def test_a_runner_up_this_close_is_mixed_in_and_its_file_draws_both_looks(site, tmp_path):
    own, other = str(site / "own.json"), str(site / "other.json")
    trials = [trial_scored(own, 0.30), trial_scored(other, 0.28)]
    assert mixed_in(trials, 0.0, 0.0) is None and mixed_in(trials, 0.01, 0.0) is None
    assert mixed_in(trials, 0.03, 0.5).style == other
    far = [trial_scored(own, 0.20), trial_scored(other, 0.05)]  # a quarter of the best: another kind, not mixed
    assert mixed_in(far, 1.0, 0.5) is None and mixed_in(far, 1.0, 0.0).style == other
    target = tmp_path / "styles" / "chosen.json"
    target.parent.mkdir()
    target.write_text(json.dumps(mix_of(own, other, str(target))))
    assert read_style_file(str(target))["style_mix"] == [own, other]  # relative in the file, resolved on reading
    params = make_parameters({"style_file": str(target), "charset": DIGITS, "captcha_length": 4})
    generator, rng = make_generator(params), random.Random(0)
    images = [np.asarray(generator.sample(rng)[1]) for _ in range(30)]
    assert {image.shape for image in images} == {(params.image_height, params.image_width, 3)}
    # kaptcha draws a 1 px black border; the site's seed_v1 look has none: both looks are drawn
    bordered = [bool((image[0] < 40).all()) for image in images]
    assert 0 < sum(bordered) < len(images)
