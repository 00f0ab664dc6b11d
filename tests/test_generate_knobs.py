"""The renderer knobs (filters, edges, glyph shape, spacing, jitter): each changes what it says, generation
stays deterministic, bad values are one-line StyleErrors; the seed style draws labels as the original did;
bench_style.py reports."""
import os
import random
import re

import numpy as np
import pytest

from custom_captcha_image import JITTER, StyledCaptcha, StyleError, layer_rotate, make_generator, warp_glyph
from PIL import Image
from generate_captcha import SETTINGS_FILE, check_settings, generate_split
from parameters import DIGITS, DrawSettings, Parameters, make_parameters

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# Black upright glyphs on white, side by side from a margin, nothing else: ink is easy to measure.
PLAIN = {"style": "seed_v1", "render_jitter": (), "noise_dots": 0, "noise_curves": 0, "smooth": False,
         "solid_text": True, "text_color_min": 0, "text_color_max": 0, "background_min": 255, "rotation": 0.0,
         "warp_x": (0.0, 0.0), "warp_y": (0.0, 0.0), "stretch_glyphs": False, "space_probability": 0.0,
         "image_width": 120, "image_height": 40, "font_sizes": (24,), "fonts": (DEJAVU,),
         "char_spacing": (2.0, 2.0), "left_margin": (10.0, 10.0)}


def grey(overrides, text="aB3x", seed=5):
    style = DrawSettings.of(make_parameters({**PLAIN, **overrides}))
    return np.asarray(StyledCaptcha(style).render(text, random.Random(seed)).convert("L"), dtype=np.float32)


def ink(overrides, text="aB3x", seed=5):
    return grey(overrides, text, seed) < 128


def columns(mask):
    found = np.nonzero(mask.any(axis=0))[0]
    return found.min(), found.max()


def test_plain_text_sits_inside_the_image():
    plain = ink({})
    assert 150 < plain.sum() < 1500
    assert not (plain[0].any() or plain[-1].any() or plain[:, 0].any() or plain[:, -1].any())


def test_stroke_weight_thickens_and_thins():
    base = ink({}).sum()
    assert ink({"stroke_weight": (1.0, 1.0)}).sum() > 1.4 * base
    half = ink({"stroke_weight": (0.5, 0.5)}).sum()
    assert base < half < ink({"stroke_weight": (1.0, 1.0)}).sum()
    assert ink({"stroke_weight": (-0.6, -0.6)}).sum() < 0.8 * base


def test_glyph_width_widens_the_text():
    left, right = columns(ink({}))
    wide_left, wide_right = columns(ink({"glyph_width": (1.5, 1.5)}))
    assert abs(wide_left - left) <= 2
    assert wide_right - wide_left > 1.3 * (right - left)
    assert ink({"glyph_width": (1.5, 1.5)}).sum() > 1.2 * ink({}).sum()


def test_spacing_follows_glyph_widths_from_the_left_margin():
    narrow = columns(ink({}, text="1111"))
    wide = columns(ink({}, text="WWWW"))
    assert narrow[1] - narrow[0] < 0.7 * (wide[1] - wide[0])  # no fixed pitch: narrow glyphs take less room
    assert abs(narrow[0] - wide[0]) <= 3 and 10 <= wide[0] <= 14  # both rows start at the left margin
    spread = columns(ink({"char_spacing": (8.0, 8.0), "image_width": 200}, text="WWWW"))
    assert spread[1] - spread[0] >= (wide[1] - wide[0]) + 3 * 6  # three gaps, each 6 pixels wider
    moved = columns(ink({"left_margin": (30.0, 30.0)}, text="WWWW"))
    assert moved[0] - wide[0] == 20


def glyph_tops(mask):
    """Top ink row of each run of inked columns (one per glyph when glyphs do not touch)."""
    inked = mask.any(axis=0)
    tops, start = [], None
    for x, on in enumerate(np.append(inked, False)):
        if on and start is None:
            start = x
        elif not on and start is not None:
            tops.append(np.nonzero(mask[:, start:x].any(axis=1))[0].min())
            start = None
    return tops


