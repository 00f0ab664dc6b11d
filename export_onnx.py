"""Export a trained checkpoint to ONNX, for onnxruntime (no PyTorch needed to serve) and for ddddocr.

    python export_onnx.py                                  # model_dir/best.pt -> model_dir/best.onnx (+ ddddocr files)
    python export_onnx.py --checkpoint=runs/x/best.pt --onnx_file=x.onnx
    python userPred.py --backend=onnx captcha.jpg          # read with the exported model
    python api_demo.py --backend=onnx --server=waitress    # serve it

Writes:
- `<name>.onnx`: uint8 images (batch, height, width, 3) -> logits (batch, steps, classes), any batch
  size: a positions model's steps are its character places, a ctc model's its feature columns (class 0
  CTC's blank); dataset.decode_logits turns either into text. The charset, captcha length, image
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

With `--quantize=int8` it also writes `<name>.int8.onnx`: weights and activations in 8 bits (static
quantization, ranges calibrated on calibration_count images of the training folder), a quarter of the
size. Both models read the test folder and the accuracy each reaches is printed; when int8 loses more than
quantize_max_loss the int8 file is not written. Serve it like the float one:

    python export_onnx.py --quantize=int8
    python userPred.py --backend=onnx --checkpoint=model/best.int8.onnx captcha.jpg
"""
import dataclasses
import io
import json
import os
import random
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from dataset import image_names, load_folder, Reading, score
from files import atomic_write
from images import read_image
from model import load_checkpoint, model_from_checkpoint, parameter_count
from command_line import fail, parse_args, run_main
from parameters import make_parameters, saved_parameters
from errors import ProjectError

METADATA_KEY = "captcha_ocr"
OPSET = 17
TOLERANCE = 1e-3  # largest accepted |onnxruntime - torch| logit difference


class DdddocrAdapter(nn.Module):
    """ddddocr's interface around the model: float (N, 3, H, W) in 0-1 -> CTC probabilities over [blank] +
    charset, in the form the model's head gives (heads.Head.ctc_form)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        pixels = images.mul(255).permute(0, 2, 3, 1)  # (N, H, W, 3) in 0-255, what the model expects
        probabilities = torch.softmax(self.model(pixels).float(), dim=-1)  # (N, steps, classes)
        return self.model.head.ctc_form(probabilities)


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
    model, trained = model_from_checkpoint(checkpoint), saved_parameters(checkpoint["params"])  # float32, eval mode
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
        adapter = DdddocrAdapter(model).eval()
        with torch.no_grad():
            atomic_write(ddddocr_path, _export(adapter, example.permute(0, 3, 1, 2).float() / 255, "input1", "output"))
        atomic_write(ddddocr_json, json.dumps({"charset": [""] + list(charset), "word": False,
                                               "image": [trained.image_width, trained.image_height], "channel": 3},
                                              ensure_ascii=False))
        result.update(ddddocr_onnx=ddddocr_path, ddddocr_json=ddddocr_json)
    return result


def calibration_images(folder, trained, count, seed):
    """uint8 (n <= count, H, W, 3): a seeded draw of `count` images of a folder (labels not needed: the site's
    own captchas do), read as the model reads; only those are decoded, not the whole folder."""
    names = image_names(folder)
    chosen = sorted(random.Random(seed).sample(names, min(count, len(names))))
    arrays = [read_image(os.path.join(folder, name), trained.image_width, trained.image_height)[0]
              for name in chosen]
    arrays = [array for array in arrays if array is not None]  # an unreadable file calibrates nothing
    if not arrays:
        raise ProjectError(f"no readable images to calibrate the int8 model on in {folder!r} (set --calibration_dir)")
    return np.stack(arrays)


def quantize_int8(float_path, images, batch=32):
    """The bytes of the int8 model of the ONNX file `float_path` (QDQ: per-channel int8 weights, uint8
    activations whose ranges are the calibration `images` (N, H, W, 3) uint8 seen), its metadata kept."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"images": images[start:start + batch]} for start in range(0, len(images), batch)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as work:
        prepared, path = os.path.join(work, "prepared.onnx"), os.path.join(work, "int8.onnx")
        quant_pre_process(float_path, prepared)  # shapes inferred and the graph folded, as quantization wants
        # reduce_range (7-bit weights): where the CPU has no VNNI (AVX2 or AVX-512 alone), onnxruntime's uint8 x
        # int8 kernels add pairs of products in 16 bits, which saturate at full range (a model that read 0.955
        # in float read 0.580 in int8 on an AVX2-only CPU); the file may be served on any CPU
        quantize_static(prepared, path, Batches(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        quantized = onnx.load(path)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(onnx.load(float_path).metadata_props)
    return quantized.SerializeToString()


def onnx_predictor(path):
    """predictor.py's Predictor on the ONNX model at `path`, reading batches on every core."""
    from predictor import load_model
    return load_model(path, make_parameters({"backend": "onnx", "predict_threads": 0}))


def accuracy_of(predictor, test):
    """Whole-captcha accuracy of a Predictor on an ImageSet (read as predictor.py reads)."""
    return score(predictor.logits(test.images), test.labels, predictor.charset)[0]["accuracy"]


def export_int8(float_path, params):
    """Write <name>.int8.onnx beside the ONNX model `float_path` unless it loses more than quantize_max_loss of
    its accuracy on the test folder: {'int8', 'bytes', 'float_accuracy', 'int8_accuracy', 'count', 'written'}."""
    float_model = onnx_predictor(float_path)
    trained = float_model.trained  # its settings travel in the file: folders, size, seed
    images = calibration_images(params.calibration_dir or trained.train_dir, trained, params.calibration_count,
                                trained.seed)
    data = quantize_int8(float_path, images)
    path = float_path[:-5] + ".int8.onnx"
    test = load_folder(params.quantize_test_dir or trained.test_dir, Reading.of(trained, strict=False), quiet=True)
    with tempfile.TemporaryDirectory() as work:  # scored before it is written where a server could load it
        candidate = os.path.join(work, "int8.onnx")
        atomic_write(candidate, data)
        int8_accuracy = accuracy_of(onnx_predictor(candidate), test)
    float_accuracy = accuracy_of(float_model, test)
    result = {"int8": path, "bytes": len(data), "float_accuracy": float_accuracy, "int8_accuracy": int8_accuracy,
              "count": len(test), "written": float_accuracy - int8_accuracy <= params.quantize_max_loss}
    if result["written"]:
        atomic_write(path, data)
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
    if params.quantize:
        report_int8(export_int8(result["onnx"], params), params)


def report_int8(int8, params):
    """Print the int8 model's accuracy beside the float one's; end with an error when it was refused."""
    loss = int8["float_accuracy"] - int8["int8_accuracy"]
    scores = (f"whole-captcha accuracy on {int8['count']} test images: float {int8['float_accuracy']:.4f}, "
              f"int8 {int8['int8_accuracy']:.4f} ({-loss:+.4f})")
    if not int8["written"]:
        fail(f"the int8 model loses {loss:.4f} of accuracy, over quantize_max_loss={params.quantize_max_loss:g}: "
             f"not written ({scores}); calibrate on more images or raise --quantize_max_loss")
    print(f"wrote {int8['int8']} ({int8['bytes'] / 1e6:.2f} MB; {scores})")


if __name__ == "__main__":
    run_main(main)
