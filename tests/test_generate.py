"""The styled generator: reproducible, complete, resumable, every knob does what it says."""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import generate_captcha
from custom_captcha_image import StyledCaptcha, StyleError, make_generator
from conftest import ROOT
from dataset import image_names
from folder_lock import LOCK_FILE
from generate_captcha import NAME_PATTERN, check_settings, generate_split, make_sample
from parameters import DIGITS, LOWER, STYLES, DrawSettings, Parameters, make_parameters

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def folder_digest(folder):
    return {name: hashlib.sha1(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))}


def small(tmp_path, **overrides):
    values = {"train_dir": str(tmp_path / "train"), "test_dir": str(tmp_path / "test"),
              "preview_file": str(tmp_path / "preview.png"), "train_count": 120, "test_count": 30}
    values.update(overrides)
    return make_parameters(values)


@pytest.mark.slow
def test_same_seed_same_bytes_with_one_and_two_workers(tmp_path, script):
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        script("generate_captcha.py", f"--train_dir={folder}/train", f"--test_dir={folder}/test",
               f"--preview_file={folder}/preview.png", "--train_count=600", "--test_count=20", f"--workers={workers}")
    assert folder_digest(tmp_path / "w1/train") == folder_digest(tmp_path / "w2/train")
    assert folder_digest(tmp_path / "w1/test") == folder_digest(tmp_path / "w2/test")
    assert (tmp_path / "w1/preview.png").exists()
    other = tmp_path / "other"
    script("generate_captcha.py", f"--train_dir={other}/train", f"--test_dir={other}/test",
           f"--preview_file={other}/p.png", "--train_count=600", "--test_count=0", "--seed=1")
    assert folder_digest(other / "train") != folder_digest(tmp_path / "w1/train")
    assert not (other / "test").exists()  # a split of none leaves its folder alone (another style may use it)


def test_n_files_unique_names_labels_round_trip(tmp_path):
    params = small(tmp_path, workers=1)
    generate_split(params, params.train_dir, "train", params.train_count)
    names = image_names(params.train_dir)
    assert len(names) == 120 and len({n.lower() for n in names}) == 120
    generator = StyledCaptcha(DrawSettings.of(params))
    for name in names:
        match = NAME_PATTERN.match(name)
        label, index = match.group("label"), int(match.group("index"))
        assert len(label) == 4 and set(label) <= set(params.charset)
        assert make_sample(generator, params, "train", index)[0] == label
        with Image.open(os.path.join(params.train_dir, name)) as image:
            assert image.size == (64, 24) and image.format == "PNG"  # the seed style saves lossless, as the original
    labels = "".join(NAME_PATTERN.match(n).group("label") for n in names)
    assert len(set(labels)) > 40  # 480 draws over 62 classes cover most of them


def test_interrupted_run_resumes_to_exactly_n(tmp_path):
    params = small(tmp_path, workers=2, train_count=300)
    generate_split(params, params.train_dir, "train", 300)
    full = folder_digest(params.train_dir)
    names = sorted(name for name in full if name not in (generate_captcha.SETTINGS_FILE, LOCK_FILE))
    for name in names[::3]:  # as if killed part way: a third missing, and a chunk cut short in one image
        os.remove(os.path.join(params.train_dir, name))
    half = names[1]
    index = int(NAME_PATTERN.match(half).group("index"))
    with open(os.path.join(params.train_dir, half), "r+b") as handle:
        handle.truncate(40)
    with open(os.path.join(params.train_dir, f"{generate_captcha.CHUNK_MARKER}{index}"), "w") as handle:
        handle.write(f"{index} {index + 1}")
    open(os.path.join(params.train_dir, names[2] + ".tmp"), "wb").write(b"\xff\xd8 half")  # an older version's
    written = generate_split(params, params.train_dir, "train", 300)
    assert written == len(set(names[::3]) | {half, names[names.index(half) + 1]})
    assert folder_digest(params.train_dir) == full
    assert generate_split(params, params.train_dir, "train", 300) == 0


