"""Settings: --key=value overrides are type-checked, scoped to the script, choices checked when read."""
import dataclasses
import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, script_kind
from command_line import SCRIPT_GROUPS, check_key, parse_args, parse_overrides, scripts_taking
from parameters import FIELDS, STYLES, ParameterError, Parameters, layout, make_parameters
from setting import choices_of

SCRIPTS = ["generate_captcha.py", "custom_captcha_image.py"]


def test_overrides_are_typed():
    params = parse_args(["--font_sizes=18,19", "--smooth=false", "--lr=1e-3", "--preview", "--charset=abc"])
    assert params.font_sizes == (18, 19)
    assert params.smooth is False and params.preview is True
    assert params.lr == pytest.approx(1e-3) and params.charset == "abc"


def test_defaults_match_the_issue():
    params = Parameters()
    assert (params.image_width, params.image_height, params.length_range) == (64, 24, (4, 4))
    assert (params.train_count, params.test_count) == (200000, 10000)
    assert len(params.charset) == 62 and params.charset.startswith("0123456789abc") and params.charset.endswith("XYZ")
    assert params.font_sizes == (20, 22, 23)


@pytest.mark.parametrize("args, words", [
    (["--no_such_key=1"], "unknown setting --no_such_key"),
    (["--seed=abc"], "--seed expects an integer"),
    (["--smooth=maybe"], "--smooth expects true or false"),
    (["--font_sizes=20,big"], "--font_sizes expects a comma-separated list of ints"),
    (["--seed"], "--seed needs a value"),
    (["--augment=maybe"], "--augment must be one of auto, on, off, not 'maybe'"),
    (["--data_mode=stream"], "--data_mode must be one of folder, generate, not 'stream'"),
    (["--backend=tensorrt"], "--backend must be one of torch, onnx, not 'tensorrt'"),
    (["--server=nginx"], "--server must be one of flask, waitress, not 'nginx'"),
    (["--image_format=gif"], "--image_format must be one of jpg, png, not 'gif'"),
    (["--model_preset=big"], "--model_preset must be one of default, original, not 'big'"),
    (["--device=gpu"], "--device must be one of auto, cpu, cuda, cuda:N, not 'gpu'"),
    (["--device=cuda:x"], "--device must be one of"),
    (["--render_jitter=weight,size"], "--render_jitter takes items among"),
    (["--head=rnn"], "--head must be one of auto, positions, ctc, not 'rnn'"),
    (["--captcha_length=0"], "--captcha_length must be at least 1"),
    (["--captcha_length=6-4"], "runs backwards: write it fewest-most, e.g. 4-6"),
    (["--captcha_length=4,6"], "--captcha_length expects a count like 4 or a range like 4-6"),
])
def test_bad_overrides_are_one_line_errors(args, words):
    with pytest.raises(ParameterError, match=words):
        make_parameters(parse_overrides(args)[0])


def test_captcha_length_takes_a_count_or_a_range():
    assert make_parameters({"captcha_length": " 4 - 6 "}).captcha_length == "4-6"
    assert make_parameters({"captcha_length": 5}).length_range == (5, 5)
    assert make_parameters(parse_overrides(["--captcha_length=4-6"])[0]).length_range == (4, 6)
    assert make_parameters({"captcha_length": "5-5"}).captcha_length == "5"


