"""The package (pyproject.toml): it holds every module of the checkout, installs, and its `captcha-ocr`
command runs the scripts from the installed copy, not from the checkout."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT
from dataset import image_names


def test_the_package_lists_every_module_of_the_checkout():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)
    modules = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(ROOT, "*.py")))
    assert sorted(project["tool"]["setuptools"]["py-modules"]) == modules
    assert project["project"]["scripts"] == {"captcha-ocr": "captcha_ocr:main"}
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        pinned = {line.split("==")[0].lower() for line in handle if "==" in line and not line.startswith("#")}
    named = {entry.split(">")[0].split("<")[0].split("=")[0].lower() for entry in project["project"]["dependencies"]}
    assert named <= pinned  # every dependency has the pin CI and the Makefile install


@pytest.mark.slow
def test_an_installed_copy_runs_the_scripts_as_captcha_ocr(tmp_path, tiny_run):
    source, target = tmp_path / "source", tmp_path / "site"  # a copy: building writes build/ beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "data", "runs", "model", "build", "__pycache__",
                                                                "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
                    "--no-build-isolation", f"--target={target}", str(source)], check=True, capture_output=True,
                   timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = tmp_path / "elsewhere"  # not the checkout: what runs is the installed copy
    where.mkdir()

    def command(*args):
        return subprocess.run([sys.executable, str(target / "bin" / "captcha-ocr"), *args], cwd=where, env=env,
                              capture_output=True, text=True, timeout=300)

    found = subprocess.run([sys.executable, "-c", "import predictor; print(predictor.__file__)"], cwd=where, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == str(target / "predictor.py")
    assert command("--version").stdout.startswith("captcha-ocr 0.")
    assert command("train", "--help").stdout == subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "--help"], capture_output=True, text=True).stdout
    preview = command("generate", "--preview", "--preview_count=4", "--preview_file=grid.png")
    assert preview.returncode == 0 and (where / "grid.png").stat().st_size > 0
    bad = command("train", "--epochs=-1")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --epochs must be")
    unknown = command("fly")
    assert unknown.returncode == 2 and "one of generate, train, test, predict, serve" in unknown.stderr
    shutil.copytree(tiny_run["params"].model_dir, where / "tiny")  # a short run: its warning says how to go on
    resumed = command("train", "--resume", "--model_dir=tiny", "--extend=0.01", "--visdom=false")
    go_on = "continue this run with captcha-ocr train --resume --model_dir=tiny --extend=10"
    assert resumed.returncode == 0 and go_on in resumed.stdout, resumed.stdout + resumed.stderr

    # Serving's install (requirements-serve.txt, pip install --no-deps .): no PyTorch. A torch that cannot be
    # imported stands for it: the ONNX model is read by the command and by the library call all the same.
    from export_onnx import export
    shutil.copy(tiny_run["checkpoint"], where / "best.pt")
    export(str(where / "best.pt"), ddddocr=False)
    blocked = tmp_path / "no_torch"
    (blocked / "torch").mkdir(parents=True)
    (blocked / "torch" / "__init__.py").write_text("raise ImportError('PyTorch is not installed here')\n")
    env["PYTHONPATH"] = f"{blocked}{os.pathsep}{target}"
    image = os.path.join(tiny_run["params"].test_dir, image_names(tiny_run["params"].test_dir)[1])
    read = command("predict", "--backend=onnx", "--checkpoint=best.onnx", "--json", image)
    assert read.returncode == 0, read.stderr
    library = subprocess.run([sys.executable, "-c", "from predictor import Reader\nreader = Reader('best.onnx')\n"
                              f"print(reader.read({image!r})['text'])"], cwd=where, env=env, capture_output=True,
                             text=True, timeout=120)
    assert library.stdout.strip() == json.loads(read.stdout)[0]["text"] != ""