@pytest.mark.slow
def test_a_killed_generator_leaves_nothing_a_later_run_takes_for_whole(tmp_path):
    folders = {name: [f"--train_dir={tmp_path}/{name}", f"--test_dir={tmp_path}/{name}_test", "--test_count=0",
                      f"--preview_file={tmp_path}/{name}.png", "--train_count=3000", "--workers=2"]
               for name in ("killed", "whole")}
    command = [sys.executable, os.path.join(ROOT, "generate_captcha.py")]
    process = subprocess.Popen(command + folders["killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while len(os.listdir(tmp_path / "killed") if (tmp_path / "killed").exists() else ()) < 600:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the workers too, mid-write
    process.wait()
    assert len(image_names(str(tmp_path / "killed"))) < 3000
    subprocess.run(command + folders["killed"], check=True, capture_output=True, timeout=120)
    subprocess.run(command + folders["whole"], check=True, capture_output=True, timeout=120)
    assert folder_digest(tmp_path / "killed") == folder_digest(tmp_path / "whole")


def pixels(params, text="aB3x", seed=5):
    return np.asarray(StyledCaptcha(DrawSettings.of(params)).render(text, random.Random(seed)), dtype=np.float32)


def ink_rows(image):
    """Rows holding text ink (much darker than the background)."""
    grey = image.mean(axis=2)
    return np.nonzero((grey < np.median(grey) - 60).any(axis=1))[0]


@pytest.mark.slow
def test_a_folder_drawn_with_other_settings_is_refused(tmp_path, script):
    args = [f"--train_dir={tmp_path}/train", f"--test_dir={tmp_path}/test", f"--preview_file={tmp_path}/p.png",
            "--train_count=20", "--test_count=5"]
    script("generate_captcha.py", *args)
    before = folder_digest(tmp_path / "train")
    for change, named in (("--rotation=20", "rotation"), ("--seed=3", "seed"), ("--style=captcha_default", "font_sizes")):
        result = script("generate_captcha.py", *args, change, check=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "drawn with other settings" in lines[0], result.stderr
        assert named in lines[0], lines[0]
        assert folder_digest(tmp_path / "train") == before  # nothing written, nothing lost
    os.remove(tmp_path / "train" / sorted(before)[0])
    script("generate_captcha.py", *args)  # the same settings resume
    assert folder_digest(tmp_path / "train") == before
    written = tmp_path / "train" / generate_captcha.SETTINGS_FILE
    settings = json.loads(written.read_text())
    written.write_text(json.dumps({**settings, "captcha_length": 4}))  # as versions before length ranges wrote it
    assert generate_captcha.settings_conflict(str(tmp_path / "train"), make_parameters()) is None


def test_knobs_change_the_output(tmp_path):
    base = dict(style="seed_v1", noise_dots=0, noise_curves=0, smooth=False, render_jitter=())
    plain = pixels(make_parameters(base))
    assert plain.shape == (24, 64, 3)
    assert pixels(make_parameters({"image_width": 100, "image_height": 40})).shape == (40, 100, 3)
    small_font = make_parameters({**base, "font_sizes": (12,), "image_height": 40})
    big_font = make_parameters({**base, "font_sizes": (30,), "image_height": 40})
    assert np.ptp(ink_rows(pixels(big_font))) > np.ptp(ink_rows(pixels(small_font))) + 8
    # noise off: identical background far from the text; dots on: pixels change
    dots = make_parameters({**base, "noise_dots": 40, "noise_dot_width": 2})
    assert np.abs(pixels(dots) - plain).sum() > 500
    curve = make_parameters({**base, "noise_curves": 3})
    assert np.abs(pixels(curve) - plain).sum() > 500
    smooth = make_parameters({**base, "smooth": True})
    assert np.abs(np.diff(pixels(smooth), axis=1)).mean() < np.abs(np.diff(plain, axis=1)).mean()
    black = make_parameters({**base, "text_color_min": 0, "text_color_max": 0, "background_min": 255})
    image = pixels(black)
    assert image.max() == 255 and image.min() < 150 and (image == 255).mean() > 0.3
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    straight = make_parameters({**base, "rotation": 0.0, "warp_x": (0, 0), "warp_y": (0, 0)})
    assert not np.array_equal(pixels(straight), plain)


def test_baseline_sits_short_letters_on_the_capitals_line():
    base = {"noise_dots": 0, "noise_curves": 0, "smooth": False, "rotation": 0.0, "warp_x": (0, 0), "warp_y": (0, 0),
            "stretch_glyphs": False, "image_height": 40, "font_sizes": (24,), "fonts": (DEJAVU,)}
    lowest = {}
    for baseline in (False, True):
        params = make_parameters({**base, "baseline": baseline})
        lowest[baseline] = [ink_rows(pixels(params, text)).max() for text in ("aaaa", "AAAA")]
    assert abs(lowest[True][0] - lowest[True][1]) <= 1  # feet on one line
    assert lowest[False][1] - lowest[False][0] >= 3  # centred: the short 'a' floats above the capitals' feet


def test_lines_under_text_leave_the_text_whole():
    base = {"noise_dots": 0, "noise_curves": 0, "smooth": False, "render_jitter": (), "solid_text": True, "text_color_min": 0,
            "text_color_max": 0, "background_min": 255, "noise_line_gray": (200, 200), "font_sizes": (28,),
            "fonts": (DEJAVU.replace(".ttf", "-Bold.ttf"),), "stretch_glyphs": False, "image_width": 100,
            "image_height": 40}
    text = pixels(make_parameters(base)).mean(axis=2) < 30
    over = pixels(make_parameters({**base, "noise_lines": (80, 80)})).mean(axis=2)
    under = pixels(make_parameters({**base, "noise_lines": (80, 80), "noise_lines_under_text": True})).mean(axis=2)
    assert text.sum() > 50
    assert (over[text] > 150).sum() > 5  # lines drawn over the text cross it
    assert (under[text] < 30).all()  # lines under it do not
    assert ((under > 150) & (under < 250)).sum() > 100  # and are there


def test_style_mix_draws_every_style_seedably(tmp_path):
    params = small(tmp_path, style="swust", workers=1, render_jitter=())
    generator = make_generator(params)
    samples = [make_sample(generator, params, "train", index) for index in range(200)]
    assert [label for label, _ in samples[:20]] == [make_sample(generator, params, "train", i)[0] for i in range(20)]
    lower_case = [image for label, image in samples if label != label.upper()]  # only swust_2019 draws lower case
    plain = [image for label, image in samples if label.upper() == label and set(label) - set("12345678ABCDEFHKNPQXYZ")]
    assert len(lower_case) > 50 and len(plain) > 30
    assert all(image.size == (100, 35) for _, image in samples)
    corner = [np.asarray(image)[0, 0].astype(int) for image in plain]  # swust_2020: white background
    assert np.mean(corner) > 245
    for label, _ in samples:
        assert set(label.lower()) <= set(DIGITS + LOWER)


@pytest.mark.parametrize("overrides, words", [
    ({"style_mix": ("swust_2019", "nope")}, "unknown styles"),
    ({"style_mix": ("swust",)}, "itself a mix"),
    ({"style_mix": ("swust_2019",), "charset": "0123"}, "outside the charset"),
])
def test_bad_style_mix_fails_before_work(tmp_path, overrides, words):
    with pytest.raises(StyleError, match=words):
        check_settings(small(tmp_path, **overrides))


@pytest.mark.parametrize("overrides, words", [
    ({"fonts": ("/no/such/font.ttf",)}, "font file '/no/such/font.ttf' does not exist"),
    ({"charset": ""}, "charset is empty"),
    ({"image_width": 12}, "image_width 12 is too small"),
    ({"image_width": 2001}, "image size 2001x24 is over max_image_side 2000 pixels"),
    ({"image_height": 3000, "max_image_side": 2500}, "image size 64x3000 is over max_image_side 2500 pixels"),
    ({"captcha_kind": "color_target", "target_color": "purple"}, "must be one of a palette"),
    ({"captcha_kind": "color_target", "palette": ("red", "reddish")}, "'reddish' is not a colour"),
    ({"captcha_kind": "color_target", "color_distractors": (3, 1)}, "color_distractors must be two values"),
    ({"noise_lines": (5, 2)}, "noise_lines must be two values low,high"),
    ({"noise_line_length": (0.0, 3.0)}, "noise_line_length must be two values"),
    ({"char_pitch": 18.0}, "set space_probability=0"),
    ({"char_pitch": 30.0, "space_probability": 0.0}, "does not fit image_width 64"),
])
def test_bad_settings_fail_before_work(tmp_path, overrides, words):
    with pytest.raises(StyleError, match=words):
        check_settings(small(tmp_path, **overrides))
    assert not (tmp_path / "train").exists() or not os.listdir(tmp_path / "train")


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_style_makes_images_of_its_own_size(tmp_path, style):
    size = tuple(STYLES[style].get(key, getattr(Parameters(), key)) for key in ("image_width", "image_height"))
    params = small(tmp_path, style=style, workers=1, train_count=3)
    generate_split(params, params.train_dir, "train", 3)
    names = image_names(params.train_dir)
    assert len(names) == 3
    for name in names:
        with Image.open(os.path.join(params.train_dir, name)) as image:
            assert image.size == size


@pytest.mark.slow
def test_bad_settings_are_one_line_errors_from_the_script(tmp_path, script):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    cases = [("--fonts=/missing.ttf", "does not exist"), ("--charset=", "charset is empty"),
             ("--captcha_length=0", "captcha_length"), ("--image_width=10", "too small"),
             ("--image_height=2001", "over max_image_side 2000"),
             (f"--fonts={tmp_path / 'notes.ttf'}", "cannot be opened as a font"),
             (f"--fonts={tmp_path / 'font_folder'}", "cannot be opened as a font"),
             (f"--train_dir={locked}/sub", "cannot create folder")]
    (tmp_path / "notes.ttf").write_text("not a font: notes named like one")
    (tmp_path / "font_folder").mkdir()
    shutil.copy(tmp_path / "notes.ttf", tmp_path / "font_folder" / "regular.otf")
    if os.geteuid() == 0:  # root ignores permissions: a path under a regular file cannot be created either
        blocker = tmp_path / "file"
        blocker.write_text("x")
        cases[-1] = (f"--train_dir={blocker}/sub", "cannot create folder")
    for arg, words in cases:
        result = script("generate_captcha.py", arg, f"--test_dir={tmp_path}/t", f"--preview_file={tmp_path}/p.png",
                        check=False)
        assert result.returncode == 2, arg
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (arg, result.stderr)


def test_image_size_is_bounded_by_a_setting_and_fonts_are_opened(tmp_path):
    check_settings(small(tmp_path, image_width=2400, max_image_side=2400))  # the bound is a setting
    assert max(STYLES[style].get("image_width", 64) for style in STYLES) <= Parameters().max_image_side
    (tmp_path / "notes.txt").write_text("a text file named as a font")
    with pytest.raises(StyleError, match="notes.txt' cannot be opened as a font"):
        check_settings(small(tmp_path, fonts=(str(tmp_path / "notes.txt"),)))


def test_preview_only_writes_the_grid(tmp_path, script):
    result = script("generate_captcha.py", "--preview", f"--preview_file={tmp_path}/grid.png",
                    f"--train_dir={tmp_path}/train", "--preview_count=10")
    assert "grid.png" in result.stdout
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.width > 64 * 3 and grid.height > 24 * 3
    assert not (tmp_path / "train").exists()


def test_overrides_reach_worker_processes(tmp_path):
    params = small(tmp_path, image_width=80, image_height=30, image_format="png", workers=2, train_count=600)
    generate_split(params, params.train_dir, "train", 600)
    names = image_names(params.train_dir)
    assert len(names) == 600 and all(n.endswith(".png") for n in names)
    assert {Image.open(os.path.join(params.train_dir, n)).size for n in names[:50]} == {(80, 30)}
    assert generate_captcha.worker_count(params) == 2


def test_a_style_is_drawn_by_the_steps_it_uses():
    def names(style):
        return [step.__name__ for step in StyledCaptcha(DrawSettings.of(make_parameters({"style": style}))).steps]
    plain, transparent = names("seed_v1"), names("advrpg_digits")
    assert plain[:3] == ["_start", "_draw_glyphs", "_canvas"] and "_transparent" not in plain
    assert transparent[-1] == "_transparent" and "_lines_under_text" not in transparent
    assert "_lines_under_text" in names("swust_2019")
