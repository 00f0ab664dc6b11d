"""README.md's commands and the smoke run that runs them all (tests/smoke_readme.py, `make smoke`) name
the same commands: a command added to the README is run by the smoke run, or it says why not."""
import os

from conftest import ROOT
from smoke_readme import SMALL, NotRun, Server, readme_commands


def test_the_smoke_run_covers_every_readme_command_and_no_other():
    with open(os.path.join(ROOT, "README.md")) as handle:
        commands = readme_commands(handle.read())
    assert len(commands) > 20 and "make demo" in commands and "python main.py --epochs=5" in commands
    assert [command for command in commands if command not in SMALL] == []
    assert [command for command in SMALL if command not in commands] == []
    left_out = [command for command, action in SMALL.items() if isinstance(action, NotRun)]
    assert left_out == ["make test", "make smoke"]  # the suite, and this run itself; everything else runs
    assert all(isinstance(SMALL[c], Server) for c in ("make visdom", "python api_demo.py"))


def test_readme_commands_are_read_as_a_shell_reads_them():
    text = ("intro\n```bash\nmake demo    # a comment\npython main.py --a=1 \\\n   --b=2\n\n```\n"
            "```text\nnot a command\n```\n```python\nimport x\nprint(x)\n```\n")
    assert readme_commands(text) == ["make demo", "python main.py --a=1 --b=2", "import x\nprint(x)"]
