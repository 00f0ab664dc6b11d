"""Shared test fixtures: the repo root on sys.path and helpers to run scripts as a user would."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# Fixtures that train a model or start a browser or a server: a test that uses one is slow (make test-fast
# leaves it out), as is one marked @pytest.mark.slow (a second or more of its own).
SLOW_FIXTURES = {"tiny_run", "ctc_run", "arithmetic_run", "real_run", "straight_run", "server", "chromium"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model, drives a browser or a server, or takes a second or "
                                       "more (make test-fast leaves these out)")


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


def script_kind(script):
    """The settings class script `script` (a command_line.SCRIPT_GROUPS key) reads its command line into:
    bench/bench_settings.py's BenchParameters for a bench script that parses with it, else Parameters."""
    from parameters import Parameters
    with open(os.path.join(ROOT, script), encoding="utf-8") as source:
        if "kind=BenchParameters" not in source.read():
            return Parameters
    bench = os.path.join(ROOT, "bench")
    if bench not in sys.path:
        sys.path.append(bench)  # after the root: as `python bench/x.py` finds it
    from bench_settings import BenchParameters
    return BenchParameters


def build_model(params):
    """The model a run's Parameters describe, as training builds it."""
    import dataclasses
    from model import CaptchaResNet, model_config
    return CaptchaResNet(model_config(dataclasses.asdict(params), params.class_chars))


def run_script(script, *args, cwd=ROOT, timeout=300, check=True):
    """Run a top-level script with the test interpreter; returns the CompletedProcess."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture
def script():
    return run_script


TINY = {  # a small style and model that learn in seconds on 2 cores
    "charset": "0123456789abcdef", "captcha_length": 4, "stem_channels": 8, "stem_stride": 1,
    "stage_channels": (16, 32, 64), "stage_blocks": (1, 1, 1), "batch_size": 32, "eval_batch_size": 64,
    "visdom": False, "workers": 2,
    "lr": 0.004, "label_smoothing": 0.0, "dropout": 0.0, "augment": "off",
    "style": "seed_v1", "render_jitter": (),  # the easy look the thresholds were set on (seed is the 2019 one, fainter)
}


def tiny_params(root, **overrides):
    """Parameters of the tiny set-up with every path under `root`."""
    from parameters import make_parameters
    root = str(root)
    values = dict(TINY, train_dir=f"{root}/train", test_dir=f"{root}/test", model_dir=f"{root}/model",
                  cache_dir=f"{root}/cache", preview_file=f"{root}/preview.png", train_count=1200, test_count=200)
    values.update(overrides)
    return make_parameters(values)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny generated data set and a model trained on it: {'params', 'metrics', 'checkpoint'}."""
    from generate_captcha import generate_split
    from train import train
    root = tmp_path_factory.mktemp("tiny")
    params = tiny_params(root, epochs=6)
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    metrics = train(params)
    return {"params": params, "metrics": metrics, "checkpoint": os.path.join(params.model_dir, "best.pt"),
            "root": root}


CTC_LENGTHS = (3, 5)  # the tiny variable-length set: 3 to 5 characters a captcha


@pytest.fixture(scope="session")
def ctc_run(tmp_path_factory):
    """The tiny set-up with captchas of 3 to 5 characters and a model trained on it with the ctc head:
    {'params', 'metrics', 'checkpoint', 'root'}."""
    from generate_captcha import generate_split
    from train import train
    root = tmp_path_factory.mktemp("ctc")
    params = tiny_params(root, captcha_length=f"{CTC_LENGTHS[0]}-{CTC_LENGTHS[1]}", head="ctc", feature_stride=4,
                         epochs=8, train_count=1500)
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    metrics = train(params)
    return {"params": params, "metrics": metrics, "checkpoint": os.path.join(params.model_dir, "best.pt"),
            "root": root}


@pytest.fixture(scope="session")
def arithmetic_run(tmp_path_factory):
    """A tiny arithmetic set (one-digit sums, differences and products, 64x24) and a model trained on it:
    {'params', 'checkpoint'}."""
    from generate_captcha import generate_split
    from train import train
    root = tmp_path_factory.mktemp("arithmetic")
    params = tiny_params(root, style="arithmetic", arithmetic_operands=(0, 9), arithmetic_endings=("=",),
                         image_width=64, image_height=24, font_sizes=(17, 18), left_margin=(1.0, 4.0),
                         char_spacing=(0.0, 1.0), row_shift_y=(-1.0, 1.0), char_jitter_y=0.0, noise_dots=4,
                         noise_dot_width=1, rotation=4.0, render_jitter=(), epochs=8, train_count=2000)
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    train(params)
    return {"params": params, "checkpoint": os.path.join(params.model_dir, "best.pt")}
