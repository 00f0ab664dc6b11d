"""Fit a generator style to a site's own captchas, without labels: the style whose captchas look most like them.

    python fit_style.py my_site/ --charset=2345678abcdefgmnpwxy --captcha_length=4
    python generate_captcha.py --style_file=my_site.style.json --train_count=100000
    python main.py --style_file=my_site.style.json ...

1. Measured from the folder: the image size (its median), the file format, grey or colour, a transparent
   canvas, a border of one colour.
2. The nearest presets: every text style of styles.py (the libraries' looks among them; or
   those fit_presets names, when the site's library is known), drawn
   at that size with the charset and length given, each scored by style_distance.distance() against the
   real captchas; the STARTS closest are the starts. One more start whatever its distance: the `plain`
   preset placed and coloured as the site places and colours its text (site_layout.py), which the
   distance alone does not see.
3. A search from each start, in an equal share of the time: pass after pass (fit_rounds) over the knobs
   of SEARCH, each tried at a few values; a value is kept when it brings the distance down. The best
   style of all the searches is the fit. Every candidate draws the same captchas (image i from the
   same seed), so candidates differ by their settings, not by luck; a fit is deterministic for a seed.
   It stops after fit_minutes with the best style so far.

Writes the style file (fit_file: the settings the captchas are drawn with, as a generated folder's
.generator.json holds them) and a PNG beside it: rows of real captchas, the nearest preset's and the
fitted style's; prints the distance of each. With fit_candidates=K, also the style files of the K
first candidates (see candidates()), for choose_style.py to try.
"""
import json
import math
import os
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from custom_captcha_image import StyleError, make_generator
from dataset import DataError, image_names
from files import atomic_write
from folder_settings import folder_image_size
from generate_captcha import as_saved, drawing_settings, image_rng
from grid import image_grid
from images import preprocess, read_image
from command_line import fail, parse_args, run_main
from parameters import make_parameters
from errors import ProjectError
from site_layout import measured_layout
from styles import STYLES
from style_distance import distance, features

NOT_FITTED = ("arithmetic", "color_target", "swust")  # other kinds, and a mix (its members are candidates)
SCALED_BY_HEIGHT = ("font_sizes",)  # a preset drawn at another size: these follow the height...
SCALED_BY_WIDTH = ("left_margin", "char_pitch", "row_shift")  # ... and these the width
SHOWN = 8  # captchas of each kind in the side-by-side picture
KEEP_GAIN = 0.005  # a candidate is kept when it lowers the distance by more than this share
TEXT_STYLES = tuple(name for name in STYLES if name not in NOT_FITTED)  # the presets a fit may start from
STARTS = 3  # the nearest presets a search starts from (one start can end in another's local minimum)
MEASURED_START = "plain placed as measured"  # the name of the start site_layout.py places


# Font families the search tries (a set each), by kind: sans bold and regular, narrow, serif, mono, geometric,
# rounded handwriting; all installed by .ci/install_browser.sh (a missing one is skipped as a StyleError).
FONT_CHOICES = (("DejaVu Sans:bold",), ("DejaVu Sans",), ("Liberation Sans:bold",), ("Liberation Sans",),
                ("Liberation Sans Narrow:bold",), ("Nimbus Sans:bold", "FreeSans:bold"), ("Liberation Serif:bold",),
                ("DejaVu Serif",), ("Liberation Mono:bold",), ("URW Gothic",), ("Comic Neue:bold",))


def scaled(values, factor):
    return tuple(type(value)(round(value * factor, 2)) for value in values)


def around(value, steps, low=0.0):
    """`value` moved by each of `steps` (not below `low`), rounded: the values next to it a search tries."""
    return sorted({round(max(low, value + step), 2) for step in steps})


def range_around(pair, steps, low=0.0):
    """A range min,max shifted by each of `steps` (not below `low`)."""
    return [tuple(round(max(low, value + step), 2) for value in pair) for step in steps]


