"""Settings: --key=value overrides are type-checked, unknown keys rejected, and reach every module."""
import pytest

from parameters import ParameterError, Parameters, make_parameters, parse_args, parse_overrides

SCRIPTS = ["generate_captcha.py", "custom_captcha_image.py"]


def test_overrides_are_typed():
    params = parse_args(["--font_sizes=18,19", "--smooth=false", "--lr=1e-3", "--preview", "--charset=abc"])
    assert params.font_sizes == (18, 19)
    assert params.smooth is False and params.preview is True
    assert params.lr == pytest.approx(1e-3) and params.charset == "abc"


def test_defaults_match_the_issue():
    params = Parameters()
    assert (params.image_width, params.image_height, params.captcha_length) == (64, 24, 4)
    assert (params.train_count, params.test_count) == (200000, 10000)
    assert len(params.charset) == 62 and params.charset.startswith("0123456789abc") and params.charset.endswith("XYZ")
    assert params.font_sizes == (20, 22, 23)


@pytest.mark.parametrize("args, words", [
    (["--no_such_key=1"], "unknown setting --no_such_key"),
    (["--seed=abc"], "--seed expects an integer"),
    (["--smooth=maybe"], "--smooth expects true or false"),
    (["--font_sizes=20,big"], "--font_sizes expects a comma-separated list of ints"),
    (["--seed"], "--seed needs a value"),
])
def test_bad_overrides_are_one_line_errors(args, words):
    with pytest.raises(ParameterError, match=words):
        make_parameters(parse_overrides(args)[0])


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_rejects_unknown_keys_and_lists_settings(script, name):
    bad = script(name, "--bogus=1", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: unknown setting --bogus (run with --help to list them)"]
    wrong = script(name, "--image_width=wide", check=False)
    assert wrong.returncode == 2 and "--image_width expects an integer" in wrong.stderr
    assert "Traceback" not in bad.stderr + wrong.stderr
    listing = script(name, "--help")
    assert "--train_count=200000" in listing.stdout and "--font_sizes=20,22,23" in listing.stdout


def test_style_preset_then_explicit_override():
    params = make_parameters({"style": "captcha_default", "image_height": "50"})
    assert (params.image_width, params.image_height) == (160, 50)
    with pytest.raises(ParameterError, match="--style must be one of"):
        make_parameters({"style": "nope"})
