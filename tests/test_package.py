"""The package (pyproject.toml): it holds every module of the checkout, installs, and its `captcha-ocr`
command runs the scripts from the installed copy, not from the checkout."""
import glob
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT


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
def test_an_installed_copy_runs_the_scripts_as_captcha_ocr(tmp_path):
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