# The knobs the search tries, each with the values to try given the style so far: coarse jumps and the
# neighbours of the current value (so a later pass refines what an earlier one found).
SEARCH = (
    # the turn of the glyphs first (other knobs can mimic it: a ripple, a bolder font), then what is
    # drawn (the looks, the noise), then colours, then fonts, sizes and places
    ("rotation", lambda p: around(p.rotation, (-10, -5, -2.5, 2.5, 5, 10)) + [0.0, 30.0]),
    ("outline_width", lambda p: [0, 1, 2]),
    ("outline_fill", lambda p: ["", "white"]),
    ("glyph_dots", lambda p: [0.0, 1.5, 2.5]),
    ("fisheye", lambda p: [0.0, 0.2, 0.4]),
    ("ripple", lambda p: [(0.0, 0.0), (1.5, 20.0), (3.0, 30.0)]),
    ("warp_x", lambda p: [(0.0, 0.0), (0.0, 0.05), (0.1, 0.3)]),
    ("noise_curves", lambda p: [0, 1, 2]),
    ("noise_dots", lambda p: [0, 10, 30]),
    ("noise_lines", lambda p: [(0, 0), (5, 15), (30, 60)]),
    ("branch_lines", lambda p: [0, 3, 6]),
    ("dotted_lines", lambda p: [0, 1]),
    ("speckles", lambda p: [0, 40, 150]),
    ("sparkles", lambda p: [0, 10, 25]),
    ("smooth", lambda p: [not p.smooth]),
    ("solid_text", lambda p: [not p.solid_text]),
    ("text_color_min", lambda p: [0, 40, 80, 120]),
    ("text_color_max", lambda p: [max(p.text_color_min, value) for value in (40, 100, 160, 220)]),
    ("color_per_char", lambda p: [not p.color_per_char]),
    ("background_min", lambda p: [160, 200, 230, 250]),
    ("background_gradient", lambda p: [(0.0, 0.0), (20.0, 40.0), (50.0, 70.0)]),
    ("stroke_weight", lambda p: [(0.0, 0.0), (-0.4, 0.0), (0.4, 0.8), (1.0, 1.5)]),
    ("fonts", lambda p: list(FONT_CHOICES)),
    ("font_sizes", lambda p: [scaled(p.font_sizes, f) for f in (0.8, 0.9, 0.95, 1.05, 1.12, 1.25)]),
    ("stretch_glyphs", lambda p: [not p.stretch_glyphs]),
    ("left_margin", lambda p: range_around(p.left_margin, (-6, -3, 3, 6), -p.image_width / 4)),
    ("char_spacing", lambda p: range_around(p.char_spacing or (0.0, 0.0), (-4, -2, 2, 4), -p.image_width / 4)),
    ("row_shift_y", lambda p: range_around(p.row_shift_y, (-3, 3), -p.image_height / 2)),
)


def real_images(folder, size, count, seed):
    """uint8 (N, H, W, 3) of up to `count` of the folder's images (a seeded draw), read at `size`."""
    names = image_names(folder)
    if len(names) > count:
        names = sorted(np.random.default_rng(seed).choice(names, count, replace=False).tolist())
    arrays = [read_image(os.path.join(folder, name), *size)[0] for name in names]
    arrays = [array for array in arrays if array is not None]
    if not arrays:
        raise DataError(f"no image in {folder} can be read")
    return np.stack(arrays)


def measured(folder, seed):
    """The settings read straight from the folder's files: size, format, grey, transparency, border."""
    width, height = folder_image_size(folder)
    names = image_names(folder)[:200]
    formats, grey, transparent = [], [], []
    for name in names:
        with Image.open(os.path.join(folder, name)) as image:
            formats.append(image.format)
            rgba = np.asarray(image.convert("RGBA"))
        transparent.append(bool((rgba[..., 3] == 0).mean() > 0.2))
        grey.append(bool((rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all()))
    settings = {"image_width": width, "image_height": height,
                "image_format": "png" if formats.count("PNG") > len(formats) / 2 else "jpg",
                "grey": bool(sum(grey) > 0.9 * len(grey)),
                "transparent": bool(sum(transparent) > 0.5 * len(transparent))}
    if settings["transparent"]:
        settings.update({"image_format": "png", "background_min": 255, "background_max": 255,
                         "background_gradient": (0.0, 0.0), "smooth": False})
    settings.update(border(real_images(folder, (width, height), 60, seed)))
    return settings


def border(images):
    """border_width and border_color when the outermost pixels of every image share one colour that the
    pixels inside them do not."""
    ring = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)  # (N, L, 3)
    inner = np.concatenate([images[:, 2], images[:, -3], images[:, :, 2], images[:, :, -3]], axis=1)
    colour = np.median(ring.reshape(-1, 3), axis=0)
    steady = np.abs(ring - colour).max(axis=-1).mean() < 12
    differs = np.abs(np.median(inner.reshape(-1, 3), axis=0) - colour).max() > 24
    if not (steady and differs):
        return {"border_width": 0}
    return {"border_width": 1, "border_color": "#{:02x}{:02x}{:02x}".format(*(int(c) for c in colour))}


