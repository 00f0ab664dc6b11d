"""Pixel statistics of a generator style beside a folder of real captchas, with the difference.

    python bench/bench_style.py --style=seed ../shared/datasets/original_style
    python bench/bench_style.py --style=captcha_images_v2 ../shared/datasets/captcha_images_v2
    python bench/bench_style.py --style=seed --render_jitter= ../shared/datasets/original_style   # jitter off

bench_style_count captchas are drawn in memory (image i from random.Random(f"{seed}:bench:{i}"), so a run
is repeatable), written and read back in the style's file format (image_format, jpeg_quality) as a data
set would store them, and compared with up to bench_style_count images of the folder (a seeded draw
when it holds more: names sort by label, so the first ones would all start with digits). Without a folder only the style's column is printed. Each statistic is a mean over images:

- background: a pixel's background estimate is the 90th percentile of the grey values (grey = mean of
  R, G, B) in the 9 columns centred on its column (clipped at the borders): text is darker than the
  paper, and a window of columns keeps some paper even where a stem runs the full height, and
  follows a background gradient. The row is the mean estimate over the image.
- ink: pixels at least INK_DEPTH (30) grey levels darker than their background estimate.
- ink fraction: ink pixels / all pixels.
- contrast: mean over ink pixels of (background estimate - grey): how dark strokes are.
- ink saturation: mean over ink pixels of max(R, G, B) - min(R, G, B) (0 for grey ink).
- sharpness: mean absolute grey difference of horizontally neighbouring pixels (blur lowers it).
- ink top row / bottom row: fraction of the top (bottom) row's pixels that are ink: text touching or
  running off the top (bottom) edge.
- ink left / right column: the same for the first (last) column.
- ink centre x / y: mean column (row) of the ink pixels as a fraction of the width (height).
- digit fraction: digits / characters over all labels (file-name labels for the folder; none when its names are
  mostly not labels of the style's charset and length: "-").
- upper-case fraction: upper-case letters / characters over all labels.
- label length: mean characters per label.
- grey images: fraction of images whose three channels are equal everywhere.
- PNG fraction: fraction of files stored as PNG (the rest: JPEG or other), by content, not by name.
- width / height: mean image size, pixels.

With a folder it also prints the style distance (style_distance.py) of the style's captchas to the
folder's, both read at the style's image size: what fit_style.py minimises (0: indistinguishable); and
with --style_file (a fitted style) beside it the distance of the nearest preset, as the fit starts:

    python bench/bench_style.py --style_file=runs/site_pku/style.json ../shared/datasets/pku_elective
"""
import io
import os
import random
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from custom_captcha_image import StyleError, make_generator  # noqa: E402
from dataset import DataError, folder_labels, list_folder, Reading  # noqa: E402
from generate_captcha import encode  # noqa: E402
from bench_settings import BenchParameters  # noqa: E402
from command_line import fail, parse_args, run_main  # noqa: E402
from parameters import make_parameters  # noqa: E402

INK_DEPTH = 30  # grey levels below the background estimate that make a pixel ink
WINDOW = 9  # columns in the background estimate's window
PERCENTILE = 90  # percentile of the window's grey values taken as background
STATISTICS = ("background", "ink fraction", "contrast", "ink saturation", "sharpness", "ink top row",
              "ink bottom row", "ink left column", "ink right column", "ink centre x", "ink centre y",
              "digit fraction", "upper-case fraction", "label length", "grey images", "PNG fraction",
              "width", "height")


def background(grey):
    """(H, W) grey -> (W,) background estimate of each column: the PERCENTILE of its WINDOW-column window."""
    half = WINDOW // 2
    width = grey.shape[1]
    return np.array([np.percentile(grey[:, max(0, x - half):x + half + 1], PERCENTILE) for x in range(width)])


def image_statistics(rgb):
    """Per-image statistics of one uint8 (H, W, 3) array (see the module docstring)."""
    pixels = rgb.astype(np.float32)
    grey = pixels.mean(axis=2)
    paper = background(grey)[None, :]
    ink = grey <= paper - INK_DEPTH
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    rows, columns = np.nonzero(ink)
    height, width = grey.shape
    any_ink = ink.any()
    return {
        "background": float(paper.mean()),
        "ink fraction": float(ink.mean()),
        "contrast": float((paper - grey)[ink].mean()) if any_ink else 0.0,
        "ink saturation": float(saturation[ink].mean()) if any_ink else 0.0,
        "sharpness": float(np.abs(np.diff(grey, axis=1)).mean()),
        "ink top row": float(ink[0].mean()),
        "ink bottom row": float(ink[-1].mean()),
        "ink left column": float(ink[:, 0].mean()),
        "ink right column": float(ink[:, -1].mean()),
        "ink centre x": float(columns.mean() / width) if any_ink else 0.5,
        "ink centre y": float(rows.mean() / height) if any_ink else 0.5,
        "grey images": float(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])),
        "width": float(width),
        "height": float(height),
    }