def test_choices_accept_their_values():
    params = make_parameters({"device": "cuda:1", "augment": "on", "render_jitter": "weight,blur"})
    assert (params.device, params.augment, params.render_jitter) == ("cuda:1", "on", ("weight", "blur"))
    listed = {key: choices_of(field) for key, field in FIELDS.items() if choices_of(field) is not None}
    assert {"style", "head", "device", "render_jitter"} <= set(listed)
    for key, choices in listed.items():
        default = getattr(Parameters(), key)
        assert all(item in choices for item in (default if isinstance(default, tuple) else (default,))), key


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_rejects_unknown_keys_and_lists_settings(script, name):
    bad = script(name, "--bogus=1", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: unknown setting --bogus (run with --help to list them)"]
    wrong = script(name, "--image_width=wide", check=False)
    assert wrong.returncode == 2 and "--image_width expects an integer" in wrong.stderr
    assert "Traceback" not in bad.stderr + wrong.stderr
    listing = script(name, "--help")
    assert "--font_sizes=20,22,23" in listing.stdout and "--image_width=64" in listing.stdout
    assert ("--train_count=200000" in listing.stdout) == (name == "generate_captcha.py")  # custom writes one image


def test_style_preset_then_explicit_override():
    params = make_parameters({"style": "captcha_default", "image_height": "50"})
    assert (params.image_width, params.image_height) == (160, 50)
    with pytest.raises(ParameterError, match="--style must be one of"):
        make_parameters({"style": "nope"})


@pytest.mark.parametrize("style", sorted(STYLES))
def test_another_style_over_a_parsed_command_line_is_that_style(style):
    # A benchmark builds each experiment's style over its own command line, parsed with the seed style: what
    # seed's preset set must not reach the other style (the swust runs once drew with seed's renderer so).
    over_seed = make_parameters({"style": style}, base=parse_args([]))
    assert dataclasses.asdict(over_seed) == dataclasses.asdict(make_parameters({"style": style}))
    given = make_parameters({"style": style}, base=parse_args(["--render_jitter=blur", "--elastic=0,1"]))
    if "render_jitter" not in STYLES[style]:
        assert given.render_jitter == ("blur",)  # given beside the preset: kept
    assert given.elastic == (0.0, 1.0)


def test_settings_given_beside_a_style_survive_later_overrides():
    # A checkpoint's settings are read over the caller's with make_parameters(base=...): the caller's
    # style preset must not come back and undo what was given beside it.
    base = make_parameters({"style": "arithmetic", "image_width": 64, "font_sizes": (17,)})
    later = make_parameters({"strict": True}, base=base)
    assert (later.image_width, later.font_sizes, later.strict) == (64, (17,), True)


@pytest.mark.slow
def test_a_bad_choice_fails_before_any_data_is_read(script, tmp_path):
    missing = [f"--train_dir={tmp_path}/missing", f"--test_dir={tmp_path}/missing", f"--cache_dir={tmp_path}/cache",
               f"--model_dir={tmp_path}/model", "--visdom=false"]
    bad = script("main.py", "--augment=maybe", *missing, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: --augment must be one of auto, on, off, not 'maybe'"]
    # The same command with a good choice does go on to read train_dir, and fails there.
    good = script("main.py", "--augment=on", *missing, check=False)
    assert good.returncode == 2 and "missing" in good.stderr and "--augment" not in good.stderr
    server = script("api_demo.py", "--server=nginx", f"--checkpoint={tmp_path}/none.pt", check=False)
    assert server.stderr.strip().splitlines() == ["error: --server must be one of flask, waitress, not 'nginx'"]


@pytest.mark.parametrize("name, arg, line", [
    ("main.py", "--port=8000", "error: --port is a setting of api_demo.py and bench/bench_api.py, not of main.py"),
    ("userPred.py", "--epochs=3",
     "error: --epochs is a setting of model.py, main.py, bench/bench_train.py, bench/bench_real.py, "
     "bench/bench_sweep.py and "
     "bench/bench_kinds.py, not of userPred.py"),
    ("main.py", "--epoch=3", "error: unknown setting --epoch (did you mean --epochs?)"),
    ("userPred.py", "--chekpoint=x.pt", "error: unknown setting --chekpoint (did you mean --checkpoint?)"),
])
def test_foreign_and_misspelt_settings_are_refused_in_one_line(script, name, arg, line):
    result = script(name, arg, "captcha.png", check=False) if name == "userPred.py" else script(name, arg, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]


def setting_lines(text):
    return re.findall(r"^  --(\w+)=", text, re.M)


def test_help_lists_the_scripts_own_settings_first(script):
    listing = script("userPred.py", "--help").stdout
    shown = setting_lines(listing)
    assert shown[0] == "checkpoint" and {"backend", "json", "model_dir"} <= set(shown)
    assert not {"train_dir", "epochs", "port", "font_sizes"} & set(shown)
    assert len(listing.splitlines()) < 60
    assert setting_lines(script("api_demo.py", "--help").stdout)[0] == "host"
    main = setting_lines(script("main.py", "--help").stdout)
    assert main[0] == "data_mode" and "font_sizes" in main and "port" not in main and "checkpoint" not in main


def test_help_lists_each_style_with_a_line_on_it(script):
    listing = script("generate_captcha.py", "--help").stdout
    styles = listing.split("\nstyles (--style=NAME")[1].splitlines()[1:]
    assert [line.split()[0] for line in styles] == list(STYLES)  # every preset, and nothing else
    assert all(len(line.split()) > 5 for line in styles)  # each with its description
    assert "kaptcha            Kaptcha (Java) defaults" in listing
    assert "\nstyles (" not in script("userPred.py", "--help").stdout  # a script that draws nothing


def test_help_into_a_closed_pipe_exits_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails, as after `| head` has read its lines
    try:
        result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--help"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 0 and result.stderr == ""
    piped = subprocess.run(f"'{sys.executable}' '{ROOT}/main.py' --help | head -n 1", shell=True, capture_output=True,
                           text=True, timeout=120)
    assert piped.stdout.startswith("Train a captcha reader") and "Traceback" not in piped.stderr


def test_every_setting_has_one_group_and_every_group_a_script():
    groups, comments = layout()
    grouped = [name for _, names in groups.values() for name in names]
    assert sorted(grouped) == sorted(vars(Parameters())) and len(grouped) == len(set(grouped))
    assert all(comments[name] for name in grouped)
    taken = {group for script_groups in SCRIPT_GROUPS.values() for group in script_groups}
    assert taken == set(groups)
    assert all(scripts_taking(name) for name in grouped)


@pytest.mark.parametrize("name", sorted(SCRIPT_GROUPS))
def test_every_script_in_the_table_imports_without_side_effects_and_has_a_main(name, capsys, monkeypatch):
    path = os.path.join(ROOT, name)
    monkeypatch.syspath_prepend(os.path.dirname(path))  # as `python bench/x.py` finds its neighbours
    spec = importlib.util.spec_from_file_location("script_" + re.sub(r"\W", "_", name), path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert callable(module.main) and capsys.readouterr() == ("", "")


@pytest.mark.parametrize("name", sorted(SCRIPT_GROUPS))
def test_every_script_in_the_table_reads_its_own_settings(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as source:
        code = source.read()
    assert len(re.findall(r"= parse_args\(.*script=__file__", code)) == 1


def documented_commands():
    """(script, --key) of every `X.py --key=value` in the README, the Makefile and the Python files."""
    texts = ["README.md", "Makefile", *glob.glob("*.py", root_dir=ROOT), *glob.glob("bench/*.py", root_dir=ROOT)]
    found = set()
    for name in texts:
        with open(os.path.join(ROOT, name), encoding="utf-8") as source:
            text = source.read().replace("\\\n", " ")  # a command continued on the next line
            for match in re.finditer(r"([\w/]+\.py)((?:[ \t]+[^\s(#`|]\S*)*)", text):
                script = next((known for known in SCRIPT_GROUPS
                               if match.group(1) == known or match.group(1).endswith("/" + known)), None)
                keys = re.findall(r"(?<!\S)--(\w+)", match.group(2))
                found.update((script, key) for key in keys if script)
    return sorted(found)


def test_documented_commands_are_valid():
    commands = documented_commands()
    assert ("api_demo.py", "port") in commands and ("userPred.py", "backend") in commands
    for script, key in commands:
        if key != "help":
            check_key(key, script, script_kind(script))


def test_programmatic_use_takes_every_setting():
    params = make_parameters({"port": 8000, "epochs": 2, "font_sizes": (30,), "checkpoint": "x.pt"})
    assert (params.port, params.epochs, params.font_sizes, params.checkpoint) == (8000, 2, (30,), "x.pt")
    overrides, rest = parse_overrides(["--port=1", "--epochs=2", "img.png"])  # no script: every setting
    assert overrides == {"port": "1", "epochs": "2"} and rest == ["img.png"]
    with pytest.raises(ParameterError, match="--port is a setting of api_demo.py"):
        parse_overrides(["--port=1"], script="main.py")


def test_the_benchmarks_settings_live_with_the_benchmarks(capsys):
    """bench/bench_settings.py's group: taken by the bench scripts that parse with it (checked, in their --help,
    their own group first), and by no other script; Parameters has none of it."""
    kind = script_kind("bench/bench_real.py")
    own = {field.name for field in dataclasses.fields(kind)} - set(FIELDS)
    assert {"bench_real", "bench_sites", "requests", "bench_rounds"} <= own and not own & set(vars(Parameters()))
    params = parse_args(["--bench_sites=pku_elective", "--epochs=3"], script="bench/bench_real.py", kind=kind)
    assert (params.bench_sites, params.epochs) == (("pku_elective",), 3)
    assert make_parameters({"lr": 1e-3}, base=params).bench_sites == ("pku_elective",)  # the class carries on
    with pytest.raises(SystemExit) as stop:
        parse_args(["--bench_presets=default,big"], script="bench/bench_train.py", kind=kind)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: --bench_presets takes items among default, original, not 'big'\n"
    with pytest.raises(ParameterError, match="unknown setting --bench_real"):
        check_key("bench_real", "main.py")
    with pytest.raises(ParameterError, match="unknown setting --bench_real"):
        make_parameters({"bench_real": "swust"})
    assert script_kind("bench/bench_generate.py") is Parameters  # a bench script without settings of its own
