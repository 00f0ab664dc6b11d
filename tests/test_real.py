"""A user's own captchas: a real-format labelled folder, inferred charset, fine-tuning, ONNX and ddddocr export.

The "real" folder is made the way users' folders look: grey PNGs of another size than the model's
input, opaque file names, labels in labels.csv, 5 characters from a charset of the test's choosing.
"""
import base64
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from api_demo import create_app
from conftest import ROOT, tiny_params
from dataset import DataError, image_names, infer_charset, load_folder, load_training_data, Reading
from export_onnx import export
from generate_captcha import generate_split
from heads import PositionHeads
from model import load_checkpoint, remap_heads
from parameters import ParameterError, make_parameters
from predictor import load_model, predict
from test_api import call, post_json, running_server
from train import train

REAL_CHARSET = "2345678abcdefghkmnpx"  # not the tiny model's hex charset: g, h, k, ... are new classes
REAL_LENGTH = 5


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """900 grey 96x32 PNGs named sample_NNNN.png, labels in labels.csv."""
    root = tmp_path_factory.mktemp("real")
    styled = tiny_params(root, charset=REAL_CHARSET, captcha_length=REAL_LENGTH, image_width=96, image_height=32,
                         font_sizes=(24, 26), image_format="png")
    generate_split(styled, str(root / "generated"), "real", 900)
    folder = root / "captchas"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label"])
        for index, name in enumerate(image_names(root / "generated")):
            with Image.open(root / "generated" / name) as image:
                image.convert("L").save(folder / f"sample_{index:04d}.png")
            writer.writerow([f"sample_{index:04d}.png", name.split("_")[0]])
    return folder


@pytest.fixture(scope="module")
def real_run(real_folder, tmp_path_factory):
    """A tiny model trained on the folder with --infer_charset and a seeded 80/20 split."""
    root = tmp_path_factory.mktemp("real_run")
    params = tiny_params(root, data_dir=str(real_folder), test_split=0.2, infer_charset=True, epochs=20,
                         augment="auto")  # auto: on, as for any small real set
    metrics = train(params)
    return {"params": params, "metrics": metrics, "checkpoint": os.path.join(params.model_dir, "best.pt"),
            "folder": real_folder, "root": root}


def test_charset_and_length_are_inferred_from_labels(real_folder):
    params = infer_charset(make_parameters({"data_dir": str(real_folder)}))
    assert params.length_range == (REAL_LENGTH, REAL_LENGTH)
    assert set(params.charset) <= set(REAL_CHARSET) and len(params.charset) >= len(REAL_CHARSET) - 2
    assert params.charset == "".join(sorted(params.charset, key=lambda c: (not c.isdigit(), c)))
    folded = infer_charset(make_parameters({"data_dir": str(real_folder), "ignore_case": True}))
    assert folded.charset == params.charset  # labels are already lower case


def test_grey_pngs_of_another_size_train_end_to_end(real_run):
    metrics = real_run["metrics"]
    assert metrics["char_accuracy"] > 0.25  # chance: 1/20 per character
    checkpoint = load_checkpoint(real_run["checkpoint"])
    assert checkpoint["params"]["captcha_length"] == str(REAL_LENGTH)
    assert set(checkpoint["charset"]) <= set(REAL_CHARSET) and checkpoint["params"]["infer_charset"]
    # the size the folder's images have (folder_settings: no size flag given)
    assert checkpoint["params"]["image_width"] == 96 and checkpoint["params"]["image_height"] == 32
    trained = make_parameters({"charset": checkpoint["charset"], "captcha_length": REAL_LENGTH, "image_width": 64,
                               "image_height": 24}, base=real_run["params"])
    split = load_folder(str(real_run["folder"]), Reading.of(trained), quiet=True)
    assert split.images.shape[1:] == (24, 64, 3) and len(split) == 900  # grey 96x32 read as RGB 64x24


