"""A folder tells its own settings; the time budget sets the schedule; precision follows the hardware."""
import csv
import json
import os
import re
import time

import pytest
import torch
from PIL import Image

from conftest import build_model, run_script, tiny_params
from dataset import DataError
from folder_settings import SETTINGS_FILE, chosen_settings, from_folders
from images import AUTO_PIXELS, model_size
from generate_captcha import generate_split
from model import precision_probe, step_seconds, use_bf16
from parameters import make_parameters

TINY_MODEL = ["--stem_channels=8", "--stage_channels=16,32,64", "--stage_blocks=1,1,1", "--visdom=false",
              "--workers=1", "--threads=2", "--lr=0.004", "--dropout=0", "--label_smoothing=0"]


def labelled_folder(folder, count, size=(130, 52), chars="abc123", length=5):
    """`count` plain images of `size` named by labels of `length` characters from `chars` (no .generator.json)."""
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        label = "".join(chars[(index * 7 + place * 3 + index // len(chars)) % len(chars)] for place in range(length))
        Image.new("RGB", size, (255, 255, 255)).save(os.path.join(folder, f"{label}_{index:04d}.png"))
    return str(folder)


@pytest.fixture(scope="module")
def generated_folders(tmp_path_factory):
    """A generated 100x40, 5-character train/test pair (with its .generator.json) and its settings."""
    root = tmp_path_factory.mktemp("generated")
    params = tiny_params(root, image_width=100, image_height=40, captcha_length=5, font_sizes=(26, 28))
    generate_split(params, params.train_dir, "train", 320)
    generate_split(params, params.test_dir, "test", 64)
    return params


def test_size_charset_and_length_come_from_a_plain_folder(tmp_path, capsys):
    folder = labelled_folder(tmp_path / "site", 30, size=(130, 52))
    params = from_folders(make_parameters({"data_dir": folder}), chosen=set())
    # 130x52 is 6,760 pixels: scaled to about AUTO_PIXELS, each side a multiple of 8
    assert (params.image_width, params.image_height) == (112, 40) and abs(112 * 40 - AUTO_PIXELS) < 0.1 * AUTO_PIXELS
    assert (params.charset, params.captcha_length) == ("123abc", "5")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"from {folder}: 112x40 images, 5 characters of 6 classes '123abc'")
    assert "median 130x52 scaled to about 4800 pixels" in line
    assert model_size(64, 24) == (64, 24) and model_size(200, 50) == (136, 32) and model_size(240, 80) == (120, 40)


def test_a_given_flag_beats_the_folder_and_the_line_says_so(tmp_path, capsys):
    folder = labelled_folder(tmp_path / "site", 30, size=(130, 52))
    params = make_parameters({"data_dir": folder, "image_width": 96, "captcha_length": 5})
    params = from_folders(params, chosen={"image_width", "captcha_length"})
    assert (params.image_width, params.image_height, params.charset) == (96, 40, "123abc")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "given, replacing the folder's --image_width=96 (folder: 112)" in line
    assert "captcha_length" not in line.split("given")[1]  # the labels say 5 too: nothing replaced


def test_everything_comes_from_a_generated_folders_settings(generated_folders, capsys):
    given = generated_folders
    params = from_folders(make_parameters({"train_dir": given.train_dir, "test_dir": given.test_dir}), chosen=set())
    for key in ("image_width", "image_height", "charset", "captcha_length", "style", "font_sizes"):
        assert getattr(params, key) == getattr(given, key), key
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"from {given.train_dir}/{SETTINGS_FILE}: 100x40 images, 5 characters of 16 classes")
    flagged = from_folders(make_parameters({"train_dir": given.train_dir, "image_height": 32}), chosen={"image_height"})
    assert (flagged.image_width, flagged.image_height) == (100, 32)
    assert "--image_height=32 (folder: 40)" in capsys.readouterr().out


def test_bad_folders_are_one_line_errors(tmp_path, generated_folders):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images"):
        from_folders(make_parameters({"data_dir": str(empty)}), chosen=set())
    mixed = labelled_folder(tmp_path / "mixed", 20, size=(100, 40))
    labelled_folder(tmp_path / "mixed", 20, size=(400, 300), chars="xyz789")
    with pytest.raises(DataError, match=r"mixes image sizes .* give --image_width and --image_height") as error:
        from_folders(make_parameters({"data_dir": mixed}), chosen=set())
    assert "\n" not in str(error.value)
    # a few odd sizes (a crop, a retina screenshot) are resized like the rest
    few = labelled_folder(tmp_path / "few", 40, size=(100, 40))
    labelled_folder(tmp_path / "few", 1, size=(400, 300), chars="xyz789")
    assert from_folders(make_parameters({"data_dir": few}), chosen=set()).image_width == 96
    # labels that contradict the folder's .generator.json: 6 characters in a 5-character folder
    contradicting = tmp_path / "contradicting"
    contradicting.mkdir()
    recorded = open(os.path.join(generated_folders.train_dir, SETTINGS_FILE)).read()
    assert json.loads(recorded)["captcha_length"] == "5"
    (contradicting / SETTINGS_FILE).write_text(recorded)
    labelled_folder(contradicting, 5, size=(100, 40), chars="0123456789abcdef", length=6)
    with pytest.raises(DataError, match=rf"5 of 5 labels in .* disagree with its \{SETTINGS_FILE}"):
        from_folders(make_parameters({"data_dir": str(contradicting)}), chosen=set())


def test_chosen_settings_are_the_flags_and_their_style():
    params = make_parameters({"style": "swust", "lr": 0.01})
    assert chosen_settings(params, ["style", "lr"]) >= {"style", "lr", "image_width", "charset"}
    assert chosen_settings(params, None) >= {"lr", "image_width", "style"}
    assert "image_width" not in chosen_settings(make_parameters({"lr": 0.01}), ["lr"])


@pytest.mark.slow
def test_main_trains_a_generated_folder_with_no_size_length_or_charset_flags(generated_folders, tmp_path):
    model_dir = tmp_path / "run"
    given = generated_folders
    result = run_script("main.py", f"--train_dir={given.train_dir}", f"--test_dir={given.test_dir}", "--epochs=1",
                        f"--model_dir={model_dir}", f"--cache_dir={tmp_path}/cache", *TINY_MODEL)
    assert f"from {given.train_dir}/{SETTINGS_FILE}: 100x40 images, 5 characters" in result.stdout
    assert "0 training images" not in result.stdout + result.stderr
    saved = torch.load(model_dir / "last.pt", weights_only=True)["params"]
    assert (saved["image_width"], saved["image_height"], saved["captcha_length"]) == (100, 40, "5")
    assert saved["batch_size"] == 64  # auto: a small set
    # resumed, the run keeps the settings the folder gave it (and refuses none of them)
    resumed = run_script("main.py", "--resume", f"--model_dir={model_dir}", "--visdom=false")
    assert "is over" in resumed.stdout
    assert torch.load(model_dir / "last.pt", weights_only=True)["params"]["image_width"] == 100


@pytest.fixture(scope="module")
def budget_folder(tmp_path_factory):
    """1,200 labelled captchas without a .generator.json: a user's own folder."""
    root = tmp_path_factory.mktemp("budget")
    params = tiny_params(root)
    generate_split(params, str(root / "generated"), "train", 1200)
    folder = root / "site"
    folder.mkdir()
    for name in os.listdir(root / "generated"):
        if not name.startswith("."):
            os.link(root / "generated" / name, folder / name)
    return folder


def training_seconds(model_dir):
    with open(os.path.join(model_dir, "log.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1]["seconds"]), max(int(row["epoch"]) for row in rows)


@pytest.mark.slow
def test_a_one_minute_budget_trains_about_a_minute(budget_folder, tmp_path):
    """Once, 10 default epochs cut a budgeted run short (a minute bought 1,413 images 50 steps)."""
    model_dir = tmp_path / "run"
    started = time.monotonic()
    result = run_script("main.py", f"--data_dir={budget_folder}", "--test_split=0.2", "--time_budget=1",
                        f"--model_dir={model_dir}", f"--cache_dir={tmp_path}/cache", *TINY_MODEL, timeout=240)
    seconds, epochs = training_seconds(model_dir)
    assert 55 <= seconds <= 75 and time.monotonic() - started < 180
    assert epochs > 10  # 15 steps an epoch: the budget, not a default epoch count, ended it
    assert "1 min budget, schedule fitted to it" in result.stdout
    assert "stopped early" not in result.stdout


@pytest.mark.slow
def test_a_run_that_stops_before_its_budget_says_why(budget_folder, tmp_path):
    result = run_script("main.py", f"--data_dir={budget_folder}", "--test_split=0.2", "--time_budget=5",
                        "--epochs=2", f"--model_dir={tmp_path}/run", f"--cache_dir={tmp_path}/cache", *TINY_MODEL)
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(r"stopped early: its 2 epochs \(--epochs\) were done; without --epochs the budget sets "
                            r"the run, with \d\.\d of 5 minutes left", line) for line in lines), result.stdout
    warning = next(line for line in lines if line.startswith("warning: only 30 steps: too little training"))
    assert "images/s here" in warning and "--resume" in warning and "--time_budget" in warning


def model_step_seconds(bf16):
    """Best seconds of a training step of the default model (batch 64 at 64x24) in one precision: another
    workload than the probe's, to check its verdict."""
    model = build_model(make_parameters({})).to(memory_format=torch.channels_last).train()
    return step_seconds(model, torch.randint(0, 256, (64, 24, 64, 3), dtype=torch.uint8), bf16)


def test_auto_precision_picks_the_faster_on_this_machine():
    bf16, fp32 = precision_probe()
    model_bf16, model_fp32 = model_step_seconds(True), model_step_seconds(False)
    if max(model_bf16, model_fp32) > 1.3 * min(model_bf16, model_fp32):  # a clear winner here (AMX, AVX2 only)
        assert (bf16 < fp32) == (model_bf16 < model_fp32)
        assert use_bf16("auto", torch.device("cpu")) == (model_bf16 < model_fp32)  # the cached verdict too
    assert use_bf16("on", torch.device("cpu")) and not use_bf16("off", torch.device("cpu"))
    assert make_parameters({"amp": "true"}).amp == "on" and make_parameters({"amp": False}).amp == "off"


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["auto", "on"])  # on: bf16 where the CPU has none (AVX-512 Xeon, AVX2) too
def test_model_py_names_the_precision_and_never_passes_its_peak(amp):
    result = run_script("model.py", f"--amp={amp}", timeout=400)  # batch 256: the speed it trains at
    line = result.stdout.strip().splitlines()[-1]
    share = int(re.search(r"(\d+)% of this CPU's (bf16|fp32) peak", line).group(1))
    assert f"amp={amp}: " in line and 0 < share <= 100
    assert re.search(r"training steps \((bf16|fp32)\): +\d+%", result.stderr)  # its progress bar
