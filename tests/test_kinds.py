"""Captcha kinds: arithmetic (the evaluator, drawing expressions, answers through userPred, userTest, the API
and the upload page) and colour-targeted captchas (a tiny set trains and reads only the target colour)."""
import base64
import json
import os
import random

import numpy as np
import pytest
from PIL import Image

from arithmetic import Grammar
from conftest import tiny_params
from custom_captcha_image import make_generator
from dataset import image_names, label_from_name, load_folder, name_of_label, Reading, score
from generate_captcha import generate_split
from parameters import ParameterError, make_parameters
from predictor import load_model, predict
from test_api import call, chromium, needs_chromium, post_json, read_on_page, running_server
from train import train

EVERY_OPERATOR = Grammar((0, 99), "+-x×*÷/", ("=?", "="))


@pytest.mark.parametrize("text, answer", [
    ("3+8=?", 11), ("12+57=", 69), ("40-15=?", 25), ("7x6=", 42), ("12×11=?", 132), ("9*10=", 90),
    ("84÷12=?", 7), ("99/9=", 11), ("0+0=", 0), ("0x45=?", 0), ("0÷7=", 0),
])
def test_the_evaluator_answers_every_operator_with_multi_digit_operands(text, answer):
    assert EVERY_OPERATOR.answer(text) == (answer, None)


def test_subtraction_may_answer_below_zero_and_division_answers_only_when_exact():
    assert EVERY_OPERATOR.answer("3-8=") == (-5, None)
    assert EVERY_OPERATOR.answer("7÷2=?") == (None, "7 does not divide by 2 exactly")
    assert EVERY_OPERATOR.answer("5/0=") == (None, "division by zero")


@pytest.mark.parametrize("text, why", [
    ("3+8", "not an expression"), ("3+8=??", "not an expression"), ("+3+8=", "not an expression"),
    ("03+8=", "not an expression"), ("3++8=", "not an expression"), ("3+8+1=", "not an expression"),
    ("3^8=", "not an expression"), ("__import__('os')=", "not an expression"), ("3+8=?\n", "not an expression"),
    ("", "not an expression"), ("100+1=", "operand 100 is outside this style's 0-99"),
])
def test_the_evaluator_refuses_anything_outside_the_grammar(text, why):
    answer, reason = EVERY_OPERATOR.answer(text)
    assert answer is None and why in reason


def test_only_the_styles_own_operators_and_endings_are_read():
    grammar = Grammar((0, 20), "+-", ("=",))
    assert grammar.answer("3+4=") == (7, None)
    assert grammar.answer("3x4=")[0] is None and grammar.answer("3+4=?")[0] is None


@pytest.mark.parametrize("overrides, words", [
    ({"arithmetic_operators": "+%"}, "arithmetic_operators must be drawn from"),
    ({"arithmetic_operands": (9, 2)}, "arithmetic_operands must be a range"),
    ({"arithmetic_endings": ("=1",)}, "arithmetic_endings must be one or more endings without digits"),
])
def test_bad_arithmetic_settings_fail_when_read(overrides, words):
    with pytest.raises(ParameterError, match=words):
        make_parameters({"style": "arithmetic", **overrides})


def test_arithmetic_settings_set_the_charset_and_lengths():
    params = make_parameters({"style": "arithmetic", "arithmetic_operands": (5, 120),
                              "arithmetic_operators": "-÷", "arithmetic_endings": ("=", "=?")})
    assert params.charset == "0123456789-÷=?" and params.length_range == (4, 9)
    assert params.reader_head == "ctc"


@pytest.mark.slow
def test_drawn_expressions_follow_the_rules_and_their_names_keep_the_label(tmp_path):
    params = make_parameters({"style": "arithmetic", "arithmetic_operators": "+-x÷/", "workers": 1,
                              "arithmetic_operands": (0, 30)})
    generator = make_generator(params)
    rng = random.Random(0)
    grammar = Grammar.of(params)
    for _ in range(300):
        label, _ = generator.sample(rng)
        answer, reason = grammar.answer(label)
        assert reason is None, label  # every drawn division is exact
        assert answer >= 0, label  # subtractions put the larger operand first
    negative = make_parameters({"arithmetic_negative": True}, base=params)
    labels = [negative_label for negative_label, _ in (make_generator(negative).sample(rng) for _ in range(300))]
    assert any(grammar.answer(label)[0] < 0 for label in labels)
    generate_split(params, str(tmp_path / "train"), "train", 40)
    names = image_names(str(tmp_path / "train"))
    assert any("%3F" in name or "%2F" in name for name in names)  # '?' and '/' are escaped in names
    assert all(grammar.answer(label_from_name(name))[1] is None for name in names)
    assert label_from_name(name_of_label("a_b%c/?.") + "_000001.png") == "a_b%c/?."


