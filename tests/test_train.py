"""Training end to end on tiny generated data: it learns, checkpoints, resumes after Ctrl-C, plots."""
import csv
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from batches import generated_batches
from conftest import ROOT, build_model, tiny_params
from dataset import image_names
from generate_captcha import NAME_PATTERN, generate_split
from images import read_image
from model import (CaptchaResNet, ModelConfig, load_checkpoint, model_config, model_from_checkpoint, parameter_count,
                   save_checkpoint)
from folder_lock import LOCK_FILE
from parameters import make_parameters
from errors import ProjectError
from run_control import Ranks, StopSignals
from train import Progress, train


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
    assert set(checkpoint) == {"model", "optimizer", "progress", "params", "charset", "torch_rng"}
    assert set(checkpoint["progress"]) == {field.name for field in dataclasses.fields(Progress)}
    assert checkpoint["progress"]["step"] > 0 and checkpoint["progress"]["metrics"]["accuracy"] >= 0
    assert checkpoint["charset"] == "0123456789abcdef" and checkpoint["params"]["stage_channels"] == (16, 32, 64)
    model = model_from_checkpoint(checkpoint)
    assert model.config.length == 4 and model.config.head == "positions" and not model.training
    assert model(torch.zeros(2, 24, 64, 3, dtype=torch.uint8)).shape == (2, 4, 16)


def test_missing_and_broken_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(ProjectError, match="no checkpoint at"):
        load_checkpoint(str(tmp_path / "missing.pt"))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(ProjectError, match="not a readable checkpoint"):
        load_checkpoint(str(broken))
    hostile = tmp_path / "hostile.pt"  # a pickle that would run a command when loaded without weights_only
    torch.save({"model": {}, "params": {}, "charset": "", "run": Shell()}, hostile)
    with pytest.raises(ProjectError) as refused:
        load_checkpoint(str(hostile))
    assert str(refused.value) == f"{str(hostile)!r} is not a plain-weights checkpoint: it holds objects other than " \
                                 f"tensors and plain data, and is not loaded"
    assert not (tmp_path / "ran").exists()


class Shell:
    def __reduce__(self):
        return os.system, ("touch ran",)


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.update(charset="0123456789abcde"), "heads read 16 classes but its charset '0123456789abcde' has 15"),
    (lambda c: c.update(charset="0123456789abcdefg"), "heads read 16 classes but its charset"),
    (lambda c: c["params"].update(captcha_length=5), "4 character heads but its captcha_length is 5"),
    (lambda c: c.update(charset="fedcba9876543210"), "disagrees with the charset of its settings '0123456789abcdef'"),
    (lambda c: c["params"].update(head="transformer"), "name a head this version does not have: transformer"),
    (lambda c: c["params"].pop("image_width"), "its settings do not name its model's image_width"),
    (lambda c: c.update(charset="00123456789abcde"), "repeats '0'"),
])
def test_a_checkpoint_whose_heads_disagree_with_its_charset_is_refused(tiny_run, tmp_path, edit, words):
    checkpoint = load_checkpoint(tiny_run["checkpoint"])
    edit(checkpoint)
    edited = str(tmp_path / "edited.pt")
    save_checkpoint(edited, checkpoint)
    with pytest.raises(ProjectError, match="is not a consistent checkpoint") as error:
        load_checkpoint(edited)
    assert words in str(error.value)


