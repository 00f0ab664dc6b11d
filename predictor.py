"""The single path from images to text: load a checkpoint (PyTorch) or its ONNX export, read images in
batches, one result per image. userPred.py, userTest.py, the API, training's evaluation and the benchmarks
all read through it.

    predictor = load_model("model/best.pt")
    predict(predictor, [pil_image, jpeg_bytes])  # -> [{'text', 'text_ignore_case', 'confidences', ...}]

From a program of your own, Reader takes a model file and images of any kind:

    from predictor import Reader
    reader = Reader("model/best.onnx")        # or a .pt checkpoint
    reader.read("captcha.png")["text"]        # a path, bytes, a PIL image or a uint8 (H, W, 3) array

With params.backend == 'onnx' nothing here imports PyTorch (requirements-serve.txt is enough to serve).
"""
import functools
import io
import json
import os

import numpy as np
from PIL import Image

from arithmetic import Grammar
from dataset import Charset, decode_logits, least_confidence
from images import far_sizes, model_size, open_image, preprocess
from command_line import fail
from parameters import make_parameters, saved_parameters, with_saved_settings, worker_count
from errors import ProjectError


BACKENDS = ("torch", "onnx")


class Predictor:
    """A loaded model ready to read captchas, on either backend.

    `run` reads one batch: uint8 (n, H, W, 3) numpy -> float32 logits (n, length, classes) numpy.
    `params` are the caller's settings with the model-shape settings (charset, length, image size)
    replaced by the model's; `trained` are the settings the model was trained with. `grammar` answers the
    reads of an arithmetic model (None for others).
    """

    def __init__(self, run, charset, params, trained, device="cpu", checkpoint="", parameters=0):
        self.run, self.charset, self.params, self.trained = run, charset, params, trained
        self.device, self.checkpoint, self.parameters = device, checkpoint, parameters
        self.width, self.height = params.image_width, params.image_height
        self.grammar = Grammar.of(trained) if trained.captcha_kind == "arithmetic" else None

    def logits(self, images):
        """uint8 (N, H, W, 3) numpy -> float32 logits (N, length, classes), eval_batch_size images a batch."""
        size = max(1, self.params.eval_batch_size)
        batches = [self.run(np.ascontiguousarray(images[start:start + size])) for start in range(0, len(images), size)]
        if not batches:
            return np.zeros((0, 1, self.charset.classes), np.float32)
        return np.concatenate(batches)


class Reader:
    """A model file (a .pt checkpoint, or its .onnx export: no PyTorch needed) read from a program of your own.
    `settings` are any settings of prediction (unsure_below, predict_threads, ...)."""

    def __init__(self, model="model/best.pt", **settings):
        params = make_parameters({"backend": "onnx" if model.endswith(".onnx") else "torch", **settings})
        use_predict_threads(params)
        self.predictor = load_model(model, params)

    def read(self, image):
        """One image's result: text, text_ignore_case, confidence, confidences, unsure (and for an arithmetic
        model answer and answer_error). ImageError for an image that cannot be read."""
        return self.read_many([image])[0]

    def read_many(self, images):
        """The results of many images, read in batches."""
        return predict(self.predictor, (readable(image) for image in images))


def readable(image):
    """A path, bytes, a PIL image or a uint8 array (H, W, 3) or (H, W) as what predict() reads."""
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as handle:
            return handle.read()
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    return image


def use_predict_threads(params):
    """Torch CPU threads for reading images one or a few at a time (params.predict_threads).

    A batch of one is too small to share among cores: extra threads only wait on each other, and
    on a busy machine they stall whenever one of them is descheduled. (onnxruntime's threads are set
    on its session, in load_onnx.)
    """
    if params.backend == "torch":
        import torch  # only the torch backend needs PyTorch
        torch.set_num_threads(worker_count(params, "predict_threads"))


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def checkpoint_path(params):
    return params.checkpoint or os.path.join(params.model_dir, "best.pt")


def load_model(path=None, params=None, device=None):
    """A Predictor for the checkpoint at `path` (default: params.checkpoint, else model_dir/best.pt).

    With params.backend == 'onnx' the model is the .onnx file export_onnx.py wrote beside the
    checkpoint (or `path` itself when it ends in .onnx). Raises ProjectError with a one-line message
    when the model is missing, unreadable, or does not fit this version of the code.
    """
    params = params if params is not None else make_parameters()
    if params.backend not in BACKENDS:
        raise ProjectError(f"backend {params.backend!r} is not available (choose one of: {', '.join(BACKENDS)})")
    path = path or checkpoint_path(params)
    load = load_onnx if params.backend == "onnx" else load_torch
    predictor = load(path, params, device)
    # The first image pays for loading PIL's format plugins and for the backend setting up its
    # kernels: read a blank one now, not in the first request.
    blank = io.BytesIO()
    Image.new("RGB", (predictor.width, predictor.height), "white").save(blank, format="PNG")
    predict(predictor, [blank.getvalue()])
    return predictor


