"""This project's scripts run one after another as the steps of a longer job (site_model.py, choose_style.py),
each in its own process as a user would run it."""
import os
import subprocess
import sys

from command_line import fail

HERE = os.path.dirname(os.path.abspath(__file__))
TRIALS_FILE = "trials.json"  # choose_style.py's record of its trials in its work folder (site_model.py reads it)


def training(model_dir, command):
    """The training command, or the one that resumes it when model_dir holds a run already."""
    if os.path.isfile(os.path.join(model_dir, "last.pt")):
        return ["main.py", "--resume", f"--model_dir={model_dir}", "--visdom=false"]
    return command + ["--visdom=false"]


def run_step(number, title, command, quiet=False):
    """Run `command` (a script of this folder and its arguments); a failure ends the job with one line that
    says how to go on. quiet: its output is not shown (a failure shows its last lines)."""
    output = subprocess.PIPE if quiet else None
    result = subprocess.run([sys.executable, os.path.join(HERE, command[0]), *command[1:]], stdout=output,
                            stderr=subprocess.STDOUT if quiet else None, text=True)
    if result.returncode:
        if quiet:
            print("\n".join(result.stdout.splitlines()[-5:]), file=sys.stderr)
        fail(f"step {number} ({title}) failed with exit status {result.returncode}; fix what it said and run "
             f"the same command again to go on from there")
