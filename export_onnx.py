"""Export a trained checkpoint to ONNX, for onnxruntime (no PyTorch needed to serve) and for ddddocr.

    python export_onnx.py                                  # model_dir/best.pt -> model_dir/best.onnx (+ ddddocr files)
    python export_onnx.py --checkpoint=runs/x/best.pt --onnx_file=x.onnx
    python userPred.py --backend=onnx captcha.jpg          # read with the exported model
    python api_demo.py --backend=onnx --server=waitress    # serve it

Writes:
- `<name>.onnx`: uint8 images (batch, height, width, 3) -> logits (batch, steps, classes), any batch
  size: a positions model's steps are its character places, a ctc model's its feature columns (class 0
  CTC's blank); userPred's decode_logits turns either into text. The charset, captcha length, image
  size and training settings travel inside the file (ONNX metadata `captcha_ocr`), so `--backend=onnx`
  needs no other flag.
- with `--ddddocr` (default on): `<name>.ddddocr.onnx` and `<name>.ddddocr.json`, the two files that
  ddddocr reads: `DdddOcr(det=False, ocr=False, import_onnx_path=..., charsets_path=...)`. That model
  takes ddddocr's input (float (1, 3, H, W) in 0-1, which ddddocr resizes to the size in the JSON)
  and answers in ddddocr's CTC form over [blank] + charset: a ctc model's own columns; for positions
  heads 2 x length steps, each character step followed by a blank step so that doubled letters ("aa")
  survive ddddocr's repeat collapsing.

The export is checked before the command returns: onnxruntime must reproduce PyTorch's logits on a
batch of test images (the largest difference is printed).
"""
import dataclasses
import io
import json
import os
import warnings

import numpy as np
import torch
from torch import nn

from files import atomic_write
from model import load_checkpoint, model_from_checkpoint, parameter_count
from parameters import ProjectError, fail, parse_args, run_main

METADATA_KEY = "captcha_ocr"
OPSET = 17
TOLERANCE = 1e-3  # largest accepted |onnxruntime - torch| logit difference


class DdddocrAdapter(nn.Module):
    """ddddocr's interface around the model: float (N, 3, H, W) in 0-1 -> CTC probabilities over [blank] +
    charset: a ctc head's own columns (N, columns, 1 + K); positions heads' places, each followed by a
    blank step (N, 2L, 1 + K)."""

    def __init__(self, model, classes):
        super().__init__()
        self.model, self.classes = model, classes

    def forward(self, images):
        pixels = images.mul(255).permute(0, 2, 3, 1)  # (N, H, W, 3) in 0-255, what the model expects
        probabilities = torch.softmax(self.model(pixels).float(), dim=-1)  # (N, steps, classes)
        if self.model.head == "ctc":
            return probabilities  # CTC already, blank first: ddddocr's own form
        count, length, _ = probabilities.shape
        blank = probabilities.new_zeros(count, length, 1)
        characters = torch.cat([blank, probabilities], dim=-1)  # blank never wins a character step
        blanks = torch.zeros_like(characters)
        blanks[..., 0] = 1  # ... and always wins the step after it
        return torch.stack([characters, blanks], dim=2).reshape(count, 2 * length, self.classes + 1)


def onnx_paths(checkpoint_path, onnx_file=""):
    """(our .onnx, ddddocr's .onnx, ddddocr's .json) for a checkpoint."""
    base = onnx_file[:-5] if onnx_file.endswith(".onnx") else (onnx_file or os.path.splitext(checkpoint_path)[0])
    return f"{base}.onnx", f"{base}.ddddocr.onnx", f"{base}.ddddocr.json"


def _export(module, example, input_name, output_name, metadata=None):
    """The ONNX file of `module` as bytes, with `metadata` (a JSON-able dict) under METADATA_KEY."""
    import onnx
    buffer = io.BytesIO()
    # The TorchScript exporter (dynamo=False) needs no extra packages and handles this model; its
    # deprecation notice and the tracer's note that the input size is fixed are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, (example,), buffer, input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    if metadata is None:
        return buffer.getvalue()
    graph = onnx.load_from_string(buffer.getvalue())
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return graph.SerializeToString()


def export(checkpoint_path, onnx_file="", ddddocr=True, check_images=None):
    """Write the ONNX file(s) of a checkpoint; returns {'onnx', 'ddddocr_onnx', 'ddddocr_json', 'max_difference'}."""
    import onnxruntime
    checkpoint = load_checkpoint(checkpoint_path)
    model, trained = model_from_checkpoint(checkpoint)  # float32, eval mode
    charset = checkpoint["charset"]
    path, ddddocr_path, ddddocr_json = onnx_paths(checkpoint_path, onnx_file)
    example = torch.full((1, trained.image_height, trained.image_width, 3), 255, dtype=torch.uint8)
    metadata = {"charset": charset, "captcha_length": trained.captcha_length, "image_width": trained.image_width,
                "image_height": trained.image_height, "parameters": parameter_count(model),
                "checkpoint": checkpoint_path, "params": dataclasses.asdict(trained)}
    with torch.no_grad():
        atomic_write(path, _export(model, example, "images", "logits", metadata))
    if check_images is None:
        check_images = np.random.default_rng(0).integers(
            0, 256, (8, trained.image_height, trained.image_width, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model(torch.from_numpy(check_images)).numpy()
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    difference = float(np.abs(session.run(None, {"images": check_images})[0] - expected).max())
    if difference > TOLERANCE:
        raise ProjectError(f"the ONNX model differs from PyTorch by {difference:.2e} (over {TOLERANCE:g})")
    result = {"onnx": path, "max_difference": difference}
    if ddddocr:
        adapter = DdddocrAdapter(model, len(charset)).eval()
        with torch.no_grad():
            atomic_write(ddddocr_path, _export(adapter, example.permute(0, 3, 1, 2).float() / 255, "input1", "output"))
        atomic_write(ddddocr_json, json.dumps({"charset": [""] + list(charset), "word": False,
                                               "image": [trained.image_width, trained.image_height], "channel": 3},
                                              ensure_ascii=False))
        result.update(ddddocr_onnx=ddddocr_path, ddddocr_json=ddddocr_json)
    return result


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    checkpoint_path = params.checkpoint or os.path.join(params.model_dir, "best.pt")
    if checkpoint_path.endswith(".onnx"):
        fail("--checkpoint names the PyTorch checkpoint to export (a .pt file); use --onnx_file for the output")
    result = export(checkpoint_path, params.onnx_file, params.ddddocr)  # its errors: one line (run_main)
    print(f"wrote {result['onnx']} (onnxruntime matches PyTorch within {result['max_difference']:.1e})")
    if params.ddddocr:
        print(f"wrote {result['ddddocr_onnx']} and {result['ddddocr_json']} for "
              f"ddddocr.DdddOcr(det=False, ocr=False, import_onnx_path=..., charsets_path=...)")


if __name__ == "__main__":
    run_main(main)
