"""Every setting has its range: a bad number is a one-line error when it is read, a loss that stops being a
number stops the run without saving over its checkpoints."""
import functools
import math
import os
import shutil
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies

from conftest import script_kind, tiny_params
from command_line import SCRIPT_GROUPS, parse_args, parse_overrides, run_main, script_settings
from parameters import ParameterError, Parameters, fields_of, make_parameters
from setting import range_problem

FIELDS = fields_of(Parameters)


def numeric(fields):
    return sorted(name for name, field in fields.items() if "int" in str(field.type) or "float" in str(field.type))


NUMERIC = numeric(FIELDS)
HOSTILE = ("0", "-1", "nan", "inf", "-inf", "1e12", "1000000000000")


@pytest.mark.parametrize("args, words", [
    (["--lr=nan"], "--lr must be a finite number, got nan"),
    (["--lr=inf"], "--lr must be a finite number"),
    (["--lr=-1"], "--lr must be above 0 and at most 10, got -1.0"),
    (["--weight_decay=nan"], "--weight_decay must be a finite number"),
    (["--dropout=nan"], "--dropout must be a finite number"),
    (["--warmup=nan"], "--warmup must be a finite number"),
    (["--warmup=2"], "--warmup must be from 0 to 1, got 2.0"),
    (["--time_budget=-1"], "--time_budget must be from 0 to 1000000"),
    (["--time_budget=nan"], "--time_budget must be a finite number"),
    (["--label_smoothing=nan"], "--label_smoothing must be a finite number"),
    (["--target_accuracy=nan"], "--target_accuracy must be a finite number"),
    (["--unsure_below=nan"], "--unsure_below must be a finite number"),
    (["--workers=-2"], "--workers must be from 0 to 1024, got -2"),
    (["--threads=-1"], "--threads must be from 0 to 1024"),
    (["--epochs=-1"], "--epochs must be from 0 to 1000000, got -1"),
    (["--server_threads=0"], "--server_threads must be from 1 to 1024, got 0"),
    (["--image_width=0"], "--image_width must be from 8 to 10000, got 0"),
    (["--font_sizes=20,0"], "--font_sizes items must be from 1 to 1000, got 20,0"),
    (["--noise_line_gray=0,300"], "--noise_line_gray items must be from 0 to 255"),
    (["--elastic=-1,1"], "--elastic items must be from 0 to 1000"),
    (["--char_jitter=-1"], "--char_jitter must be from 0 to 1000"),
    (["--off_edge=1.5"], "--off_edge must be from 0 to 1"),
    (["--glyph_passes=3"], "--glyph_passes must be from 1 to 2"),
    (["--outline_width=-1"], "--outline_width must be from 0 to 50"),
    (["--ripple=nan,2"], "--ripple items must be finite numbers, got nan,2.0"),
])
def test_numbers_out_of_range_are_refused_when_read(args, words):
    with pytest.raises(ParameterError, match=words):
        make_parameters(parse_overrides(args)[0])


def test_help_shows_each_range(script):
    shown = script("main.py", "--help").stdout
    assert "peak learning rate of the one-cycle schedule [float, above 0 and at most 10]" in shown
    assert "[int, from 0 to 65536]" in shown


def test_every_preset_lies_within_the_ranges():
    from styles import STYLES
    for style in STYLES:
        params = make_parameters({"style": style})
        assert not [name for name in NUMERIC if range_problem(FIELDS[name], getattr(params, name))], style


@pytest.mark.parametrize("script_name", sorted(SCRIPT_GROUPS))
def test_every_numeric_setting_takes_hostile_values_in_one_line(script_name, capsys):
    """Zero, negative, NaN, infinite and huge: each read as a value in range or refused in one line."""
    kind = script_kind(script_name)  # a bench script's own settings too
    fields = fields_of(kind)
    for name in (name for name in script_settings(script_name, kind) if name in numeric(fields)):
        for value in HOSTILE:
            try:
                params = parse_args([f"--{name}={value}"], script=script_name, kind=kind)
            except SystemExit as stop:
                error = capsys.readouterr().err
                assert stop.code == 2 and error.startswith(f"error: --{name} ") and error.count("\n") == 1, error
                continue
            assert range_problem(fields[name], getattr(params, name)) is None


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(name=strategies.sampled_from(NUMERIC),
       value=strategies.one_of(strategies.floats(), strategies.integers(), strategies.text(max_size=8),
                               strategies.lists(strategies.floats(), max_size=3)))
def test_any_value_is_a_setting_in_range_or_a_one_line_error(name, value):
    try:
        params = make_parameters({name: value})
    except ParameterError as error:
        assert "\n" not in str(error) and f"--{name}" in str(error)
        return
    assert range_problem(FIELDS[name], getattr(params, name)) is None


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """A tiny generated training and test folder (the tiny settings)."""
    from generate_captcha import generate_split
    root = tmp_path_factory.mktemp("ranges")
    params = tiny_params(root, train_count=200, test_count=40, workers=1)
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    return params


def main_argv(params, model_dir, *extra):
    """main.py's command line for a one-epoch run of the tiny model on `params`' folders."""
    tiny = ["--charset=0123456789abcdef", "--captcha_length=4", "--stem_channels=8", "--stage_channels=16,32",
            "--stage_blocks=1,1", "--visdom=false", "--workers=1", "--cache_dir=", "--epochs=1", "--time_budget=0.05",
            "--batch_size=32"]  # one epoch or 3 seconds, whichever ends first (a setting given after wins)
    return [f"--train_dir={params.train_dir}", f"--test_dir={params.test_dir}", f"--model_dir={model_dir}",
            *tiny, *extra]


@pytest.mark.slow
@settings(max_examples=12, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=strategies.sampled_from([name for name in script_settings("main.py") if name in NUMERIC
                                     and name not in ("seed", "visdom_port")]),
       value=strategies.sampled_from(HOSTILE))
def test_hostile_training_settings_end_in_one_line_or_a_clean_run(small_folder, capsys, name, value):
    import main
    model_dir = tempfile.mkdtemp()
    capsys.readouterr()  # what earlier examples printed
    try:
        run_main(functools.partial(main.main, main_argv(small_folder, model_dir, f"--{name}={value}")))
    except SystemExit as stop:
        error = capsys.readouterr().err
        assert stop.code == 2 and error.count("\n") == 1 and error.startswith("error: "), (name, value, error)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


@pytest.mark.slow
def test_a_loss_that_is_no_number_stops_the_run_and_keeps_best_pt(small_folder, script, tmp_path):
    from model import load_checkpoint, save_checkpoint
    model_dir = str(tmp_path / "model")
    script("main.py", *main_argv(small_folder, model_dir))
    best = open(os.path.join(model_dir, "best.pt"), "rb").read()
    broken = load_checkpoint(os.path.join(model_dir, "best.pt"))  # a diverged run's weights: NaN in its head
    head = next(key for key in broken["model"] if key.startswith("head.") and key.endswith("weight"))
    broken["model"][head] = torch.full_like(broken["model"][head], math.nan)
    save_checkpoint(str(tmp_path / "diverged.pt"), broken)
    result = script("main.py", *main_argv(small_folder, model_dir, f"--init_from={tmp_path}/diverged.pt"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr  # the work failed (2: a bad request)
    assert result.stderr.strip().splitlines()[-1].startswith("error: the training loss became nan")
    assert open(os.path.join(model_dir, "best.pt"), "rb").read() == best
