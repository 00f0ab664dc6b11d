"""Read captchas with a trained checkpoint: one or more image files, folders, or image bytes on stdin.

    python userPred.py captcha.jpg                         # text, per-character confidences, time
    python userPred.py shots/ other.png                    # every image of a folder, and a file
    curl -s https://example.com/captcha | python userPred.py -      # image bytes on stdin
    python userPred.py --json captcha.jpg                  # one JSON list of results
    python userPred.py --checkpoint=runs/x/best.pt captcha.jpg
    python userPred.py --backend=onnx captcha.jpg          # onnxruntime on best.onnx (python export_onnx.py)

The checkpoint (default model_dir/best.pt) carries the charset, captcha length and image size, so
no other setting is needed. A read whose least sure character is below --unsure_below (ignoring case)
ends in UNSURE ("unsure": true in JSON). A file that is missing or not an image gets a one-line error; the others
are still read, and the exit status is 1 when any failed.

As a library this module is the single path from images to text, shared by userTest.py, the API,
the benchmarks and training's evaluation (Predictor.logits reads any number of images in batches):

    predictor = load_model("model/best.pt")
    predict(predictor, [pil_image, jpeg_bytes])  # -> [{'text', 'text_ignore_case', 'confidences', ...}]

With --backend=onnx nothing here imports PyTorch (requirements-serve.txt is enough to serve).
"""
import functools
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image, UnidentifiedImageError

from arithmetic import Grammar
from dataset import IMAGE_EXTENSIONS, Charset, decode_logits, least_confidence, preprocess
from parameters import (ProjectError, fail, make_parameters, parse_args, run_main, saved_parameters,
                        with_saved_settings, worker_count)

BACKENDS = ("torch", "onnx")


class ImageError(ProjectError):
    """Bytes that cannot be read as an image; `status` is the HTTP status the API answers with."""


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
    return Charset(chars, trained.length_range, ctc=trained.reader_head == "ctc")


def load_torch(path, params, device=None):
    """A Predictor on PyTorch, on `device` (default: as params.device says)."""
    try:
        import torch
    except ImportError:
        raise ProjectError("PyTorch is not installed: serve an exported model with --backend=onnx") from None
    from model import batch_logits, load_checkpoint, model_from_checkpoint, parameter_count, select_device
    checkpoint = load_checkpoint(path)  # its errors are already one line
    try:
        model, trained = model_from_checkpoint(checkpoint)
    except (RuntimeError, TypeError, KeyError, ValueError) as error:
        raise ProjectError(f"{path!r} does not fit this version of the model ({first_line(error)})") from None
    params = with_saved_settings(params, checkpoint["params"])
    device = torch.device(device) if device is not None else select_device(params)
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