@pytest.mark.slow
def test_user_test_and_user_pred_give_answers(arithmetic_run, script):
    params = arithmetic_run["params"]
    checkpoint = f"--checkpoint={arithmetic_run['checkpoint']}"
    report = script("userTest.py", checkpoint, f"--golden_dir={params.test_dir}").stdout
    answers = float(report.split("answer accuracy (arithmetic): ")[1].split()[0])
    whole = float(report.split("whole-captcha accuracy: ")[1].split()[0])
    assert answers >= whole > 0.5  # a misread can still answer right (3x2 read as 2x3), never the other way
    files = [os.path.join(params.test_dir, name) for name in image_names(params.test_dir)[:6]]
    reads = json.loads(script("userPred.py", checkpoint, "--json", *files).stdout)
    grammar = Grammar.of(params)
    assert all((read["answer"], read["answer_error"]) == grammar.answer(read["text"]) for read in reads)
    assert sum(read["answer"] == grammar.answer(label_from_name(os.path.basename(read["file"])))[0] for read in reads) >= 3


def test_the_api_returns_the_answer(arithmetic_run):
    from api_demo import create_app
    params = arithmetic_run["params"]
    files = [os.path.join(params.test_dir, name) for name in image_names(params.test_dir)[:3]]
    grammar = Grammar.of(params)
    with running_server(create_app(make_parameters({"checkpoint": arithmetic_run["checkpoint"]}))) as port:
        status, reply = post_json(port, {"images": [base64.b64encode(open(path, "rb").read()).decode()
                                                    for path in files]})
        health = json.loads(call(port, "GET", "/health")[2])
    assert status == 200 and health["captcha_kind"] == "arithmetic"
    assert all((item["answer"], item["answer_error"]) == grammar.answer(item["prediction"])
               for item in reply["results"])


@pytest.mark.slow
@needs_chromium
def test_the_upload_page_shows_the_answer(arithmetic_run, tmp_path):
    from selenium.webdriver.common.by import By

    from api_demo import create_app
    params = arithmetic_run["params"]
    path = os.path.join(params.test_dir, image_names(params.test_dir)[0])
    with running_server(create_app(make_parameters({"checkpoint": arithmetic_run["checkpoint"]}))) as port:
        reply = post_json(port, {"image": base64.b64encode(open(path, "rb").read()).decode()})[1]
        with chromium(tmp_path) as driver:
            driver.get(f"http://127.0.0.1:{port}/")
            assert read_on_page(driver, path) == (reply["prediction"], "")
            shown = driver.find_element(By.ID, "answer").text
    assert shown == (f"answer: {reply['answer']}" if reply["answer"] is not None
                     else f"no answer: {reply['answer_error']}")


def test_a_model_of_another_kind_gives_no_answer(tiny_run):
    predictor = load_model(tiny_run["checkpoint"])
    image = Image.new("RGB", (64, 24), "white")
    assert predictor.grammar is None and "answer" not in predict(predictor, [image])[0]


@pytest.mark.slow
def test_a_tiny_color_target_set_trains_and_reads_only_the_target_colour(tmp_path):
    params = tiny_params(tmp_path, style="color_target", charset="ABCDEF", captcha_length="2",
                         palette=("red", "blue", "green", "black"), color_distractors=(1, 2), image_width=64,
                         image_height=24, font_sizes=(14, 15), left_margin=(1.0, 3.0), char_spacing=(0.0, 1.0),
                         row_shift_y=(0.0, 0.0), char_jitter_y=0.0, rotation=4.0, noise_dots=0, render_jitter=(),
                         epochs=8, train_count=2000)
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    train(params)
    test = load_folder(params.test_dir, Reading.of(params), quiet=True)
    predictor = load_model(os.path.join(params.model_dir, "best.pt"))
    metrics, reads = score(predictor.logits(test.images), test.labels, predictor.charset)
    # Two of six letters, among one or two distractors: chance reads 1 in 36, reading every letter never right.
    assert metrics["accuracy"] > 0.6 and all(len(read) == 2 for read in reads)
    red = np.asarray(test.images, dtype=np.int16)
    redness = red[..., 0] - np.maximum(red[..., 1], red[..., 2])  # (N, H, W): where red ink is
    assert (redness > 80).any(axis=(1, 2)).all()  # every captcha shows red ink: the targets are drawn in red