def at_size(style, size, base):
    """`base` settings drawn in preset `style`, its pixel knobs scaled from its own size to `size`."""
    preset = make_parameters({"style": style})
    fy, fx = size[1] / preset.image_height, size[0] / preset.image_width
    values = {key: scaled(getattr(preset, key), fy) for key in SCALED_BY_HEIGHT}
    values.update({key: scaled(getattr(preset, key), fx) if isinstance(getattr(preset, key), tuple)
                   else round(getattr(preset, key) * fx, 2) for key in SCALED_BY_WIDTH})
    return make_parameters({"style": style, **values, **base})


class Scorer:
    """The distance of candidate styles to the real captchas, each drawing the same fit_images captchas."""

    def __init__(self, real, params):
        self.real, self.count, self.seed = features(real), params.fit_images, params.seed
        self.scored = 0

    def images(self, params):
        """uint8 (N, H, W, 3): the candidate's captchas as they would be read back from their files."""
        generator = make_generator(params)
        arrays = [preprocess(as_saved(generator.sample(image_rng(self.seed, "fit", index))[1], params),
                             params.image_width, params.image_height) for index in range(self.count)]
        return np.stack(arrays)

    def __call__(self, params):
        """The candidate's distance; infinity for settings that cannot draw (a StyleError)."""
        self.scored += 1
        try:
            return distance(features(self.images(params)), self.real)[0]
        except StyleError:
            return math.inf


def nearest_presets(scorer, size, base, names=()):
    """[(distance, preset name, its Parameters)] of the STARTS text styles closest to the real captchas, of
    `names` (empty: every one of TEXT_STYLES)."""
    scored = []
    for style in tqdm(list(names or TEXT_STYLES), desc="presets", leave=False):
        try:
            candidate = at_size(style, size, base)
        except (StyleError, ProjectError):
            continue
        scored.append((scorer(candidate), style, candidate))
    scored = sorted((entry for entry in scored if math.isfinite(entry[0])), key=lambda entry: entry[:2])
    if not scored:
        raise StyleError("no preset can draw captchas of this size, charset and length")
    return scored[:STARTS]


def search(scorer, params, score, deadline, rounds, name):
    """(distance, Parameters): coordinate search over SEARCH from `params`, until `deadline` (monotonic)."""
    tried = sum(len(values(params)) for _, values in SEARCH) * rounds
    with tqdm(total=tried, desc=f"search from {name}", unit="style") as bar:
        for _ in range(rounds):
            improved = False
            for key, values in SEARCH:
                for value in values(params):
                    bar.update(1)
                    if time.monotonic() > deadline or value == getattr(params, key):
                        continue
                    try:
                        candidate = make_parameters({key: value}, base=params)
                    except ProjectError:
                        continue
                    candidate_score = scorer(candidate)
                    if candidate_score < score * (1 - KEEP_GAIN):
                        params, score, improved = candidate, candidate_score, True
                        bar.set_postfix(distance=f"{score:.3f}", last=key)
            if not improved or time.monotonic() > deadline:
                break
    return score, params


def side_by_side(real, preset_images, fitted_images, names, path):
    """A PNG: SHOWN real captchas, the nearest preset's and the fitted style's, a row each."""
    rows = [real[:SHOWN], preset_images[:SHOWN], fitted_images[:SHOWN]]
    images = [image for row in rows for image in row]
    captions = [name for name, row in zip(names, rows) for _ in row]
    image_grid(images, captions, scale=2, columns=SHOWN).save(path)


def fit_base(folder, params):
    """The settings every candidate shares: the charset and length given, and what measured() reads."""
    return {"charset": params.charset, "captcha_length": params.captcha_length, "seed": params.seed,
            "render_jitter": (), **measured(folder, params.seed)}


def fit(folder, params):
    """(fitted Parameters, {distance figures}) for the folder's captchas."""
    deadline = time.monotonic() + params.fit_minutes * 60
    base = fit_base(folder, params)
    size = (base["image_width"], base["image_height"])
    real = real_images(folder, size, params.fit_images, params.seed)
    scorer = Scorer(real, params)
    starts = nearest_presets(scorer, size, base, params.fit_presets) + measured_start(scorer, real, base, params)
    print("nearest presets: " + ", ".join(f"{style} ({score:.3f})" for score, style, _ in starts) + "; measured: "
          + ", ".join(f"{key}={value}" for key, value in base.items() if key not in ("charset", "seed")), flush=True)
    searched = []
    for number, (start_score, preset, start) in enumerate(starts):
        # each start searches until its share of the time left, so every start gets one
        share = time.monotonic() + (deadline - time.monotonic()) / (len(starts) - number)
        searched.append((*search(scorer, start, start_score, share, params.fit_rounds, preset), preset))
    searched.sort(key=lambda entry: entry[0])
    best_score, best, best_from = searched[0]
    start_score, _, start = starts[0]
    return best, {"preset": starts[0][1], "start": start_score, "fitted": best_score, "start_params": start,
                  "fitted_from": best_from, "real": real, "scorer": scorer,
                  "candidates": candidates(searched, starts)}