def webp_size(data):
    """(width, height) of WebP bytes from their first chunk; None for bytes that are not a WebP.

    Pillow's WebP reader sets up libwebp's decoder, with a zeroed RGBA canvas of the full size (16 MB
    for 2000x2000), when it opens a file: a WebP's size must be checked before Image.open sees it.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk, body = data[12:16], data[20:30]
    if chunk == b"VP8X" and len(body) >= 10:  # extended: the canvas size, 24 bits each, less one
        return 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little")
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:  # lossless: 14 bits each, less one
        bits = int.from_bytes(body[1:5], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":  # lossy: 14 bits each
        return int.from_bytes(body[6:8], "little") & 0x3FFF, int.from_bytes(body[8:10], "little") & 0x3FFF
    raise ImageError("cannot read the image (a WebP whose size cannot be read)")


def check_pixels(size, max_pixels):
    width, height = size
    if max_pixels and width * height > max_pixels:
        raise ImageError(f"image of {width}x{height} pixels is over the limit of {max_pixels} pixels", 413)


def checked_webp_size(data, max_pixels):
    """webp_size, checked against max_pixels (Pillow's own limit when 0) before Pillow's WebP reader takes
    memory for the pixels; None for bytes that are not a WebP."""
    size = webp_size(data)
    if size is not None:
        check_pixels(size, max_pixels or 2 * Image.MAX_IMAGE_PIXELS)
    return size


def image_size(data, max_pixels=0):
    """(width, height) of image bytes from their header: no pixel decoded, no pixel memory taken.
    ImageError for bytes that are not an image, or of more than max_pixels > 0 pixels."""
    return checked_webp_size(data, max_pixels) or open_image(data, max_pixels, decode=False).size


def open_image(data, max_pixels=0, decode=True):
    """Image bytes -> decoded PIL image (decode=False: opened, not decoded); the size is checked from the
    header before decoding.

    max_pixels > 0 rejects larger images (a small compressed file can decode to gigabytes).
    """
    if not data:
        raise ImageError("the image is empty")
    checked_webp_size(data, max_pixels)
    # Decoders meet untrusted bytes here and fail in many ways (OSError, SyntaxError, struct.error,
    # EOFError...): any failure to decode is the sender's problem, answered as a bad image.
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"image is over the limit of {max_pixels or Image.MAX_IMAGE_PIXELS} pixels", 413) from None
    except Exception as error:
        raise ImageError(f"cannot read the image ({type(error).__name__}: {error})") from None
    check_pixels(image.size, max_pixels)
    if not decode:
        return image
    try:
        image.load()
    except Exception as error:
        raise ImageError(f"cannot decode the image ({type(error).__name__}: {error})") from None
    return image


def is_unsure(confidences_ignore_case, below):
    """A read to check (or to label): its least sure character, ignoring case, is below `below`."""
    return least_confidence(confidences_ignore_case) < below


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


def expand(arguments):
    """Command-line arguments -> [(name, path or '-', error or None)]; folders list their images."""
    items = []
    for argument in arguments:
        if argument == "-":
            items.append(("-", "-", None))
        elif os.path.isdir(argument):
            names = sorted(name for name in os.listdir(argument) if name.lower().endswith(IMAGE_EXTENSIONS))
            if not names:
                items.append((argument, None, "folder has no images"))
            items += [(os.path.join(argument, name), os.path.join(argument, name), None) for name in names]
        elif os.path.isfile(argument):
            items.append((argument, argument, None))
        else:
            items.append((argument, None, "no such file or folder"))
    return items


def read_one(predictor, source):
    """(result with 'ms', None) or (None, error) for a path or '-' (stdin)."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as handle:
                data = handle.read()
    except OSError as error:
        return None, f"cannot read ({error.strerror})"
    start = time.perf_counter()
    try:
        result = predict(predictor, [data])[0]
    except ImageError as error:
        return None, str(error)
    result["ms"] = (time.perf_counter() - start) * 1000
    return result, None


def answer_text(result):
    """' answer 11', ' no answer (why)', or '' for a model that does not answer."""
    if "answer" not in result:
        return ""
    return f"  answer {result['answer']}" if result["answer"] is not None else f"  no answer ({result['answer_error']})"


def main(argv=None):
    params, arguments = parse_args(argv, doc=__doc__, script=__file__, positional=True)
    if not arguments:
        fail("name one or more image files or folders, or - for image bytes on stdin (see --help)")
    predictor = load_model_or_exit(params)
    use_predict_threads(params)
    failed = 0
    results = []
    for name, source, problem in expand(arguments):
        result = None
        if problem is None:
            result, problem = read_one(predictor, source)
        if problem is not None:
            failed += 1
            print(f"{name}: error: {problem}", file=sys.stderr)
            results.append({"file": name, "error": problem})
            continue
        results.append({"file": name, **result})
        if not params.json:
            confidences = " ".join(f"{c:.3f}" for c in result["confidences"])
            mark = "  UNSURE" if result["unsure"] else ""
            print(f"{name}: {result['text']}{answer_text(result)}  (ignoring case: {result['text_ignore_case']})  "
                  f"confidences {confidences}  {result['ms']:.1f} ms{mark}", flush=True)
    if params.json:
        print(json.dumps(results, indent=2))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    run_main(main)