def label_statistics(labels):
    text = "".join(labels)
    count = max(1, len(text))
    return {"digit fraction": sum(c.isdigit() for c in text) / count,
            "upper-case fraction": sum(c.isupper() for c in text) / count,
            "label length": len(text) / max(1, len(labels))}


def summarise(images, labels, png_flags):
    """Mean of every statistic over (PIL image, ...), with labels (None: an unlabelled folder, no label
    statistics) and whether each file is a PNG."""
    rows = [image_statistics(np.asarray(image.convert("RGB"))) for image in images]
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    if labels is not None:
        means.update(label_statistics(labels))
    means["PNG fraction"] = float(np.mean(png_flags))
    return means


def read_back(image, params):
    """The image as a data set stores it: encoded in the style's format and decoded."""
    data = encode(image, params)
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    return decoded


def style_statistics(params):
    generator = make_generator(params)
    images, labels = [], []
    for index in range(params.bench_style_count):
        label, image = generator.sample(random.Random(f"{params.seed}:bench:{index}"))
        images.append(read_back(image, params))
        labels.append(label)
    return summarise(images, labels, [params.image_format == "png"] * len(images))


def folder_statistics(folder, params):
    """The statistics of up to bench_style_count of the folder's captchas. A folder whose file names are
    mostly not labels in the style's charset and length (u0001.jpg) is read as unlabelled: no label statistics."""
    files, _ = folder_labels(folder)
    fitting = {name for name, _ in list_folder(folder, Reading.of(params))[0]}
    labelled = 2 * len(fitting) >= len(files) > 0
    if files and not labelled:
        print(f"{folder}: {len(files) - len(fitting)} of its {len(files)} file names (e.g. {files[0][0]}) are not "
              f"labels of {len(params.charset)} classes and {params.captcha_length} characters: read as unlabelled, "
              f"no label statistics")
    chosen = [(name, label) for name, label in files if name in fitting or not labelled]
    if len(chosen) > params.bench_style_count:
        chosen = sorted(random.Random(params.seed).sample(chosen, params.bench_style_count))
    images, labels, png_flags = [], [], []
    for name, label in chosen:
        with Image.open(os.path.join(folder, name)) as image:
            image.load()
            png_flags.append(image.format == "PNG")
            images.append(image.copy())
        labels.append(label)
    if not images:
        raise DataError(f"folder {folder!r} holds no images")
    return summarise(images, labels if labelled else None, png_flags)


def print_table(style_name, ours, real_name=None, real=None):
    width = max(14, len(style_name), len(real_name or ""))
    header = f"{'statistic':22s} {style_name:>{width}s}"
    if real is not None:
        header += f" {real_name:>{width}s} {'difference':>11s}"
    print(header)
    for key in STATISTICS:
        line = f"{key:22s} {ours[key]:{width}.3f}"
        if real is not None and key in real:
            line += f" {real[key]:{width}.3f} {ours[key] - real[key]:+11.3f}"
        elif real is not None:
            line += f" {'-':>{width}s} {'-':>11s}"  # an unlabelled folder has no label statistics
        print(line)


def main(argv=None):
    params, folders = parse_args(argv, doc=__doc__, positional=True, script=__file__, kind=BenchParameters)
    if len(folders) > 1:
        fail("give at most one folder of real captchas")
    if params.bench_style_count < 1:
        fail("bench_style_count must be at least 1")
    try:
        ours = style_statistics(params)
        real = folder_statistics(folders[0], params) if folders else None
    except (StyleError, DataError) as error:
        fail(str(error))
    name = params.style + ("" if params.render_jitter else " (no jitter)")
    print(f"{params.bench_style_count} generated images of style {name} (seed {params.seed})"
          + (f" beside {folders[0]}" if folders else ""))
    print_table(params.style, ours, os.path.basename(os.path.normpath(folders[0])) if folders else None, real)
    if folders:
        print(f"style distance (style_distance.py, what fit_style.py minimises): {style_distance(params, folders[0]):.3f}")
    if folders and params.style_file:
        preset, score = nearest_preset(params, folders[0])
        print(f"beside it, the preset nearest the folder (as fit_style.py starts): {preset} {score:.3f}")


def style_distance(params, folder):
    """style_distance.distance of the style's captchas to the folder's, both read at the style's size."""
    from fit_style import Scorer, real_images  # the fit's own scoring: one home
    real = real_images(folder, (params.image_width, params.image_height), params.bench_style_count, params.seed)
    return Scorer(real, make_parameters({"fit_images": min(params.bench_style_count, 300)}, base=params))(params)


def nearest_preset(params, folder):
    """(name, distance) of the preset closest to the folder's captchas, each drawn at the folder's measured
    size as fit_style.py draws the starts of its search."""
    from fit_style import Scorer, fit_base, nearest_presets, real_images
    base = fit_base(folder, params)
    size = (base["image_width"], base["image_height"])
    real = real_images(folder, size, params.bench_style_count, params.seed)
    scorer = Scorer(real, make_parameters({"fit_images": min(params.bench_style_count, 300)}, base=params))
    score, name, _ = nearest_presets(scorer, size, base)[0]
    return name, score


if __name__ == "__main__":
    run_main(main)