@pytest.mark.slow
def test_scripts_refuse_an_inconsistent_checkpoint_in_one_line(tiny_run, tmp_path, script):
    checkpoint = load_checkpoint(tiny_run["checkpoint"])
    checkpoint["charset"] = "0123456789abcde"  # one class fewer than the heads: it would read shifted characters
    edited = str(tmp_path / "edited.pt")
    save_checkpoint(edited, checkpoint)
    image = os.path.join(tiny_run["params"].test_dir, image_names(tiny_run["params"].test_dir)[0])
    words = "heads read 16 classes but its charset '0123456789abcde' has 15"
    for command in (("userPred.py", f"--checkpoint={edited}", image),
                    ("export_onnx.py", f"--checkpoint={edited}", f"--onnx_file={tmp_path / 'x.onnx'}")):
        result = script(*command, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert words in line


STALLED_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from files import atomic_write
def write(handle):  # half a file written, then the writer stalls until it is killed
    handle.write(b"half a checkpoint")
    handle.flush()
    time.sleep(120)
atomic_write(sys.argv[2], write)
"""


def stalled_writer(path):
    """A process stalled in the middle of atomic_write(path): (process, its temporary file)."""
    process = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, ROOT, str(path)])
    deadline = time.time() + 60
    while time.time() < deadline:
        temporary = [name for name in os.listdir(path.parent) if name.startswith(f"{path.name}.{process.pid}.")]
        if temporary:
            return process, path.parent / temporary[0]
        time.sleep(0.02)
    process.kill()
    raise AssertionError("the writer never started its temporary file")


def test_a_save_removes_the_temporary_files_of_killed_saves_only(tmp_path):
    last = tmp_path / "last.pt"
    killed, stale = stalled_writer(last)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert stale.exists()  # what a killed save leaves behind
    live, writing = stalled_writer(last)
    other, other_temporary = stalled_writer(tmp_path / "best.pt")
    other.send_signal(signal.SIGKILL)
    other.wait(timeout=30)
    try:
        save_checkpoint(str(last), {"step": 1})
        assert not stale.exists()  # its writer is dead
        assert writing.exists()  # a live writer's file is kept
        assert other_temporary.exists()  # another file's leftovers wait for that file's next save
        assert torch.load(str(last), weights_only=True) == {"step": 1}
    finally:
        live.kill()
        live.wait(timeout=30)
    save_checkpoint(str(tmp_path / "best.pt"), {"step": 2})
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt", writing.name]


def test_the_model_is_built_from_its_config_alone():
    defaults = make_parameters({})
    config = model_config(dataclasses.asdict(defaults), defaults.class_chars)
    assert config == ModelConfig(length=4, classes=62, head="positions", image_height=24, image_width=64,
                                 preset="default", stem_channels=32, stem_stride=2, stage_channels=(32, 64, 128, 192),
                                 stage_blocks=(1, 2, 2, 1), feature_stride=8, dropout=0.1)
    stem = CaptchaResNet(config).stem[0]
    assert (stem.out_channels, stem.stride[0]) == (defaults.stem_channels, defaults.stem_stride)
    varying = model_config({**dataclasses.asdict(defaults), "captcha_length": "4-6", "ignore_case": True}, "0123")
    assert (varying.length, varying.classes, varying.head) == (6, 4, "ctc")


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
        assert model.head.places[0].in_features == 192 * columns
        assert model(images).shape == (2, 4, 36)
    with pytest.raises(ValueError, match="feature_stride must be"):
        build_model(make_parameters({"feature_stride": 12}))
    with pytest.raises(ValueError, match="needs 4 stages"):
        build_model(make_parameters({"feature_stride": 32, "stage_channels": (32, 64, 128), "stage_blocks": (1, 1, 1)}))


def test_checkpoint_from_before_feature_stride_loads_at_one_eighth(tiny_run):
    checkpoint = load_checkpoint(tiny_run["checkpoint"])
    del checkpoint["params"]["feature_stride"], checkpoint["params"]["head"]
    model = model_from_checkpoint(checkpoint)
    assert (model.config.feature_stride, model.config.head) == (8, "positions")


TINY_MODEL = ["--stem_channels=8", "--stage_channels=16,32,64", "--stage_blocks=1,1,1"]


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """One labelled folder of 1200 generated captchas, for --data_dir runs."""
    root = tmp_path_factory.mktemp("folder")
    params = tiny_params(root, workers=2)
    generate_split(params, str(root / "captchas"), "train", 1200)
    return root


def folder_run(root, model_dir):
    """A --data_dir run whose settings all differ from the defaults the resume command would fall back to:
    split, inferred charset, batch size, augmentation, time budget (large: the step schedule dominates,
    so the learning rate does not depend on the clock), dropout (draws from the RNG last.pt saves)."""
    return [sys.executable, os.path.join(ROOT, "main.py"), f"--data_dir={root}/captchas", "--test_split=0.2",
            "--seed=3", "--infer_charset", "--batch_size=24", "--augment=on", "--time_budget=30", "--epochs=4",
            "--eval_epochs=2", f"--model_dir={model_dir}", f"--cache_dir={root}/cache", "--visdom=false",
            "--threads=1", "--workers=1", *TINY_MODEL]


@pytest.fixture(scope="module")
def straight_run(labelled_folder):
    """The run, uninterrupted: its last.pt."""
    model_dir = labelled_folder / "straight"
    subprocess.run(folder_run(labelled_folder, model_dir), check=True, capture_output=True, timeout=300)
    return load_checkpoint(str(model_dir / "last.pt"))


def interrupt(command, log, number, rows=2, cwd=ROOT):
    """Start `command`, send signal `number` once log.csv shows a step; (return code, output)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= rows:
            break
        time.sleep(0.02)
    process.send_signal(number)
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def resumed_as_printed(output):
    """Run the command the interrupted run printed, exactly as printed (from the same folder)."""
    command = output.split("continue with: ")[1].splitlines()[0]
    assert "--resume" in command and "--batch_size" not in command
    return subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=300, cwd=ROOT)