def test_vertical_jitter_moves_each_glyph():
    base = {"char_spacing": (6.0, 6.0)}
    flat = glyph_tops(ink(base, text="HHHH"))
    assert len(flat) == 4 and len(set(flat)) == 1
    spreads = [np.ptp(glyph_tops(ink({**base, "char_jitter_y": 5.0}, text="HHHH", seed=seed))) for seed in range(6)]
    assert min(spreads) >= 0 and np.mean(spreads) >= 3


def touches_border(mask):
    return mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()


def test_off_edge_runs_text_off_a_border():
    assert not any(touches_border(ink({}, seed=seed)) for seed in range(8))
    edges = [ink({"off_edge": 1.0}, seed=seed) for seed in range(8)]
    assert all(touches_border(mask) for mask in edges)
    sides = {(bool(m[0].any()), bool(m[-1].any()), bool(m[:, 0].any()), bool(m[:, -1].any())) for m in edges}
    assert len(sides) >= 2  # not always the same edge


@pytest.mark.parametrize("knob", [{"elastic": (2.0, 2.0)}, {"ragged": (1.5, 1.5)}])
def test_elastic_and_ragged_change_shapes_but_keep_the_ink(knob):
    for seed in range(3):
        plain, shaped = ink({}, seed=seed), ink(knob, seed=seed)
        assert (plain != shaped).sum() > 40
        assert 0.75 < shaped.sum() / plain.sum() < 1.3
        assert np.abs(np.array(columns(shaped)) - np.array(columns(plain))).max() <= 4


def test_ragged_edges_fray_the_stroke_outline():
    bold = {"fonts": (DEJAVU.replace(".ttf", "-Bold.ttf"),), "font_sizes": (36,), "image_width": 200,
            "image_height": 50}
    plain, ragged = ink(bold), ink({**bold, "ragged": (2.0, 2.0)})

    def outline(mask):  # ink pixels with a non-ink 4-neighbour
        padded = np.pad(mask, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        return (mask & ~inner).sum()
    assert outline(ragged) > 1.4 * outline(plain)
    assert 0.9 < ragged.sum() / plain.sum() < 1.1


def test_dark_edges_make_translucent_strokes_bolder_and_darker():
    translucent = {"solid_text": False, "text_color_min": 90, "text_color_max": 90, "background_min": 250,
                   "background_max": 250, "ink_opacity_floor": 0.0, "rotation": 8.0}
    plain, dark = grey(translucent), grey({**translucent, "dark_edges": True})
    assert (dark < 200).sum() > 1.1 * (plain < 200).sum()
    assert dark.min() <= plain.min()


def test_background_gradient_darkens_the_left():
    image = grey({"background_gradient": (60.0, 60.0), "background_min": 250, "background_max": 250})
    assert 245 <= image[:, -1].mean() <= 250 and 185 <= image[:, 0].mean() <= 195


def test_polylines_and_grey():
    params = {"noise_polylines": 1, "noise_polyline_width": (3, 3)}
    assert (grey(params) < 128).sum() > ink({}).sum() + 60
    colour = make_parameters({"style": "seed", "grey": True})
    image = np.asarray(StyledCaptcha(DrawSettings.of(colour)).render("aB3x", random.Random(1)))
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])


@pytest.mark.parametrize("family", JITTER)
def test_each_jitter_family_changes_images_deterministically(family):
    params = make_parameters({"style": "seed", "render_jitter": (family,)})
    off = make_parameters({"style": "seed", "render_jitter": ()})
    seeds = [f"jitter:{i}" for i in range(8)]
    first = [np.asarray(StyledCaptcha(DrawSettings.of(params)).render("aB3x", random.Random(seed))) for seed in seeds]
    again = [np.asarray(StyledCaptcha(DrawSettings.of(params)).render("aB3x", random.Random(seed))) for seed in seeds]
    plain = [np.asarray(StyledCaptcha(DrawSettings.of(off)).render("aB3x", random.Random(seed))) for seed in seeds]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert sum(not np.array_equal(a, b) for a, b in zip(first, plain)) >= 4  # blur and jpeg leave some as drawn


