"""Reading heads are plug-ins: a head defined here alone trains, resumes, loads, predicts and exports; a
checkpoint saved before the heads had a module of their own still loads."""
import os

import numpy as np
import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import head_names
import parameters
from conftest import tiny_params
from export_onnx import export
from heads import HEADS, Head, PositionHeads, register_head
from model import load_checkpoint, save_checkpoint
from predictor import load_model, predict
from train import train


class HiddenLayerHeads(Head):
    """A toy third head: one shared hidden layer of 32 units, then a linear softmax per character place."""
    name = "toy_hidden"
    class_rows = PositionHeads.class_rows  # the same per-place layers (head.places.N) hold a row per class

    def __init__(self, channels, columns, length, classes):
        super().__init__(channels, columns, length, classes)
        self.hidden = nn.Linear(channels * columns, 32)
        self.places = nn.ModuleList(nn.Linear(32, classes) for _ in range(length))

    def forward(self, features):  # (N, C, W') -> (N, length, classes)
        hidden = F.relu(self.hidden(features.flatten(1)))
        return torch.stack([place(hidden) for place in self.places], dim=1)


@pytest.fixture
def toy_head():
    """The toy head registered for one test, and unregistered after it."""
    register_head(HiddenLayerHeads)
    yield HiddenLayerHeads.name
    del HEADS[HiddenLayerHeads.name], head_names.HEAD_FORMS[HiddenLayerHeads.name]


def test_a_head_defined_in_a_test_trains_resumes_loads_predicts_and_exports(tiny_run, toy_head, tmp_path):
    model_dir = str(tmp_path / "toy")
    params = tiny_params(tiny_run["root"], head=toy_head, epochs=1, model_dir=model_dir)
    train(params)
    first = load_checkpoint(os.path.join(model_dir, "last.pt"))
    assert first["params"]["head"] == toy_head and "head.hidden.weight" in first["model"]
    train(parameters.make_parameters({"resume": True, "extend": 0.05}, base=params))  # 3 s more
    resumed = load_checkpoint(os.path.join(model_dir, "last.pt"))
    assert resumed["progress"]["step"] > first["progress"]["step"] and resumed["params"]["head"] == toy_head
    predictor = load_model(os.path.join(model_dir, "last.pt"), params)
    image = Image.new("RGB", (params.image_width, params.image_height), "white")
    result = predict(predictor, [image])[0]
    assert len(result["text"]) == 4 and len(result["confidences"]) == 4
    exported = export(os.path.join(model_dir, "last.pt"))
    assert exported["max_difference"] < 1e-3
    session = onnxruntime.InferenceSession(exported["ddddocr_onnx"], providers=["CPUExecutionProvider"])
    ctc = session.run(None, {"input1": np.ones((1, 3, params.image_height, params.image_width), np.float32)})[0]
    assert ctc.shape == (1, 8, 1 + len(predictor.charset))  # each place followed by a blank step


def test_a_checkpoint_with_the_old_head_names_loads_and_reads_the_same(tiny_run, tmp_path):
    checkpoint = torch.load(tiny_run["checkpoint"], weights_only=True)
    old = dict(checkpoint, model={key.replace("head.places.", "heads."): value
                                  for key, value in checkpoint["model"].items()})
    assert "heads.0.weight" in old["model"] and not any(key.startswith("head.") for key in old["model"])
    save_checkpoint(str(tmp_path / "old.pt"), old)
    params = tiny_run["params"]
    images = [Image.new("RGB", (params.image_width, params.image_height), colour) for colour in ("white", "black")]
    before = predict(load_model(tiny_run["checkpoint"], params), images)
    after = predict(load_model(str(tmp_path / "old.pt"), params), images)
    assert [r["text"] for r in after] == [r["text"] for r in before]
    assert np.allclose([r["confidences"] for r in after], [r["confidences"] for r in before])
