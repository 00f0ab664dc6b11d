"""Captchas of varying length, read with the CTC head: the generator's length range, decoding (doubled
characters too), scores by edit distance, training on a tiny set of 3 to 5 characters, the errors for
labels the model cannot emit, fine-tuning from a positions model, and the same reads through userPred,
the API, ONNX and the ddddocr export."""
import base64
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import CTC_LENGTHS, ROOT, tiny_params
from custom_captcha_image import random_label
from dataset import (Charset, confusions, decode_logits, format_confusions, image_names, infer_charset, load_folder,
                     Reading, score)
from parameters import ParameterError, make_parameters
from predictor import load_model
from self_training import confident_reads
from test_api import call, post_json, running_server
from heads import CtcHead
from train import settled_head, train

ALL_LENGTHS = range(CTC_LENGTHS[0], CTC_LENGTHS[1] + 1)


def column_logits(*rows, classes):
    """Logits (N, columns, classes) whose best class in each column is the one given (0: the blank)."""
    logits = np.full((len(rows), len(rows[0]), classes), -8.0, np.float32)
    for index, row in enumerate(rows):
        logits[index, np.arange(len(row)), row] = 8.0
    return logits


def test_generator_draws_every_length_of_a_range_and_no_length_for_one():
    rng = random.Random(0)
    assert {len(random_label(rng, "abc", (3, 5))) for _ in range(200)} == {3, 4, 5}
    fixed, plain = random.Random(1), random.Random(1)
    assert random_label(fixed, "abc", (4, 4)) == "".join(plain.choice("abc") for _ in range(4))
    assert fixed.random() == plain.random()  # one length draws nothing more: older data sets stay as they were


def test_doubled_characters_decode_and_fit_the_loss():
    charset = Charset("AB1a", (1, 4), ctc=True)  # classes: blank, A, B, 1, a
    texts, confidences = decode_logits(column_logits([4, 4, 0, 4, 0, 0], [1, 3, 0, 3, 3, 2], [3, 3, 3, 0, 0, 0],
                                                     classes=5), charset)
    assert texts == ["aa", "A11B", "1"]  # a run of one class is one character; a blank parts doubled ones
    assert [len(row) for row in confidences] == [2, 4, 1] and all((row > 0.99).all() for row in confidences)
    targets = torch.tensor([[0, 2, 2, 1]])  # A11B
    head = CtcHead(channels=8, columns=5, length=4, classes=4)
    assert 0 < head.loss(torch.zeros(1, 5, 5), targets, 0) < float("inf")  # 5 columns hold A, 1, blank, 1, B
    assert head.loss(torch.zeros(1, 4, 5), targets, 0) == 0  # 4 cannot: zeroed (refused before training, below)


def test_scores_count_missing_and_extra_characters_by_edit_distance():
    charset = Charset("abc", (1, 4), ctc=True)
    logits = column_logits([1, 2, 0, 0, 0, 0], [1, 2, 3, 0, 3, 0], [1, 2, 3, 0, 0, 0], classes=4)  # ab, abcc, abc
    metrics, predictions = score(logits, ["abc", "abc", "abc"], charset)
    assert predictions == ["ab", "abcc", "abc"]
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["char_accuracy"] == pytest.approx(1 - 2 / 9)
    pairs = confusions(predictions, ["abc"] * 3)
    assert sorted(pairs) == [(("", "c"), 1), (("c", ""), 1)]
    assert set(format_confusions(pairs).split(", ")) == {"c->(none) x1", "(none)->c x1"}


def test_self_training_takes_ctc_reads_every_view_agrees_on():
    charset = Charset("ab", (1, 3), ctc=True)
    first = column_logits([1, 0, 2, 0], [1, 1, 0, 0], classes=3)  # ab, a
    second = column_logits([0, 1, 2, 2], [1, 0, 1, 0], classes=3)  # ab (other columns), aa
    probabilities = torch.softmax(torch.from_numpy(np.stack([first, second])), dim=-1)
    targets, used = confident_reads(probabilities, charset, threshold=0.5)
    assert used.tolist() == [True, False]
    assert targets[0].tolist() == [0, 1, -1]


def test_positions_heads_refuse_a_range_and_auto_picks_ctc(tmp_path):
    with pytest.raises(ParameterError, match="reads captchas of one length, but captcha_length is 3-5"):
        settled_head(tiny_params(tmp_path, captcha_length="3-5", head="positions"))
    assert settled_head(tiny_params(tmp_path, captcha_length="3-5")).head == "ctc"
    assert settled_head(tiny_params(tmp_path)).head == "positions"
    with pytest.raises(ParameterError, match="a count like 4 or a range like 4-6"):
        make_parameters({"captcha_length": "4 to 6"})


def test_tiny_ctc_model_reads_every_length_it_was_given(ctc_run):
    params = ctc_run["params"]
    test = load_folder(params.test_dir, Reading.of(params))
    predictor = load_model(ctc_run["checkpoint"])
    texts, _ = decode_logits(predictor.logits(test.images), predictor.charset)
    for length in ALL_LENGTHS:
        pairs = [(text, label) for text, label in zip(texts, test.labels) if len(label) == length]
        assert len(pairs) > 20 and sum(text == label for text, label in pairs) / len(pairs) > 0.3, length
    doubled = [(text, label) for text, label in zip(texts, test.labels) if any(a == b for a, b in zip(label, label[1:]))]
    assert sum(text == label for text, label in doubled) > 0
    assert ctc_run["metrics"]["accuracy"] > 0.3


