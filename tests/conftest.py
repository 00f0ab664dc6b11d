"""Shared test fixtures: the repo root on sys.path and helpers to run scripts as a user would."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


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