def evaluated_steps(model_dir):
    with open(os.path.join(model_dir, "log.csv"), newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row["accuracy"]]


@pytest.mark.slow
@pytest.mark.parametrize("number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_resumes_bit_for_bit_with_resume_alone(labelled_folder, straight_run, number, status):
    model_dir = labelled_folder / f"broken_{number}"
    code, output = interrupt(folder_run(labelled_folder, model_dir), model_dir / "log.csv", number)
    assert code == status, output
    assert "interrupted: saved" in output and "Traceback" not in output
    saved = load_checkpoint(str(model_dir / "last.pt"))
    total = straight_run["progress"]["step"]
    assert 0 < saved["progress"]["step"] < total
    assert saved["optimizer"]["state"][0]["step"].item() == saved["progress"]["step"]

    resumed = resumed_as_printed(output)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {model_dir}/last.pt at step {saved['progress']['step']}" in resumed.stdout
    assert "960 training and 240 test images" in resumed.stdout and "augmented, 30 min budget" in resumed.stdout
    done = load_checkpoint(str(model_dir / "last.pt"))
    settings = done["params"]
    assert (settings["batch_size"], settings["time_budget"], settings["augment"]) == (24, 30.0, "on")
    assert settings["data_dir"] == f"{labelled_folder}/captchas" and settings["charset"] == straight_run["charset"]
    assert done["progress"]["step"] == total
    # the optimizer state continued (not restarted): Adam's own step count covers the whole run
    assert done["optimizer"]["state"][0]["step"].item() == total
    for key, value in straight_run["model"].items():
        assert torch.equal(done["model"][key], value), key
    steps = evaluated_steps(model_dir)
    assert steps == sorted(set(steps)) == evaluated_steps(labelled_folder / "straight")


def log_rows(model_dir):
    """log.csv's rows as far as they are written (a row being appended may be cut short)."""
    try:
        with open(os.path.join(model_dir, "log.csv"), newline="") as handle:
            return [row for row in csv.DictReader(handle) if row["step"] and int(row["step"]) >= 0]
    except (OSError, ValueError):
        return []


@pytest.mark.slow
def test_killed_run_resumes_without_repeating_log_rows(labelled_folder, straight_run):
    """kill -9 leaves last.pt of the last evaluation and log rows written after it: the resumed run drops
    those rows and writes its own, one row per step and kind, and still ends bit for bit as the straight run."""
    model_dir = labelled_folder / "killed"
    process = subprocess.Popen(folder_run(labelled_folder, model_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        rows = log_rows(model_dir)
        evaluated = [int(row["step"]) for row in rows if row["accuracy"]]
        if evaluated and any(int(row["step"]) > evaluated[0] for row in rows if row["train_loss"]):
            break
        time.sleep(0.02)
    process.kill()
    process.wait(60)
    saved = load_checkpoint(str(model_dir / "last.pt"))["progress"]["step"]
    assert any(int(row["step"]) > saved for row in log_rows(model_dir))  # rows past last.pt were written

    resumed = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--resume", f"--model_dir={model_dir}"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert evaluated_steps(model_dir) == evaluated_steps(labelled_folder / "straight")
    losses = [int(row["step"]) for row in log_rows(model_dir) if row["train_loss"]]
    assert losses == sorted(set(losses))
    done = load_checkpoint(str(model_dir / "last.pt"))
    for key, value in straight_run["model"].items():
        assert torch.equal(done["model"][key], value), key


@pytest.mark.slow
def test_extending_a_finished_run_continues_on_a_low_tail(labelled_folder, straight_run, tmp_path):
    model_dir = tmp_path / "extended"
    subprocess.run(["cp", "-r", str(labelled_folder / "straight"), str(model_dir)], check=True)
    before = straight_run["progress"]
    lr = straight_run["params"]["lr"]
    again = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--resume", f"--model_dir={model_dir}"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "is over" in again.stdout and "--extend=MINUTES" in again.stdout

    extend = [sys.executable, os.path.join(ROOT, "main.py"), "--resume", f"--model_dir={model_dir}", "--extend=0.05",
              "--eval_every=10"]
    result = subprocess.run(extend, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    done = load_checkpoint(str(model_dir / "last.pt"))
    progress = done["progress"]
    assert progress["tail_start"] == pytest.approx(before["seconds"]) and progress["step"] > before["step"]
    assert progress["seconds"] - before["seconds"] >= 3.0 and done["params"]["extend"] == 0.05
    with open(model_dir / "log.csv", newline="") as handle:
        rates = [float(row["lr"]) for row in csv.DictReader(handle) if row["lr"] and int(row["step"]) > before["step"]]
    assert rates, "no loss rows after the extension started"
    assert max(rates) <= 0.1 * lr + 1e-9 and rates == sorted(rates, reverse=True)  # no warm-up: only down
    steps = evaluated_steps(model_dir)
    assert steps == sorted(set(steps)) and steps[-1] == progress["step"]


@pytest.mark.slow
def test_resume_refuses_settings_of_the_run_in_one_line(labelled_folder, straight_run, tmp_path, script):
    model_dir = labelled_folder / "straight"
    for flag in ("--batch_size=64", "--data_dir=elsewhere", "--lr=0.1", "--epochs=200"):
        result = script("main.py", "--resume", f"--model_dir={model_dir}", flag, check=False)
        key = flag[2:].split("=")[0]
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: --{key} cannot change on --resume"), line
        assert ("--extend=MINUTES" in line) == (key == "epochs")
    same = script("main.py", "--resume", f"--model_dir={model_dir}", "--batch_size=24", "--threads=1", check=False)
    assert same.returncode == 0 and "is over" in same.stdout  # the run's own value, and an allowed setting

    old = load_checkpoint(str(model_dir / "last.pt"))
    del old["optimizer"], old["progress"]
    save_checkpoint(str(tmp_path / "last.pt"), old)
    result = script("main.py", "--resume", f"--model_dir={tmp_path}", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "has no optimizer or progress to resume from" in result.stderr
    fresh = script("main.py", f"--model_dir={tmp_path / 'new'}", "--extend=5", check=False)
    assert fresh.returncode == 2 and "use it with --resume" in fresh.stderr


def test_generated_batches_are_the_same_with_any_workers_and_from_any_position(tmp_path):
    def batches(workers, first):
        params = tiny_params(tmp_path, data_mode="generate", train_count=96, batch_size=16, workers=workers)
        return list(generated_batches(params, Ranks(), 6, 2, first))

    one, two, resumed = batches(1, 0), batches(2, 0), batches(2, 4)
    assert len(one) == 6 and len(resumed) == 2 and one[0][0].shape == (16, 24, 64, 3)
    for (images, targets), (other_images, other_targets) in zip(one, two):
        assert torch.equal(images, other_images) and torch.equal(targets, other_targets)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(one[4:], resumed))
    assert not torch.equal(one[0][0], one[1][0])


def test_generated_batches_hold_what_the_written_files_read_back(tmp_path):
    params = tiny_params(tmp_path, data_mode="generate", train_count=16, batch_size=8, workers=1)
    images = torch.cat([batch for batch, _ in generated_batches(params, Ranks(), 2, 3, 0)])
    generate_split(params, str(tmp_path / "files"), "stream3", 16)  # epoch 3's stream, written as generate_captcha does
    names = image_names(str(tmp_path / "files"))
    assert params.image_format == "jpg" and len(names) == 16
    for name in names:
        index = int(NAME_PATTERN.match(name).group("index"))
        written, problem = read_image(str(tmp_path / "files" / name), params.image_width, params.image_height)
        assert problem is None and torch.equal(images[index], torch.tensor(written))  # JPG artefacts and all


def ctrl_c_as_in_a_terminal():
    """In the child before exec: SIGINT's default action, which Python turns into KeyboardInterrupt (a suite
    started in the background, e.g. `make test &`, passes SIGINT on ignored, and Python then leaves it so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), f"--model_dir={tmp_path}",
                                f"--train_dir={tmp_path}/none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    deadline = time.time() + 60
    while time.time() < deadline:  # torch is loading: the start-up has begun inside main()
        with open(f"/proc/{process.pid}/maps") as maps:
            if "libtorch" in maps.read():
                break
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in errors
    [line] = errors.strip().splitlines()
    assert line == "error: interrupted: stopped at once, nothing saved since the last checkpoint"


@pytest.mark.slow
def test_a_second_signal_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a suite started in the background
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # at once: torchrun passing the same Ctrl-C on, not a second one
        assert signals.caught == signal.SIGTERM
        time.sleep(1.1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, between bytecodes
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.slow
def test_torchrun_two_processes_train_and_resume(labelled_folder, tmp_path):
    model_dir = tmp_path / "ddp"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [torchrun, "--standalone", "--nproc_per_node=2", *folder_run(labelled_folder, model_dir)[1:],
               "--batch_size=12"]
    code, output = interrupt(command, model_dir / "log.csv", signal.SIGINT)
    assert code != 0 and output.count("interrupted: saved") == 1, output  # rank 0 alone saves and says so
    assert output.count("device cpu") == 1  # and alone reports
    saved = load_checkpoint(str(model_dir / "last.pt"))
    assert saved["progress"]["step"] > 0
    resumed = resumed_as_printed(output)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert resumed.stdout.count(f"resuming {model_dir}/last.pt") == 1
    done = load_checkpoint(str(model_dir / "last.pt"))
    assert done["params"]["batch_size"] == 12 and done["progress"]["step"] == 4 * (960 // 24)
    assert done["progress"]["metrics"]["char_accuracy"] > 0.1
    steps = evaluated_steps(model_dir)
    assert steps == sorted(set(steps))  # one row per evaluated step: one process writes the log
    assert sorted(os.listdir(model_dir)) == [LOCK_FILE, "best.pt", "curves.png", "last.pt", "log.csv"]


@pytest.mark.slow
def test_resume_without_checkpoint_is_a_clear_error(tmp_path, script):
    result = script("main.py", f"--model_dir={tmp_path}/none", "--resume", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: --resume: no checkpoint at {tmp_path}/none/last.pt; "
                                                  "start without --resume"]


@pytest.mark.slow
def test_training_plots_reach_a_real_visdom_server(tiny_run, tmp_path):
    from visdom import Visdom

    from test_visdom import free_port
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


class Recorder:
    """A callback that keeps what the run told it."""

    def __init__(self):
        self.steps, self.evaluations, self.finished = [], [], 0

    def step(self, run, progress, lr, loss, images):
        self.steps.append((progress.step, lr, float(loss)))

    def evaluation(self, progress, metrics, test, predictions):
        self.evaluations.append((progress.step, metrics["accuracy"], len(predictions)))

    def finish(self, run, progress, predictions):
        self.finished += 1


def test_callbacks_hear_every_step_evaluation_and_the_end(tiny_run, tmp_path):
    recorder = Recorder()
    metrics = train(tiny_params(tiny_run["root"], epochs=2, model_dir=str(tmp_path / "heard")), callbacks=[recorder])
    steps = [step for step, _, _ in recorder.steps]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 10
    assert all(lr > 0 and loss > 0 for _, lr, loss in recorder.steps)
    assert recorder.evaluations[-1] == (steps[-1], metrics["accuracy"], 200) and recorder.finished == 1