def test_default_jitter_names_every_family():
    assert set(Parameters().render_jitter) == set(JITTER)


def seed_glyph_errors(passes):
    """Per glyph of tests/data/pillow6_glyphs.npz (drawn by Pillow 6.2.2 as the original generator drew
    them): (mean absolute difference, pixels off by more than a quarter) of the seed style's drawing."""
    reference = np.load(os.path.join(os.path.dirname(__file__), "data", "pillow6_glyphs.npz"))
    errors = []
    for index, (code, size, angle, x1, y1, x2, y2, width, height) in enumerate(reference["cases"]):
        generator = StyledCaptcha(DrawSettings.of(make_parameters({"style": "seed", "font_sizes": (int(size),)})))
        mask, box_width, box_height, _ = generator._glyph(0, chr(int(code)))
        assert (box_width, box_height) == (width, height)  # Pillow < 8's textsize box
        mask = warp_glyph(layer_rotate(mask, angle), (box_width, box_height), (int(x1), int(y1), int(x2), int(y2)),
                          Image.Resampling.NEAREST, passes)
        difference = np.abs(np.asarray(mask, dtype=np.float32) - reference[f"glyph{index}"])
        errors.append((difference.mean(), int((difference > 64).sum())))
    return errors


def test_seed_glyphs_are_drawn_as_pillow_6_drew_them():
    assert make_parameters({"style": "seed"}).glyph_passes == 2
    faithful = seed_glyph_errors(passes=2)
    assert max(mean for mean, _ in faithful) < 3 and sum(off for _, off in faithful) <= 3
    one_pass = seed_glyph_errors(passes=1)  # the same warp in one resampling: other pixels
    assert np.mean([mean for mean, _ in one_pass]) > 5 and sum(off for _, off in one_pass) > 100


@pytest.mark.slow
def test_seed_labels_draw_digits_a_third_of_the_time():
    def digit_share(overrides):
        params = make_parameters({"render_jitter": (), **overrides})
        generator = make_generator(params)
        labels = "".join(generator.sample(random.Random(i))[0] for i in range(600))
        return sum(c in DIGITS for c in labels) / len(labels)
    assert 0.29 < digit_share({}) < 0.38  # seed: a digit, lower- or upper-case letter with 1/3 chance each
    assert 0.12 < digit_share({"style": "seed_v1"}) < 0.2  # uniform over 62 characters: 10/62
    assert digit_share({"char_class_weights": (1.0, 0.0, 0.0)}) == 1.0
    assert 0.45 < digit_share({"charset": "0123456789abcdef", "char_class_weights": (1.0, 1.0, 1.0)}) < 0.55


