"""Image bytes and files -> the model's input, for every path that reads captchas: training folders
(dataset.py), prediction (predictor.py) and the API. Untrusted bytes are checked before they are decoded:
their size from the header (a small file can decode to gigabytes), and any decoder failure is one ImageError.
Numpy and Pillow only: serving with onnxruntime imports this module.
"""
import io
import math
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from errors import ProjectError


# The largest image read from a folder: as the API's max_image_pixels default (a captcha is far smaller, and a
# small PNG can decode to gigabytes), and the largest file.
MAX_FILE_PIXELS = 4_000_000
MAX_FILE_BYTES = 16 * 2 ** 20


class ImageError(ProjectError):
    """Bytes that cannot be read as an image; `status` is the HTTP status the API answers with."""


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
        with warnings.catch_warnings():  # Pillow's warning of a large image: max_pixels decides, below
            if max_pixels:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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


def preprocess(image, width, height):
    """Any PIL image (any size, any mode, animated or not) -> uint8 array (height, width, 3), the model's
    input: the picture a person sees (an animated file's first frame; transparent parts as white paper;
    16-bit, 32-bit and float grey scaled to 8 bits, not clipped to white)."""
    if getattr(image, "is_animated", False):
        image.seek(0)
    image = eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def eight_bit(image):
    """Grey images of more than 8 bits (I;16*, I, F) as 'L': Pillow's own conversion clips them, so a
    16-bit captcha would read as a white page. Integers span 16 bits; floats 0-1 (or 0-255 when larger)."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    grey = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        grey = grey * 255 if grey.size and grey.max() <= 1.0 else grey
    else:
        grey = grey / 257  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))  # 2-D uint8: mode L


def moved(images, pixels, fill=None):
    """uint8 images (N, H, W, C) moved `pixels` columns right (left when negative), the gap filled with `fill`
    (0-255), or with the edge columns repeated when None: the paper's colour at that edge, not the other side's."""
    if not pixels:
        return images
    gap = ((0, 0), (0, 0), (max(pixels, 0), max(-pixels, 0)), (0, 0))
    padded = np.pad(images, gap, mode="edge") if fill is None else np.pad(images, gap, constant_values=fill)
    start = max(-pixels, 0)
    return padded[:, :, start:start + images.shape[2]]


AUTO_PIXELS = 4800  # a folder's image size is scaled down to about this many pixels (w x h) for the model
SIZE_STEP = 8  # ... and rounded to multiples of this many pixels (the model's feature stride)
SIZE_SPREAD = 1.6  # a side longer than another size's by this factor (or shorter by its inverse) is far from it


def model_size(width, height):
    """The input size a model reads images of `width` x `height` at: scaled down (aspect kept) to
    AUTO_PIXELS pixels when larger, each side rounded to the nearest multiple of SIZE_STEP (at least 2 steps)."""
    scale = min(1.0, math.sqrt(AUTO_PIXELS / (width * height)))
    return tuple(max(2 * SIZE_STEP, round(side * scale / SIZE_STEP) * SIZE_STEP) for side in (width, height))


def far_sizes(size, other):
    """Whether two (width, height) differ in a side by more than SIZE_SPREAD."""
    return any(not 1 / SIZE_SPREAD <= a / b <= SIZE_SPREAD for a, b in zip(size, other))


def read_image(path, width, height):
    """(array, None) or (None, why it cannot be read): a file of a folder (training, test, calibration),
    checked as the API checks what it is sent (size from the header, MAX_FILE_PIXELS)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return None, f"cannot read image ({type(error).__name__}: {error})"
    if len(data) > MAX_FILE_BYTES:
        return None, f"file over {MAX_FILE_BYTES // 2 ** 20} MB: not a captcha"
    try:
        return preprocess(open_image(data, MAX_FILE_PIXELS), width, height), None
    except ImageError as error:
        return None, str(error)
    except (OSError, ValueError) as error:
        return None, f"cannot read image ({type(error).__name__}: {error})"
