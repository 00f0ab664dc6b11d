"""The command line every script shares: `--key=value` settings scoped to the script, --help, and the
one-line ending of a script that fails.

    params = parse_args(argv, doc=__doc__, script=__file__)    # in a script's main()
    run_main(main)                                             # under its `if __name__ == "__main__":`

Each script takes the groups of settings SCRIPT_GROUPS names (parameters.py defines them), and a bench script
its own group too (`kind`: bench/bench_settings.py); another script's setting, or a misspelt one, is refused
in one line that names the scripts that take it or the nearest setting.
"""
import difflib
import errno
import os
import sys

from parameters import FIELDS, ParameterError, Parameters, added_groups, fields_of, layout, make_parameters, type_name
from errors import ProjectError
from setting import choices_of, range_text
from styles import DESCRIPTIONS

_HERE = os.path.dirname(os.path.abspath(__file__))


# The groups of settings each script's command line takes (the GROUP of each class in SETTING_GROUPS),
# its own group first: its --help lists these groups in this order, and it refuses any other setting.
# make_parameters() (programmatic use) takes every setting. Paths are relative to this folder.
SCRIPT_GROUPS = {
    "generate_captcha.py": ("generation", "data", "style", "looks", "captcha"),
    "custom_captcha_image.py": ("style", "looks", "captcha"),
    "dataset.py": ("data", "captcha"),
    "model.py": ("model", "captcha", "training"),  # training: the speed test's batch_size and amp
    # style: data_mode=generate
    "main.py": ("training", "model", "run", "data", "captcha", "style", "looks", "dashboard"),
    "userTest.py": ("evaluation", "prediction", "run", "data"),  # data: how the golden folder is read and cached
    "userPred.py": ("prediction", "run"),
    "api_demo.py": ("serving", "prediction", "run"),
    "export_onnx.py": ("export", "prediction", "run"),
    "visdom_server.py": ("dashboard", "run"),  # run: model_dir names the environment it prints
    # the bench scripts that read with kind=BenchParameters take their own group (benchmarks) first, too
    "bench/bench_train.py": ("training", "model", "run", "data", "captcha", "style", "looks", "dashboard"),
    "bench/bench_real.py": ("training", "model", "run", "data", "captcha", "style", "looks", "generation",
                            "dashboard"),
    "bench/bench_sweep.py": ("training",),
    "bench/bench_generate.py": ("generation", "data", "style", "looks", "captcha"),
    "bench/bench_predict.py": ("prediction", "run"),
    "bench/bench_api.py": ("serving", "prediction", "run"),
    "bench/bench_style.py": ("style", "looks", "captcha"),
    "arithmetic.py": ("captcha",),
    "bench/bench_kinds.py": ("training", "model", "run", "data", "captcha", "style", "looks", "generation",
                             "dashboard"),
    "fit_style.py": ("fitting", "style", "looks", "captcha", "generation"),
    "site_model.py": ("site", "fitting", "choosing", "captcha"),
    "choose_style.py": ("choosing", "captcha"),
    "bench/preview_knobs.py": ("style", "looks", "captcha", "generation"),
}



def group_of(key):
    return next(group for group, (_, names) in layout()[0].items() if key in names)


def script_name(script):
    """'main.py', or a script's path (its __file__) -> its key in SCRIPT_GROUPS."""
    name = script if script in SCRIPT_GROUPS else os.path.relpath(os.path.abspath(script), _HERE).replace(os.sep, "/")
    if name not in SCRIPT_GROUPS:
        raise ValueError(f"{name} has no entry in command_line.SCRIPT_GROUPS")
    return name


def script_groups(script=None, kind=Parameters):
    """The groups a script takes, its own first (those `kind` adds before them); every group, in file order,
    for script=None."""
    if script is None:
        return tuple(layout(kind)[0])
    return tuple(part.GROUP for part in added_groups(kind)) + SCRIPT_GROUPS[script_name(script)]


def script_settings(script=None, kind=Parameters):
    """The settings a script's command line takes, in --help order (every setting for script=None)."""
    groups = layout(kind)[0]
    return [name for group in script_groups(script, kind) for name in groups[group][1]]


def scripts_taking(key):
    """The scripts whose command line takes setting `key`."""
    group = group_of(key)
    return [name for name, groups in SCRIPT_GROUPS.items() if group in groups]


