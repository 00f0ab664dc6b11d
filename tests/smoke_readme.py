"""Runs every command block of README.md in order, as a user would, on a fresh clone of this checkout, with
small sizes: `make smoke`. It fails on a command that exits non-zero or prints a traceback.

    python tests/smoke_readme.py           # clones the checkout's HEAD into a temporary folder, runs, removes it
    python tests/smoke_readme.py --keep    # leaves the clone (its path is printed) to look at

The clone uses this checkout's .venv (make venv builds it), activated as the README says. Before the first
command it makes the files the README assumes a user has: `my_site/` (a site's labelled captchas),
`captcha.jpg` and `shots/`. SMALL maps each README command to what runs (the same command, smaller), a
server to start, or why it is not run; tests/test_readme.py checks that SMALL and README.md name the same
commands, so a command added to the README is run here or said why not.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND_TIMEOUT = 1200  # seconds a command may take (make demo, the slowest, takes 1-2 minutes small)


class Server:
    """A README command that serves until stopped: started in the background, ready once `url` answers."""

    def __init__(self, command, url):
        self.command, self.url = command, url


class NotRun:
    """A README command the smoke run leaves out, and why."""

    def __init__(self, why):
        self.why = why


SMALL_SITE = ("--fit_minutes=0.3 --fit_images=20 --fit_rounds=1 --site_candidates=2 --choose_count=300 "
              "--choose_minutes=0.1 --site_train_count=600 --site_minutes=0.2 --site_self_minutes=0.1")
API = "http://127.0.0.1:5000/health"
# Each README command (as printed, comments and line continuations removed) -> what the smoke run does.
SMALL = {
    "make demo": "make demo DEMO_TRAIN=1500 DEMO_TEST=200 DEMO_EPOCHS=2 DEMO_MIN_ACCURACY=0",
    "make test": NotRun("the whole suite, which CI runs"),
    "make test-fast": "make test-fast",
    "make smoke": NotRun("this run"),
    "python main.py --data_dir=my_site --test_split=0.2 --time_budget=10":
        "python main.py --data_dir=my_site --test_split=0.2 --time_budget=0.3",
    "python site_model.py my_site/ --charset=2345678abcdefgmnpwxy --captcha_length=4":
        f"python site_model.py my_site/ --charset=2345678abcdefgmnpwxy --captcha_length=4 {SMALL_SITE}",
    "make site SITE=my_site CHARSET=2345678abcdefgmnpwxy LENGTH=4":  # the run above, done: it says so
        f"make site SITE=my_site CHARSET=2345678abcdefgmnpwxy LENGTH=4 ARGS='{SMALL_SITE}'",
    "python generate_captcha.py --train_count=20000 --test_count=2000":
        "python generate_captcha.py --train_count=1500 --test_count=200",
    "python generate_captcha.py --preview": "python generate_captcha.py --preview",
    "python main.py --time_budget=20": "python main.py --time_budget=0.2",
    "python main.py --epochs=5": "python main.py --epochs=2",
    "python main.py --resume --model_dir=model": "python main.py --resume --model_dir=model",
    "python main.py --resume --model_dir=model --extend=5": "python main.py --resume --model_dir=model --extend=0.1",
    "torchrun --standalone --nproc_per_node=4 main.py": "torchrun --standalone --nproc_per_node=2 main.py --epochs=1",
    "make visdom": Server("make visdom", "http://127.0.0.1:8097"),
    "python main.py": "python main.py --time_budget=0.2",
    "python userTest.py --golden_dir=data/captcha/test --checkpoint=model/best.pt":
        "python userTest.py --golden_dir=data/captcha/test --checkpoint=model/best.pt",
    "python userPred.py captcha.jpg shots/": "python userPred.py captcha.jpg shots/",
    "python userPred.py --json --backend=onnx captcha.jpg": "python userPred.py --json --backend=onnx captcha.jpg",
    "python api_demo.py": Server("python api_demo.py", API),
    "python api_demo.py --server=waitress": Server("python api_demo.py --server=waitress", API),
    "curl -F image=@captcha.jpg http://127.0.0.1:5000/predict": "curl -sS -F image=@captcha.jpg "
                                                                "http://127.0.0.1:5000/predict",
    'curl -H \'Content-Type: application/json\' -d "{\\"image\\": \\"$(base64 -w0 captcha.jpg)\\"}" '
    'http://127.0.0.1:5000/predict':
        'curl -sS -H \'Content-Type: application/json\' -d "{\\"image\\": \\"$(base64 -w0 captcha.jpg)\\"}" '
        'http://127.0.0.1:5000/predict',
    'from predictor import Reader\nreader = Reader("model/best.onnx")\nprint(reader.read("captcha.jpg")["text"])':
        'python -c \'from predictor import Reader\nreader = Reader("model/best.onnx")\n'
        'print(reader.read("captcha.jpg")["text"])\'',
}


def readme_commands(text):
    """The commands of README.md's ```bash blocks (a line each, continuations joined, comments removed) and
    its ```python blocks (a block each), in order."""
    commands = []
    for language, body in re.findall(r"^```(bash|python)\n(.*?)^```", text, re.S | re.M):
        if language == "python":
            commands.append(body.strip())
            continue
        for line in body.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                commands.append(re.sub(r"\s+", " ", command))
    return commands


def user_files(clone, env):
    """What the README assumes a user has: my_site/ (a site's labelled captchas: pku_elective's look, its
    generator's record removed as a real folder has none), captcha.jpg and shots/ (captchas to read)."""
    run("python generate_captcha.py --style=pku_elective --train_dir=my_site --train_count=400 --test_count=0 "
        "--workers=2", clone, env)
    os.remove(os.path.join(clone, "my_site", ".generator.json"))
    run("python generate_captcha.py --style=seed --image_format=jpg --train_dir=shots --train_count=3 --test_count=0",
        clone, env)
    shutil.copy(os.path.join(clone, "shots", sorted(n for n in os.listdir(os.path.join(clone, "shots"))
                                                    if n.endswith(".jpg"))[0]), os.path.join(clone, "captcha.jpg"))


def run(command, clone, env):
    """Run one command in the clone; exit with its output on a non-zero status or a traceback."""
    start = time.monotonic()
    result = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT)
    output = result.stdout + result.stderr
    problem = ("exit status %d" % result.returncode if result.returncode else
               "a traceback" if "Traceback (most recent call last)" in output else
               "an error answer" if command.startswith("curl") and '"error"' in output else None)
    if problem:
        sys.exit(f"{output[-4000:]}\nsmoke: {command!r} ended with {problem} (output above)")
    last = output.strip().splitlines()[-1] if output.strip() else ""
    print(f"ok  {time.monotonic() - start:6.1f} s  {command}\n             {last[:150]}", flush=True)


def start_server(server, clone, env, servers):
    """Start a server (first stopping one on the same address) and wait until it answers."""
    for other in [s for s in servers if s[0].url == server.url]:
        stop(other[1])
        servers.remove(other)
    process = subprocess.Popen(["bash", "-c", server.command], cwd=clone, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    servers.append((server, process))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"smoke: {server.command!r} ended with exit status {process.returncode} before serving")
        try:
            urllib.request.urlopen(server.url, timeout=5).close()
            print(f"ok  serving  {server.command} ({server.url})", flush=True)
            return
        except OSError:
            time.sleep(1)
    sys.exit(f"smoke: {server.command!r} did not answer at {server.url} in 300 s")


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def smoke(clone):
    env = {**os.environ, "VIRTUAL_ENV": os.path.join(clone, ".venv"),
           "PATH": os.path.join(clone, ".venv", "bin") + os.pathsep + os.environ["PATH"]}
    env.pop("PYTHONPATH", None)
    with open(os.path.join(clone, "README.md")) as handle:
        commands = readme_commands(handle.read())
    missing = [command for command in commands if command not in SMALL]
    if missing:
        sys.exit(f"smoke: README commands with no entry in SMALL: {missing}")
    user_files(clone, env)
    servers = []
    try:
        for command in commands:
            action = SMALL[command]
            if isinstance(action, NotRun):
                print(f"--  not run: {command} ({action.why})", flush=True)
            elif isinstance(action, Server):
                start_server(action, clone, env, servers)
            else:
                run(action, clone, env)
    finally:
        for _, process in servers:
            stop(process)
    print(f"smoke: every command of README.md ran ({len(commands)} commands)")


def main():
    keep = "--keep" in sys.argv[1:]
    if not os.path.isdir(os.path.join(ROOT, ".venv")):
        sys.exit("smoke: no .venv in the checkout: make venv first")
    work = tempfile.mkdtemp(prefix="readme_smoke_")
    clone = os.path.join(work, "captcha-ocr")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    os.symlink(os.path.join(ROOT, ".venv"), os.path.join(clone, ".venv"))
    try:
        smoke(clone)
    finally:
        if keep:
            print(f"the clone: {clone}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
