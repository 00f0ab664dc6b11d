"""int8 serving: export_onnx.py --quantize=int8 writes a statically quantized model that reads as the float
one, is served with --backend=onnx, and is not written when it loses more accuracy than allowed."""
import json
import os
import shutil

import pytest
from PIL import Image

from dataset import load_folder, Reading
from parameters import make_parameters
from predictor import load_model, predict

AGREEMENT = 0.95  # the share of a tiny model's test captchas the int8 model must read as the float one does


def exported(arithmetic_run, tmp_path, script, *args, check=True):
    """Copy the tiny checkpoint into tmp_path and export it with `args`: (completed process, checkpoint)."""
    checkpoint = str(tmp_path / "best.pt")
    shutil.copy(arithmetic_run["checkpoint"], checkpoint)
    return script("export_onnx.py", f"--checkpoint={checkpoint}", "--ddddocr=false", *args, check=check), checkpoint


@pytest.mark.slow
def test_the_int8_model_reads_as_the_float_model_and_is_served(arithmetic_run, tmp_path, script):
    result, checkpoint = exported(arithmetic_run, tmp_path, script, "--quantize=int8", "--quantize_max_loss=0.05")
    float_path, int8_path = str(tmp_path / "best.onnx"), str(tmp_path / "best.int8.onnx")
    assert "wrote " + int8_path in result.stdout and "int8 " in result.stdout
    assert os.path.getsize(int8_path) < os.path.getsize(float_path) / 2.5  # 8-bit weights, not 32
    onnx = make_parameters({"backend": "onnx"})
    float_model, int8_model = load_model(float_path, onnx), load_model(int8_path, onnx)
    test = load_folder(arithmetic_run["params"].test_dir, Reading.of(float_model.params), quiet=True)
    reads = [predictor.logits(test.images).argmax(-1) for predictor in (float_model, int8_model)]
    assert (reads[0] == reads[1]).all(axis=1).mean() >= AGREEMENT
    files = [os.path.join(arithmetic_run["params"].test_dir, name) for name in test.names[:3]]
    served = json.loads(script("userPred.py", "--backend=onnx", f"--checkpoint={int8_path}", "--json", *files).stdout)
    expected = predict(int8_model, [open(path, "rb").read() for path in files])
    assert [read["text"] for read in served] == [read["text"] for read in expected]


@pytest.mark.slow
def test_an_int8_model_that_loses_too_much_is_not_written(arithmetic_run, tmp_path, script):
    blank = tmp_path / "blank"  # calibrated on blank images, its activation ranges miss every real stroke
    blank.mkdir()
    for index in range(20):
        Image.new("RGB", (64, 24), "white").save(blank / f"1+1=_{index}.png")
    result, _ = exported(arithmetic_run, tmp_path, script, "--quantize=int8", f"--calibration_dir={blank}", check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "not written" in lines[0], result.stderr
    assert "over quantize_max_loss=0.003" in lines[0]
    assert (tmp_path / "best.onnx").exists() and not (tmp_path / "best.int8.onnx").exists()