def load_onnx(path, params, device=None):
    """A Predictor on onnxruntime (CPU; `device` is not used)."""
    try:
        import onnxruntime
    except ImportError:
        raise ProjectError("--backend=onnx needs onnxruntime: pip install -r requirements-serve.txt") from None
    onnx_path = path if path.endswith(".onnx") else os.path.splitext(path)[0] + ".onnx"
    if not os.path.isfile(onnx_path):
        raise ProjectError(f"no ONNX model at {onnx_path!r} (export one with: python export_onnx.py "
                           f"--checkpoint={path})", 404)
    options = onnxruntime.SessionOptions()
    # One image is too small to share among cores (see use_predict_threads); the API's request
    # threads give the parallelism.
    options.intra_op_num_threads = worker_count(params, "predict_threads")
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        metadata = json.loads(session.get_modelmeta().custom_metadata_map["captcha_ocr"])
        trained = saved_parameters(metadata["params"])
    except Exception as error:  # a foreign or truncated file: one line, not a traceback
        raise ProjectError(f"{onnx_path!r} is not a captcha-ocr ONNX model ({type(error).__name__}: "
                           f"{first_line(error)})") from None
    charset = charset_of(metadata["charset"], trained)
    shape = session.get_outputs()[0].shape  # (batch, steps, classes)
    steps = trained.length_range[1] if not charset.ctc else shape[1]  # (a CTC model's columns)
    if list(shape[1:]) != [steps, charset.classes]:
        raise ProjectError(f"{onnx_path!r} is not a consistent ONNX model: it reads {shape[1]} steps of "
                           f"{shape[2]} classes, its metadata says {steps} of {charset.classes} "
                           f"({trained.reader_head} head, charset {metadata['charset']!r})")
    params = with_saved_settings(params, metadata["params"])

    def run(images):
        return session.run(None, {"images": images})[0]

    return Predictor(run, charset, params, trained, "cpu", onnx_path, metadata["parameters"])


def charset_of(chars, trained):
    """The Charset of a model trained with settings `trained` on the characters `chars`."""
    return Charset(chars, trained.length_range, ctc=trained.ctc_form)


def load_torch(path, params, device=None):
    """A Predictor on PyTorch, on `device` (default: as params.device says)."""
    try:
        import torch
    except ImportError:
        raise ProjectError("PyTorch is not installed: serve an exported model with --backend=onnx") from None
    from model import batch_logits, load_checkpoint, model_from_checkpoint, parameter_count, select_device
    checkpoint = load_checkpoint(path)  # its errors are already one line
    try:
        model, trained = model_from_checkpoint(checkpoint), saved_parameters(checkpoint["params"])
    except (RuntimeError, TypeError, KeyError, ValueError) as error:
        raise ProjectError(f"{path!r} does not fit this version of the model ({first_line(error)})") from None
    params = with_saved_settings(params, checkpoint["params"])
    if device is None:
        device = select_device(params.device, worker_count(params, "threads"))
    device = torch.device(device)
    model = model.to(device)
    if device.type == "cpu":
        # The model takes (N, H, W, 3) images, so its convolutions see channels-last input already;
        # channels-last weights spare a layout conversion per layer (~30% faster on one image).
        model = model.to(memory_format=torch.channels_last)
    run = functools.partial(batch_logits, model, device, False)  # float32: reads what the ONNX export reads
    return Predictor(run, charset_of(checkpoint["charset"], trained), params, trained, device, path,
                     parameter_count(model))


def load_model_or_exit(params):
    """load_model() for a script: a missing or unfit checkpoint ends it with one line."""
    try:
        return load_model(params=params)
    except ProjectError as error:
        fail(str(error))


def is_unsure(confidences_ignore_case, below):
    """A read to check (or to label): its least sure character, ignoring case, is below `below`."""
    return least_confidence(confidences_ignore_case) < below


def size_warning(size, predictor):
    """A line on an image whose size is far from the model's input, both as it is and as a folder of such
    images trains at (images.model_size): most likely another site's captcha, read by the wrong model; else None."""
    model_input = (predictor.width, predictor.height)
    if not (far_sizes(size, model_input) and far_sizes(model_size(*size), model_input)):
        return None
    return (f"{size[0]}x{size[1]} images are far from the {model_input[0]}x{model_input[1]} this model was trained "
            f"on: are they the captchas of another site? Its reads of them are likely wrong; train a model on them "
            f"(README: your own labelled captchas)")


def predict(predictor, images, max_pixels=0):
    """Read PIL images and/or image bytes (any iterable: each is reduced to the model's input before the
    next is taken, so a generator holds one decoded image at a time): a list of results, one per image.

    Each result: text, text_ignore_case (both cases of a letter counted as one), confidences and
    confidences_ignore_case (per character, 0-1), confidence (their mean, case-sensitive), and unsure
    (a character below the predictor's unsure_below, ignoring case: a read to check, or to label).
    An arithmetic model's results also hold answer (a whole number, or None) and answer_error (why there
    is none, else None).
    Raises ImageError for bytes that are not a readable image.
    """
    arrays = []
    for image in images:
        if isinstance(image, (bytes, bytearray, memoryview)):
            image = open_image(bytes(image), max_pixels)
        arrays.append(preprocess(image, predictor.width, predictor.height))
        del image  # not held while a generator decodes the next one
    if not arrays:
        return []
    logits = predictor.logits(np.stack(arrays))  # a writable copy: torch warns on read-only arrays
    texts, confidences = decode_logits(logits, predictor.charset)
    folded, folded_confidences = decode_logits(logits, predictor.charset, fold_case=True)
    below = predictor.params.unsure_below
    results = [{"text": text, "text_ignore_case": lower, "confidences": [float(c) for c in row],
                "confidences_ignore_case": [float(c) for c in folded_row],
                "confidence": float(row.mean()) if row.size else 0.0,
                "unsure": is_unsure(folded_row, below)}
               for text, lower, row, folded_row in zip(texts, folded, confidences, folded_confidences)]
    if predictor.grammar is not None:
        for result in results:
            result["answer"], result["answer_error"] = predictor.grammar.answer(result["text"])
    return results