def test_infer_charset_infers_the_length_range(ctc_run):
    params = make_parameters({"train_dir": ctc_run["params"].train_dir, "test_dir": ctc_run["params"].test_dir})
    inferred = infer_charset(params)
    assert inferred.captcha_length == "3-5" and inferred.reader_head == "ctc"
    assert set(inferred.charset) <= set("0123456789abcdef")


def blank_captchas(folder, labels, size):
    folder.mkdir()
    from PIL import Image
    for index, label in enumerate(labels):
        Image.new("RGB", size, "white").save(folder / f"{label}_{index}.png")


@pytest.mark.slow
def test_labels_the_columns_cannot_hold_are_one_line_errors_before_training(tmp_path, script):
    labels = ["abcd", "aabb", "abca"] * 4
    for name in ("train", "test"):
        blank_captchas(tmp_path / name, labels, (40, 24))  # 40 px / feature_stride 8: 5 feature columns
    common = [f"--train_dir={tmp_path / 'train'}", f"--test_dir={tmp_path / 'test'}", "--image_width=40",
              "--charset=abcd", "--head=ctc", "--batch_size=4", "--visdom=false", f"--model_dir={tmp_path / 'run'}",
              f"--cache_dir={tmp_path / 'cache'}"]
    result = script("main.py", *common, "--captcha_length=4", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "label 'aabb' needs 6 feature columns" in result.stderr and "lower --feature_stride" in result.stderr
    result = script("main.py", *common, "--captcha_length=4-6", check=False)
    assert result.returncode == 2 and "up to 6 characters need at least 6 feature columns" in result.stderr
    assert not os.path.exists(tmp_path / "run" / "last.pt")


def test_fine_tuning_a_positions_model_into_ctc_reuses_its_backbone(tiny_run, ctc_run, tmp_path, capsys):
    params = tiny_params(ctc_run["root"], captcha_length="3-5", head="ctc", init_from=tiny_run["checkpoint"],
                         epochs=1, model_dir=str(tmp_path / "tuned"))
    train(params)
    said = capsys.readouterr().out
    assert "not loaded, shapes differ: head.linear.bias, head.linear.weight)" in said
    assert torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)["params"]["head"] == "ctc"


def read_files(ctc_run):
    """Test captchas of every length: three of each."""
    folder = ctc_run["params"].test_dir
    names = image_names(folder)
    return [os.path.join(folder, name) for length in ALL_LENGTHS
            for name in [name for name in names if len(name.split("_")[0]) == length][:3]]


@pytest.mark.slow
def test_user_pred_and_the_api_answer_texts_of_varying_length(ctc_run):
    files = read_files(ctc_run)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "userPred.py"), f"--checkpoint={ctc_run['checkpoint']}",
                             "--json", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    reads = json.loads(result.stdout)
    assert len({len(read["text"]) for read in reads}) > 1
    assert all(len(read["confidences"]) == len(read["text"]) for read in reads)
    from api_demo import create_app
    with running_server(create_app(make_parameters({"checkpoint": ctc_run["checkpoint"]}))) as port:
        status, reply = post_json(port, {"images": [base64.b64encode(open(path, "rb").read()).decode()
                                                    for path in files[:4]]})
        health = json.loads(call(port, "GET", "/health")[2])
    assert health["model"]["head"] == "ctc" and (health["min_length"], health["length"]) == CTC_LENGTHS
    assert status == 200
    assert [item["prediction"] for item in reply["results"]] == [read["text"] for read in reads[:4]]
    assert all(len(item["confidences"]) == len(item["prediction"]) for item in reply["results"])


def test_onnx_and_ddddocr_exports_read_what_pytorch_reads(ctc_run, tmp_path):
    import onnxruntime
    from export_onnx import export
    checkpoint = tmp_path / "best.pt"
    shutil.copy(ctc_run["checkpoint"], checkpoint)
    exported = export(str(checkpoint))
    files = read_files(ctc_run)
    images = [open(path, "rb").read() for path in files]
    from predictor import predict
    by_torch = predict(load_model(str(checkpoint)), images)
    by_onnx = predict(load_model(params=make_parameters({"backend": "onnx", "checkpoint": str(checkpoint)})), images)
    assert [read["text"] for read in by_onnx] == [read["text"] for read in by_torch]
    assert len({len(read["text"]) for read in by_torch}) > 1
    for a, b in zip(by_onnx, by_torch):
        assert np.allclose(a["confidences"], b["confidences"], atol=1e-3)
    # ddddocr's way: float (1, 3, H, W) in 0-1, argmax per step, runs merged, blanks ("" first) dropped
    charset = json.load(open(exported["ddddocr_json"]))["charset"]
    session = onnxruntime.InferenceSession(exported["ddddocr_onnx"], providers=["CPUExecutionProvider"])
    params = ctc_run["params"]
    test = load_folder(params.test_dir, Reading.of(params))
    names = [os.path.basename(path) for path in files]
    for name, read in zip(names, by_torch):
        image = test.images[test.names.index(name)]
        steps = session.run(None, {"input1": image.transpose(2, 0, 1)[None].astype(np.float32) / 255})[0][0]
        best = steps.argmax(-1)
        text = "".join(charset[c] for i, c in enumerate(best) if c and (i == 0 or c != best[i - 1]))
        assert steps.shape[-1] == len(charset) and charset[0] == "" and text == read["text"]