@pytest.mark.slow
def test_user_pred_and_api_use_the_inferred_charset_without_flags(real_run):
    names = sorted(name for name in os.listdir(real_run["folder"]) if name.endswith(".png"))[:3]
    paths = [os.path.join(real_run["folder"], name) for name in names]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "userPred.py"), f"--checkpoint={real_run['checkpoint']}",
                             "--json", *paths], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    charset = load_checkpoint(real_run["checkpoint"])["charset"]
    for item in json.loads(result.stdout):
        assert len(item["text"]) == REAL_LENGTH and set(item["text"]) <= set(charset)
        assert len(item["confidences"]) == REAL_LENGTH
    params = make_parameters({"checkpoint": real_run["checkpoint"]})
    with running_server(create_app(params)) as port:
        status, _, body = call(port, "GET", "/health")
        health = json.loads(body)
        assert status == 200 and health["charset"] == charset and health["length"] == REAL_LENGTH
        with open(paths[0], "rb") as handle:
            status, reply = post_json(port, {"image": base64.b64encode(handle.read()).decode()})
        assert status == 200 and len(reply["prediction"]) == REAL_LENGTH


def test_onnx_export_agrees_with_pytorch(real_run, tmp_path):
    result = export(real_run["checkpoint"], str(tmp_path / "model.onnx"))
    assert result["max_difference"] < 1e-3
    files = sorted(os.path.join(real_run["folder"], name) for name in os.listdir(real_run["folder"])
                   if name.endswith(".png"))[:40]
    images = [open(path, "rb").read() for path in files]
    # PyTorch on the CPU, as onnxruntime runs here: on CUDA, convolutions use TF32 by default, which
    # can flip a marginal character of this barely trained model.
    torch_predictor = load_model(real_run["checkpoint"], device="cpu")
    onnx_predictor = load_model(result["onnx"], make_parameters({"backend": "onnx"}))
    assert onnx_predictor.charset.chars == torch_predictor.charset.chars
    assert (onnx_predictor.width, onnx_predictor.height) == (96, 32)  # the folder's own size
    by_torch, by_onnx = predict(torch_predictor, images), predict(onnx_predictor, images)
    assert [r["text"] for r in by_onnx] == [r["text"] for r in by_torch]
    assert [r["text_ignore_case"] for r in by_onnx] == [r["text_ignore_case"] for r in by_torch]
    np.testing.assert_allclose([r["confidences"] for r in by_onnx], [r["confidences"] for r in by_torch], atol=1e-4)
    # The command-line path with --backend=onnx finds best.onnx beside the checkpoint.
    shutil.copy(result["onnx"], os.path.splitext(real_run["checkpoint"])[0] + ".onnx")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "userPred.py"), f"--checkpoint={real_run['checkpoint']}",
                          "--backend=onnx", "--json", files[0]], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["text"] == by_torch[0]["text"]