def _listing(names):
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def check_key(key, script=None, kind=Parameters):
    """Refuse a key the script does not take: another script's setting names its scripts, a misspelt one
    gets the closest setting's name."""
    allowed = script_settings(script, kind)
    if key in allowed:
        return
    if key in FIELDS:
        raise ParameterError(f"--{key} is a setting of {_listing(scripts_taking(key))}, not of {script_name(script)}")
    guess = difflib.get_close_matches(key, allowed, n=1) or difflib.get_close_matches(key, FIELDS, n=1)
    hint = f"did you mean --{guess[0]}?" if guess else "run with --help to list them"
    raise ParameterError(f"unknown setting --{key} ({hint})")


def _shown(value):
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def help_text(doc="", script=None, kind=Parameters):
    """--help: the script's docstring, then the settings of its groups, its own group first."""
    groups, comments = layout(kind)
    fields = fields_of(kind)
    lines = [doc.strip(), "", "Settings (override any with --key=value; a bare --flag sets a true/false flag):"]
    defaults = kind()
    for group in script_groups(script, kind):
        title, names = groups[group]
        lines += ["", f"{group}: {title}"]
        for name in names:
            listed = choices_of(fields[name])
            choices = f": {', '.join(listed)}" if listed is not None else ""
            bounds = range_text(fields[name].metadata["range"])
            choices += f", {bounds}" if bounds else ""
            lines.append(f"  --{name}={_shown(getattr(defaults, name))}")
            lines.append(f"        {comments[name]} [{type_name(fields[name].type)}{choices}]")
    if "style" in script_groups(script, kind):
        lines += ["", "styles (--style=NAME; styles.py has each one's settings):"]
        lines += [f"  {name:18s} {text}" for name, text in DESCRIPTIONS.items()]
    return "\n".join(lines)


def print_help(text):
    """Print --help and exit; a reader that stops early (`--help | head`) ends it quietly, not with a traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        discard_stdout()
    raise SystemExit(0)


def discard_stdout():
    """Point stdout at /dev/null once its reader has gone: Python flushes stdout again at exit and would
    report the closed pipe with a traceback."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def parse_overrides(argv, script=None, kind=Parameters):
    """['--a=1', '--flag', 'path'] -> ({'a': '1', 'flag': 'true'}, ['path']).

    Only the settings of `script` (a SCRIPT_GROUPS key or a script's __file__; None: every setting of `kind`)
    are taken."""
    overrides, positional = {}, []
    for arg in argv:
        if arg == "-" or not arg.startswith("--"):
            positional.append(arg)
            continue
        key, sep, value = arg[2:].partition("=")
        check_key(key, script, kind)
        if not sep:
            if type_name(fields_of(kind)[key].type) != "bool":
                raise ParameterError(f"--{key} needs a value: --{key}=VALUE")
            value = "true"
        overrides[key] = value
    return overrides, positional


def parse_args(argv=None, doc="", positional=False, script=None, kind=Parameters):
    """Parse a script's command line into Parameters, or the settings class `kind` (and positional arguments
    when allowed).

    `script` (the script's __file__) limits the command line to that script's groups in SCRIPT_GROUPS, and
    those `kind` adds. A bad, unknown or foreign setting prints one line naming the key and exits with status 2.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print_help(help_text(doc, script, kind))
    try:
        overrides, rest = parse_overrides(argv, script, kind)
        if rest and not positional:
            raise ParameterError(f"unexpected argument {rest[0]!r} (settings are --key=value)")
        params = make_parameters(overrides, kind=kind)
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return (params, rest) if positional else params


def script_command(script, subcommand, python="python"):
    """How a message tells the user to start `script` ('main.py'): `captcha-ocr SUBCOMMAND` when they started the
    installed command (its files are not theirs to run), else `python` (or the interpreter given) and the script."""
    if os.path.basename(sys.argv[0]) == "captcha-ocr":
        return f"captcha-ocr {subcommand}"
    return f"{python} {script}"


def fail(message, status=2):
    """Stop a script with a clear one-line message (no traceback): status 2 for what was asked (settings,
    files), 1 for work that ran and failed."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


# Errors of a full or read-only disk: a script ends with one line, not a traceback.
WRITE_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS)


def run_main(main):
    """A script's entry point: main(), a ProjectError ending it in one line, and a closed output pipe
    (`python main.py --help | head`) ending it quietly."""
    try:
        try:
            main()
        finally:
            sys.stdout.flush()  # here, not at exit: a reader that went away is caught below
    except ProjectError as error:
        fail(str(error), error.exit_status)
    except BrokenPipeError:
        discard_stdout()
        raise SystemExit(1) from None
    except OSError as error:
        if error.errno not in WRITE_ERRORS:
            raise
        fail(f"{error.strerror}: {error.filename or 'a file'} (the files written before it are intact)", 1)