@pytest.mark.parametrize("overrides, words", [
    ({"stroke_weight": (2.0, 1.0)}, "stroke_weight must be two values low,high"),
    ({"ragged": (1.0,)}, "ragged must be two values"),
    ({"glyph_width": (0.1, 1.0)}, "glyph_width must be two values low,high with 0.2"),
    ({"char_spacing": (3.0,)}, "char_spacing must be two values"),
    ({"char_spacing": (1.0, 2.0), "char_pitch": 14.0, "space_probability": 0.0}, "char_spacing and char_pitch"),
    ({"char_jitter_y": 30.0}, "char_jitter_y must be between"),
    ({"noise_curve_end": (0.5, 1.5)}, "noise_curve_end must be two values"),
    ({"char_class_weights": (1.0, 1.0)}, "char_class_weights must be 3 weights"),
    ({"char_class_weights": (1.0, 1.0, 1.0), "charset": "ab#"}, "the charset holds '#'"),
    ({"char_class_weights": (0.0, 0.0, 1.0), "charset": "abc"}, "no weight to a class the charset holds"),
    ({"style": "seed_v1", "background_gradient": (10.0, 20.0)}, "background_gradient needs solid_text"),
])
def test_bad_knobs_are_one_line_style_errors(tmp_path, overrides, words):
    params = make_parameters({"train_dir": str(tmp_path / "train"), "test_dir": str(tmp_path / "test"),
                              "preview_file": str(tmp_path / "p.png"), **overrides})
    with pytest.raises(StyleError, match=None) as error:
        check_settings(params)
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_bench_style_prints_statistics_beside_a_folder(tmp_path, script):
    params = make_parameters({"style": "seed", "render_jitter": (), "workers": 1})
    generate_split(params, str(tmp_path / "real"), "train", 40)
    result = script("bench/bench_style.py", "--style=seed", "--render_jitter=", "--bench_style_count=40",
                    str(tmp_path / "real"))
    rows = {line[:22].strip(): line.split()[-3:] for line in result.stdout.splitlines()[2:]
            if not line.startswith("style distance")}
    assert set(rows) >= {"ink fraction", "contrast", "ink saturation", "ink top row", "digit fraction",
                         "PNG fraction", "width"}
    assert rows["PNG fraction"] == ["1.000", "1.000", "+0.000"] and rows["width"][0] == "64.000"
    assert abs(float(rows["ink fraction"][2])) < 0.06  # the same style on both sides
    bad = script("bench/bench_style.py", str(tmp_path / "missing"), check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_style_reads_an_unlabelled_folder_without_label_statistics(tmp_path, script):
    params = make_parameters({"style": "seed", "render_jitter": (), "workers": 1})
    generate_split(params, str(tmp_path / "site"), "train", 20)
    for number, name in enumerate(sorted(n for n in os.listdir(tmp_path / "site") if n.endswith(".png"))):
        os.rename(tmp_path / "site" / name, tmp_path / "site" / f"u{number:04d}.png")  # a site's names: no labels
    result = script("bench/bench_style.py", "--style=seed", "--bench_style_count=20", str(tmp_path / "site"))
    assert "20 of its 20 file names (e.g. u0000.png) are not labels of 62 classes and 4 characters: read as " \
           "unlabelled, no label statistics" in result.stdout
    rows = {line[:22].strip(): line.split()[-3:] for line in result.stdout.splitlines()}
    assert rows["digit fraction"][1:] == ["-", "-"] and rows["label length"][1:] == ["-", "-"]
    assert rows["PNG fraction"] == ["1.000", "1.000", "+0.000"]  # the images' statistics are still compared


@pytest.mark.slow
def test_bench_style_tells_seed_from_captcha_default(tmp_path, script):
    def statistics(style, folder):
        result = script("bench/bench_style.py", f"--style={style}", "--bench_style_count=40", str(folder))
        lines = result.stdout.splitlines()
        rows = {line[:22].strip(): [float(value) for value in line.split()[-3:]]
                for line in lines[2:] if len(line.split()) >= 3 and not line.startswith("style distance")}
        rows["distance"] = float(lines[-1].split(": ")[-1])  # style_distance's, what fit_style.py minimises
        return rows

    for style in ("seed", "captcha_default"):
        generate_split(make_parameters({"style": style, "workers": 1}), str(tmp_path / style), "train", 40)
    same = statistics("seed", tmp_path / "seed")
    other = statistics("seed", tmp_path / "captcha_default")
    assert other["width"][1] == 160 and other["PNG fraction"][1] == 0  # the stock size, saved as JPEG
    for key in ("ink fraction", "sharpness", "ink top row", "digit fraction"):
        assert abs(other[key][2]) > 2 * abs(same[key][2]) + 1e-3, key  # far apart where seed meets itself
    assert other["distance"] > 3 * same["distance"]


@pytest.mark.slow
def test_bench_style_puts_a_style_file_beside_the_nearest_preset(tmp_path, script):
    params = make_parameters({"style": "seed", "render_jitter": (), "workers": 1})
    generate_split(params, str(tmp_path / "real"), "train", 40)
    style_file = tmp_path / "real" / SETTINGS_FILE  # how the folder was drawn: a perfect fit
    result = script("bench/bench_style.py", f"--style_file={style_file}", "--bench_style_count=40",
                    f"--charset={params.charset}", str(tmp_path / "real"))
    fitted = float(re.search(r"minimises\): ([\d.]+)", result.stdout).group(1))
    preset, distance = re.search(r"as fit_style.py starts\): (\w+) ([\d.]+)", result.stdout).groups()
    assert preset == "seed" and fitted <= float(distance) + 0.05