def test_onnx_backend_errors_are_one_line(real_run, tmp_path):
    missing = subprocess.run([sys.executable, os.path.join(ROOT, "userPred.py"), "--backend=onnx",
                              f"--checkpoint={tmp_path / 'nothing.pt'}", "x.png"], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "export_onnx.py" in missing.stderr and "Traceback" not in missing.stderr
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a captcha-ocr ONNX model"):
        load_model(str(bogus), make_parameters({"backend": "onnx"}))


def ctc_greedy(probabilities, charset):
    """ddddocr's decoding of a (steps, classes) output: argmax, collapse repeats, drop blank 0."""
    text, previous = [], None
    for index in probabilities.argmax(-1).tolist():
        if index != previous and index != 0:
            text.append(charset[index])
        previous = index
    return "".join(text)


def test_ddddocr_files_read_like_our_model(real_run, tmp_path):
    result = export(real_run["checkpoint"], str(tmp_path / "model.onnx"))
    with open(result["ddddocr_json"], encoding="utf-8") as handle:
        info = json.load(handle)
    charset = load_checkpoint(real_run["checkpoint"])["charset"]
    assert info == {"charset": [""] + list(charset), "word": False, "image": [96, 32], "channel": 3}
    session = onnxruntime.InferenceSession(result["ddddocr_onnx"], providers=["CPUExecutionProvider"])
    predictor = load_model(real_run["checkpoint"])
    files = sorted(name for name in os.listdir(real_run["folder"]) if name.endswith(".png"))[:20]
    for name in files:
        with Image.open(os.path.join(real_run["folder"], name)) as image:
            ours = predict(predictor, [image.copy()])[0]["text"]
            # ddddocr's steps for a custom model: resize to "image" (it uses LANCZOS; bilinear here, as
            # our preprocess() does, so the texts must agree exactly), scale to 0-1, CHW, batch of 1
            pixels = np.asarray(image.convert("RGB").resize((96, 32), Image.Resampling.BILINEAR), np.float32) / 255
        output = session.run(None, {session.get_inputs()[0].name: pixels.transpose(2, 0, 1)[None]})[0]
        assert output.shape == (1, 2 * REAL_LENGTH, len(charset) + 1)
        assert ctc_greedy(output[0], info["charset"]) == ours
    # Whatever an image reads as, ddddocr's repeat collapsing must keep all characters (doubled ones too).
    white = np.ones((1, 3, 32, 96), np.float32)
    output = session.run(None, {session.get_inputs()[0].name: white})[0]
    assert len(ctc_greedy(output[0], info["charset"])) == REAL_LENGTH


@pytest.mark.slow
def test_fine_tuning_from_a_checkpoint_with_another_charset(tiny_run, real_folder, tmp_path, capsys):
    params = tiny_params(tmp_path, data_dir=str(real_folder), test_split=0.2, infer_charset=True, epochs=8,
                         init_from=tiny_run["checkpoint"])
    metrics = train(params)
    log = capsys.readouterr().out
    loaded, total = map(int, re.search(r"initialised from \S+: (\d+) of (\d+) tensors", log).groups())
    assert total - loaded <= 2  # only the fifth head (the tiny model reads 4 characters) starts fresh
    checkpoint = load_checkpoint(os.path.join(params.model_dir, "best.pt"))
    assert set(checkpoint["charset"]) <= set(REAL_CHARSET) and checkpoint["params"]["captcha_length"] == str(REAL_LENGTH)
    assert checkpoint["params"]["stage_channels"] == (16, 32, 64)  # the architecture of the checkpoint it started from
    assert metrics["char_accuracy"] > 0.25  # chance: 1/20 per character


@pytest.mark.slow
def test_few_real_images_repeated_beside_a_mix_folder(real_folder, tmp_path, capsys):
    # The fine-tuning recipe: a few real images, each seen train_repeat times an epoch, beside the first
    # mix_count images of a generated folder seen once.
    generated = real_folder.parent / "generated"  # the same captchas in colour, labels in the file names
    params = tiny_params(tmp_path, data_dir=str(real_folder), test_split=0.2, charset=REAL_CHARSET,
                         captcha_length=REAL_LENGTH, train_repeat=3, mix_dir=str(generated), mix_count=50, epochs=1)
    train_set, test_set, order = load_training_data(params)
    own = len(train_set) - 50
    assert (own, len(test_set)) == (720, 180)
    assert train_set.names[own:] == image_names(generated)[:50]
    counts = np.bincount(order, minlength=len(train_set))
    assert (counts[:own] == 3).all() and (counts[own:] == 1).all()
    train(params)
    assert f"{own * 3 + 50} training and 180 test images" in capsys.readouterr().out
    for bad in ({"train_repeat": 0}, {"mix_count": -1}):  # refused when read, before any data is
        with pytest.raises(ParameterError, match=f"--{next(iter(bad))} must be from"):
            make_parameters(bad, base=params)
    with pytest.raises(DataError, match="data_mode=generate"):
        train(make_parameters({"data_mode": "generate"}, base=params))


def test_remapped_heads_keep_shared_characters():
    old = {"head.places.0.weight": torch.arange(6.0).reshape(3, 2), "head.places.0.bias": torch.tensor([1.0, 2.0, 3.0]),
           "stem.0.weight": torch.ones(2)}
    new = remap_heads(old, "abc", "cxa", PositionHeads, 1)
    weight, bias = new["head.places.0.weight"], new["head.places.0.bias"]
    assert weight[0].tolist() == [4.0, 5.0] and weight[2].tolist() == [0.0, 1.0]
    assert bias.tolist()[0] == 3.0 and bias.tolist()[2] == 1.0
    assert bias.tolist()[1] == 0.0 and new["stem.0.weight"] is old["stem.0.weight"]
