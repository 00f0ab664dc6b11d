"""Nothing lost: a second training on a model_dir, or a second generation into a folder, is refused in one
line naming the first; a killed writer's lock is taken over; a full disk ends a run in one line with its last
good checkpoint kept."""
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, tiny_params
from dataset import image_names
from folder_lock import FolderInUse, OWNER_FILE, one_writer
from generate_captcha import generate_split
from model import load_checkpoint


def start(script, *args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def generation(root, count):
    """(folder, generate_captcha.py's command line writing `count` captchas into it, one process)."""
    folder = str(root / "train")
    return folder, [f"--train_dir={folder}", f"--test_dir={root}/test", f"--train_count={count}", "--test_count=0",
                    "--workers=1", f"--preview_file={root}/preview.png"]


def wait_for(path, process, seconds=120):
    """Until `path` exists (the writer holds its folder); fails if `process` ends first."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_held_folder_is_refused_in_one_line_and_free_again_after(tmp_path):
    with one_writer(str(tmp_path)):
        with pytest.raises(FolderInUse, match=rf"{tmp_path} is being written by another run \(pid {os.getpid()}, "
                                              rf"started .*: .*\): wait for it to end, or write to another folder"):
            with one_writer(str(tmp_path)):
                pass
    assert not (tmp_path / OWNER_FILE).exists()
    with one_writer(str(tmp_path)):  # released: the next writer takes it
        pass


def training(root, minutes):
    """(params, main.py's command line) of a small run of `minutes` on a tiny generated set under `root`."""
    params = tiny_params(root, train_count=300, test_count=60, workers=1)
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    return params, [f"--train_dir={params.train_dir}", f"--test_dir={params.test_dir}",
                    f"--model_dir={params.model_dir}", "--charset=0123456789abcdef", "--stem_channels=8",
                    "--stage_channels=16,32", "--stage_blocks=1,1", "--visdom=false", "--cache_dir=",
                    f"--time_budget={minutes}", "--batch_size=32"]


@pytest.mark.slow
def test_a_second_training_on_one_model_dir_is_refused_and_the_first_finishes(tmp_path, script):
    params, command = training(tmp_path, 0.3)
    first = start("main.py", *command)
    wait_for(os.path.join(params.model_dir, OWNER_FILE), first)
    second = script("main.py", *command, check=False)
    assert second.returncode == 2 and second.stderr.count("\n") == 1
    assert f"is being written by another run (pid {first.pid}, started " in second.stderr
    assert "main.py" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert load_checkpoint(os.path.join(params.model_dir, "best.pt"))["progress"]["step"] > 0


@pytest.mark.slow
def test_a_second_generation_into_one_folder_is_refused_and_the_folder_completes(tmp_path, script):
    folder, command = generation(tmp_path, 20000)
    first = start("generate_captcha.py", *command)
    wait_for(os.path.join(folder, OWNER_FILE), first)
    second = script("generate_captcha.py", *command, check=False)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.startswith(f"error: {folder} is being written by another run (pid {first.pid}")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert len(image_names(folder)) == 20000


@pytest.mark.slow
def test_a_killed_generations_lock_is_taken_over(tmp_path, script):
    folder, command = generation(tmp_path, 3000)
    first = start("generate_captcha.py", *command)
    wait_for(os.path.join(folder, OWNER_FILE), first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert os.path.exists(os.path.join(folder, OWNER_FILE))  # what the killed run left: taken over below
    script("generate_captcha.py", *command)
    assert len(image_names(folder)) == 3000 and not os.path.exists(os.path.join(folder, OWNER_FILE))


@pytest.mark.slow
def test_a_full_disk_ends_the_run_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, script):
    params, command = training(tmp_path, 0.05)
    script("main.py", *command)
    best = os.path.join(params.model_dir, "best.pt")
    saved = open(best, "rb").read()
    limit = len(saved) // 2  # files may grow to half a checkpoint: the next save fails part way, as on a full disk
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *command], capture_output=True, text=True,
                            timeout=300, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert result.returncode == 1 and "Traceback" not in result.stderr  # the work failed (2: a bad request)
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot write the checkpoint {params.model_dir}/")
    assert open(best, "rb").read() == saved
    assert not [name for name in os.listdir(params.model_dir) if name.endswith(".tmp")]
