"""Training end to end on tiny generated data: it learns, checkpoints, resumes after Ctrl-C, plots."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, tiny_params
from generate_captcha import generate_split
from model import build_model, load_checkpoint, model_from_checkpoint, parameter_count
from parameters import make_parameters


def test_tiny_training_learns(tiny_run):
    metrics = tiny_run["metrics"]
    # chance is 1/16 per character and 1/65536 per captcha
    assert metrics["char_accuracy"] > 0.3
    assert metrics["accuracy"] > 0.01
    assert metrics["accuracy_ignore_case"] >= metrics["accuracy"]
    folder = tiny_run["params"].model_dir
    for name in ("best.pt", "last.pt", "log.csv", "curves.png"):
        assert os.path.getsize(os.path.join(folder, name)) > 0, name
    rows = list(csv.DictReader(open(os.path.join(folder, "log.csv"))))
    assert any(row["train_loss"] for row in rows) and any(row["accuracy"] for row in rows)


def test_checkpoint_is_one_safe_dict(tiny_run):
    checkpoint = load_checkpoint(tiny_run["checkpoint"])
    for key in ("model", "optimizer", "schedule", "step", "epoch", "best", "params", "charset", "torch_rng"):
        assert key in checkpoint, key
    assert checkpoint["charset"] == "0123456789abcdef" and checkpoint["params"]["stage_channels"] == (16, 32, 64)
    model, params = model_from_checkpoint(checkpoint)
    assert params.captcha_length == 4 and not model.training
    assert model(torch.zeros(2, 24, 64, 3, dtype=torch.uint8)).shape == (2, 4, 16)


def test_missing_and_broken_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(str(tmp_path / "missing.pt"))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(str(broken))


def test_models_and_presets():
    default = build_model(make_parameters({}))
    original = build_model(make_parameters({"model_preset": "original"}))
    assert 1.0e6 < parameter_count(default) < 3e6
    assert 11.0e6 < parameter_count(original) < 11.6e6  # the original's ResNet-18 with 4 heads
    images = torch.randint(0, 256, (3, 24, 64, 3), dtype=torch.uint8)
    assert default.eval()(images).shape == original.eval()(images).shape == (3, 4, 62)


def test_feature_stride_sets_the_columns_the_heads_read():
    wide = {"image_width": 160, "image_height": 60, "charset": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    images = torch.randint(0, 256, (2, 60, 160, 3), dtype=torch.uint8)
    for stride, columns in ((8, 20), (16, 10)):
        model = build_model(make_parameters({**wide, "feature_stride": stride})).eval()
        assert model.heads[0].in_features == 192 * columns
        assert model(images).shape == (2, 4, 36)
    with pytest.raises(ValueError, match="feature_stride must be"):
        build_model(make_parameters({"feature_stride": 12}))
    with pytest.raises(ValueError, match="needs 4 stages"):
        build_model(make_parameters({"feature_stride": 32, "stage_channels": (32, 64, 128), "stage_blocks": (1, 1, 1)}))


def test_checkpoint_from_before_feature_stride_loads_at_one_eighth(tiny_run):
    checkpoint = load_checkpoint(tiny_run["checkpoint"])
    del checkpoint["params"]["feature_stride"]
    model, params = model_from_checkpoint(checkpoint)
    assert params.feature_stride == 8


def final_weights(model_dir):
    return load_checkpoint(os.path.join(model_dir, "last.pt"))


def train_command(root, model_dir, *extra):
    params = tiny_params(root)
    return [sys.executable, os.path.join(ROOT, "main.py"), f"--train_dir={params.train_dir}",
            f"--test_dir={params.test_dir}", f"--cache_dir={params.cache_dir}", f"--model_dir={model_dir}",
            "--charset=0123456789abcdef", "--stem_channels=8", "--stage_channels=16,32,64", "--stage_blocks=1,1,1",
            "--batch_size=32", "--visdom=false", "--epochs=6", "--dropout=0", "--threads=1", *extra]


def test_interrupted_run_resumes_exactly(tmp_path):
    params = tiny_params(tmp_path, train_count=1200, test_count=64, workers=2)
    generate_split(params, params.train_dir, "train", 1200)
    generate_split(params, params.test_dir, "test", 64)
    straight = tmp_path / "straight"
    subprocess.run(train_command(tmp_path, straight), check=True, capture_output=True, timeout=300)

    broken = tmp_path / "broken"
    process = subprocess.Popen(train_command(tmp_path, broken), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    log = broken / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt once training is well under way (log rows every 20 steps)
        if log.exists() and len(log.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted: saved" in output and "--resume" in output and "Traceback" not in output
    saved = final_weights(broken)
    total = load_checkpoint(str(straight / "last.pt"))["step"]
    assert 0 < saved["step"] < total
    adam_steps = saved["optimizer"]["state"][0]["step"].item()
    assert adam_steps == saved["step"]

    resumed = subprocess.run(train_command(tmp_path, broken, "--resume"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {broken}/last.pt at step {saved['step']}" in resumed.stdout
    done, reference = final_weights(broken), final_weights(straight)
    assert done["step"] == total
    # the optimizer state continued (not restarted): Adam's own step count covers the whole run
    assert done["optimizer"]["state"][0]["step"].item() == total
    for key, value in reference["model"].items():
        assert torch.allclose(done["model"][key].float(), value.float(), atol=1e-5), key


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, script):
    result = script("main.py", f"--model_dir={tmp_path}/none", "--resume", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: --resume: no checkpoint at {tmp_path}/none/last.pt; "
                                                  "start without --resume"]


def test_training_plots_reach_a_real_visdom_server(tiny_run, tmp_path):
    from visdom import Visdom

    from test_visdom import free_port
    from train import train
    from visdom_server import start_server, stop_server
    port = free_port()
    server = start_server(port, env_path=str(tmp_path / "visdom_env"), log=open(tmp_path / "server.log", "w"))
    try:
        params = make_parameters({"visdom": True, "visdom_port": port, "visdom_server": "http://127.0.0.1",
                                  "visdom_env": "train_test", "epochs": 1, "model_dir": str(tmp_path / "run")},
                                 base=tiny_run["params"])
        train(params)
        # Each run plots to its own environment: visdom_env + "_" + the last folder of model_dir.
        client = Visdom(server="http://127.0.0.1", port=port, env="train_test_run", raise_exceptions=True)
        for window in ("captcha_loss", "captcha_lr", "captcha_accuracy", "captcha_predictions"):
            assert client.win_exists(window, env="train_test_run"), window
    finally:
        stop_server(server)