def measured_start(scorer, real, base, params):
    """[(distance, MEASURED_START, Parameters)]: the `plain` preset placed by the real captchas' measured
    layout; [] when it cannot be measured (too little thick ink) or drawn, or fit_presets names the starts."""
    layout = {} if params.fit_presets else measured_layout(real, round(sum(params.length_range) / 2))
    if not layout:
        return []
    try:
        start = make_parameters({"style": "plain", **layout, **base})  # (a transparent canvas keeps its white)
    except ProjectError:
        return []
    score = scorer(start)
    return [(score, MEASURED_START, start)] if math.isfinite(score) else []


def candidates(searched, starts):
    """[(name, Parameters)]: the searches' results and their starts in turn, each kind closest first (the
    fit, the nearest preset, the next search, the next preset...), no style twice; the search from the
    measured layout and that start are second and fourth (the start second when that search is the fit),
    whatever their distance: the distance does not see layout. A lower distance does not always train a
    model that reads the site better (docs/RESULTS.md): choose_style.py tries them."""
    found = [(preset, f"searched from {preset} ({score:.3f})", fitted) for score, fitted, preset in searched]
    presets = [(preset, f"preset {preset} ({score:.3f})", start) for score, preset, start in starts]
    pairs = [pair for both in zip(found, presets) for pair in both]  # (the start's name, the candidate's, style)
    measured = [pair for pair in pairs[1:] if pair[0] == MEASURED_START]
    others = [pair for pair in pairs[1:] if pair[0] != MEASURED_START]
    ordered, seen = [], []
    for _, name, style in pairs[:1] + measured[:1] + others[:1] + measured[1:] + others[1:]:
        if drawing_settings(style) not in seen:
            seen.append(drawing_settings(style))
            ordered.append((name, style))
    return ordered


def write_candidates(path, figures, count):
    """The first `count` candidates' style files beside the fit file: <stem>.candidate<k>.json, k from 1."""
    stem = os.path.splitext(path)[0]
    for number, (name, style) in enumerate(figures["candidates"][:count], 1):
        atomic_write(f"{stem}.candidate{number}.json", json.dumps(drawing_settings(style), indent=1, sort_keys=True))
        print(f"candidate {number}: {name}: {stem}.candidate{number}.json")


def main(argv=None):
    params, folders = parse_args(argv, doc=__doc__, positional=True, script=__file__)
    if len(folders) != 1:
        fail("give one folder of the site's captchas: python fit_style.py my_site/ --charset=... --captcha_length=N")
    unknown = [name for name in params.fit_presets if name not in TEXT_STYLES]
    if unknown:
        fail(f"--fit_presets names no text style: {', '.join(unknown)} (choose from {', '.join(TEXT_STYLES)})")
    folder = folders[0].rstrip("/") or folders[0]
    if params.fit_images < 10 or params.fit_minutes <= 0 or params.fit_rounds < 1 or params.fit_candidates < 0:
        fail("fit_images must be at least 10, fit_minutes above 0, fit_rounds at least 1 and fit_candidates not "
             "below 0")
    started = time.monotonic()
    fitted, figures = fit(folder, params)
    path = params.fit_file or f"{folder}.style.json"
    atomic_write(path, json.dumps(drawing_settings(fitted), indent=1, sort_keys=True))
    write_candidates(path, figures, params.fit_candidates)
    picture = os.path.splitext(path)[0] + ".png"
    scorer = figures["scorer"]
    side_by_side(figures["real"], scorer.images(figures["start_params"]), scorer.images(fitted),
                 ["real", f"preset {figures['preset']}", "fitted"], picture)
    print(f"fitted {folder} in {(time.monotonic() - started) / 60:.1f} min ({scorer.scored} styles scored): distance "
          f"{figures['start']:.3f} (nearest preset {figures['preset']}) -> {figures['fitted']:.3f} (searched from "
          f"{figures['fitted_from']}); style file "
          f"{path}, side by side {picture}")


if __name__ == "__main__":
    run_main(main)
