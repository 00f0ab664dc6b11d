"""The library looks (looks.py): off, every style draws its old bytes; on, each draws what it says."""
import hashlib
import io
import json
import os
import random

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from custom_captcha_image import StyleError, make_generator, resolve_fonts
from generate_captcha import drawing_settings, encode, make_sample
from images import preprocess
from looks import LookSettings, outline
from parameters import make_parameters
from styles import LIBRARY_STYLES, STYLES

# A plain look to draw each knob on: solid black text on a flat white canvas, nothing else.
PLAIN = {"style": "seed_v1", "render_jitter": (), "solid_text": True, "text_color_min": 0, "text_color_max": 0,
         "background_min": 255, "background_max": 255, "noise_curves": 0, "noise_dots": 0, "smooth": False,
         "image_width": 120, "image_height": 48, "font_sizes": (36,), "fonts": ("DejaVu Sans:bold",), "rotation": 0.0,
         "warp_x": (0.0, 0.0),
         "warp_y": (0.0, 0.0), "space_probability": 0.0, "stretch_glyphs": False, "char_spacing": (6.0, 6.0),
         "left_margin": (8.0, 8.0), "captcha_length": 3, "charset": "HOX", "image_format": "png"}


def drawn(overrides=None, index=0, **more):
    """(label, uint8 array (H, W, 3) or (H, W, 4)) of the plain look with `overrides`."""
    params = make_parameters({**PLAIN, **(overrides or {}), **more})
    label, image = make_sample(make_generator(params), params, "looks", index)
    return label, np.asarray(image)


def ink(pixels):
    """bool (H, W): pixels darker than the white canvas."""
    return pixels[..., :3].min(axis=-1) < 250


def test_every_style_draws_its_old_bytes_with_the_looks_off():
    """Image bytes of every style that existed before looks.py, as it drew them (tests/data/style_pixels.json)."""
    with open(os.path.join(ROOT, "tests", "data", "style_pixels.json")) as handle:
        recorded = json.load(handle)
    for style, digest in recorded.items():
        params = make_parameters({"style": style})
        assert all(getattr(params, key) == value for key, value in vars(LookSettings()).items()), style
        generator, hashed = make_generator(params), hashlib.sha256()
        for index in range(8):
            label, image = make_sample(generator, params, "hash", index)
            hashed.update(label.encode())
            hashed.update(image.tobytes())
        assert hashed.hexdigest() == digest, style


def test_hollow_glyphs_have_ink_on_their_outline_only():
    _, plain = drawn()
    _, hollow = drawn(outline_width=1)
    solid, interior = ink(plain), plain.max(axis=-1) == 0  # fully inked: inside the strokes
    assert interior.sum() > 100 and not ink(hollow)[interior].any()  # inside the strokes: the canvas shows
    assert ink(hollow).sum() > 0.5 * solid.sum()  # and a ring around every stroke
    _, filled = drawn(outline_width=1, outline_fill="red")
    assert (filled[interior] == (255, 0, 0)).all()
    mask = Image.new("L", (20, 20))
    mask.paste(255, (5, 5, 15, 15))
    ring = np.asarray(outline(mask, 2))
    assert ring[5:15, 5:15].max() == 0 and ring[3, 10] == 255 and ring[0, 10] == 0


def grown(mask, pixels):
    """bool mask grown by `pixels` in every direction (8-neighbourhood)."""
    out = mask.copy()
    for _ in range(pixels):
        out = out | np.roll(out, 1, 0) | np.roll(out, -1, 0)
        out = out | np.roll(out, 1, 1) | np.roll(out, -1, 1)
    return out


def test_boxes_enclose_each_glyph():
    _, plain = drawn()
    _, boxed = drawn(char_box=1, char_box_padding=(2.0, 2.0))
    box = ink(boxed) & ~ink(plain)
    columns = np.flatnonzero(ink(plain).any(axis=0))
    groups = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)  # each glyph's columns
    assert len(groups) == 3
    for group in groups:
        rows = np.flatnonzero(ink(plain)[:, group].any(axis=1))
        left, right, top, bottom = group[0], group[-1], rows[0], rows[-1]
        inside = box[top:bottom + 1, left:right + 1]
        assert not inside.any()  # the box leaves the glyph alone
        assert box[top:bottom + 1, left - 5:left].any(axis=1).all()  # a side left of every ink row
        assert box[top:bottom + 1, right + 1:right + 6].any(axis=1).all()  # and right of it
        assert box[top - 5:top, left:right + 1].any(axis=0).all()  # a top over every ink column
        assert box[bottom + 1:bottom + 6, left:right + 1].any(axis=0).all()  # and a bottom under it


def test_dotted_glyphs_are_dots_where_the_ink_was():
    _, plain = drawn()
    _, dotted = drawn(glyph_dots=3.0, glyph_dot_size=(0.6, 0.6), glyph_dot_jitter=0.0)
    assert 0 < ink(dotted).sum() < 0.7 * ink(plain).sum() and (ink(dotted) <= grown(ink(plain), 1)).all()


@pytest.mark.parametrize("knob, value", [("fisheye", 0.4), ("ripple", (2.0, 16.0)), ("dotted_lines", 1),
                                         ("branch_lines", 2), ("speckles", 40), ("sparkles", 6),
                                         ("shadow_offset", (2, 2))])
def test_each_whole_image_look_changes_the_image(knob, value):
    _, plain = drawn()
    _, looked = drawn({knob: value})
    assert (plain != looked).any(axis=-1).sum() > 20
    if knob in ("dotted_lines", "branch_lines", "speckles", "sparkles"):
        assert ink(looked).sum() > ink(plain).sum()  # drawn over the image: more ink
    if knob == "shadow_offset":
        grey = (looked[..., 0] == 150) & ~ink(plain)
        assert grey.sum() > 20  # the shadow, beside the glyphs in grey


def test_border_and_transparent_canvas(tmp_path):
    _, bordered = drawn(border_width=2, border_color="green")
    assert (bordered[0, :] == (0, 128, 0)).all() and (bordered[:, -2] == (0, 128, 0)).all()
    params = make_parameters({**PLAIN, "transparent": True})
    _, image = make_sample(make_generator(params), params, "looks", 0)
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert 0 < (alpha == 255).mean() < 0.5 and set(np.unique(alpha)) == {0, 255}
    saved = Image.open(io.BytesIO(encode(image, params)))
    composite = Image.alpha_composite(Image.new("RGBA", saved.size, "white"), saved.convert("RGBA")).convert("RGB")
    assert (preprocess(saved, 120, 48) == np.asarray(composite)).all()  # read as its composite on white
    with pytest.raises(StyleError, match="transparent needs --image_format=png"):
        make_generator(make_parameters({**PLAIN, "transparent": True, "image_format": "jpg"}))


def test_bad_look_settings_are_one_line_errors():
    for overrides, words in (({"outline_fill": "nocolour"}, "is not a colour"),
                             ({"ripple": (2.0, 0.0)}, "wavelength"),
                             ({"glyph_dot_size": (2.0, 1.0)}, "glyph_dot_size must be a range")):
        with pytest.raises(StyleError, match=words):
            make_generator(make_parameters({**PLAIN, **overrides}))


def test_fonts_are_found_by_family_through_fontconfig():
    assert resolve_fonts(("DejaVu Sans:bold",)) == ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"]
    assert resolve_fonts(("Liberation Mono",))[0].endswith("LiberationMono-Regular.ttf")
    with pytest.raises(StyleError, match=r"font family 'Nonexistent Grotesk' is not installed .*fc-list"):
        resolve_fonts(("Nonexistent Grotesk",))
    with pytest.raises(StyleError, match="DejaVu Serif:black' is not installed"):
        resolve_fonts(("DejaVu Serif:black",))


def distinct_drawings(params, draws=10):
    """How many different ink masks `draws` seeds of "OXH" in the style of `params` give."""
    generator = make_generator(params)
    return len({np.packbits(ink(np.asarray(generator.render("OXH", random.Random(seed))))).tobytes()
                for seed in range(draws)})


def test_font_variety_draws_the_characters_in_other_families():
    # the plain look has one font and nothing random: the same image each time
    assert distinct_drawings(make_parameters({**PLAIN, "font_variety": 0.0})) == 1
    # three characters, each in one of 20 families
    assert distinct_drawings(make_parameters({**PLAIN, "font_variety": 1.0})) >= 8


def test_font_variety_draws_its_families_at_many_widths():
    # One O in one of 20 families, then stretched by 0.7-1.3: the families' own O (Liberation Sans Narrow's to
    # URW Gothic's round one) span 1.6x in width, the stretch takes the span past 2.
    params = make_parameters({**PLAIN, "font_variety": 1.0, "captcha_length": 1, "charset": "O"})
    generator = make_generator(params)
    widths = [np.ptp(np.flatnonzero(ink(np.asarray(generator.render("O", random.Random(seed)))).any(axis=0))) + 1
              for seed in range(60)]
    assert max(widths) / min(widths) > 2.0


def test_a_mix_draws_its_members_with_its_font_variety(tmp_path):
    # The site pipeline generates its chosen style, a mix of style files that each say font_variety 0, with variety.
    members = []
    for number, size in enumerate((36, 30)):
        members.append(str(tmp_path / f"member{number}.json"))
        with open(members[-1], "w") as handle:
            json.dump(drawing_settings(make_parameters({**PLAIN, "font_sizes": (size,)})), handle)
    params = make_parameters({**PLAIN, "style_mix": tuple(members), "font_variety": 1.0})
    assert [member.style.font_variety for member in make_generator(params).generators] == [1.0, 1.0]
    assert distinct_drawings(params) >= 8


def test_a_missing_font_file_names_what_installs_it():
    # A style naming a font file of a package that is not installed (the styles' fonts come with make venv).
    with pytest.raises(StyleError, match=r"LiberationSans-Gone.ttf' does not exist: make fonts installs it "
                                         r"\(Debian: apt-get install fonts-liberation\)"):
        resolve_fonts(("/usr/share/fonts/truetype/liberation/LiberationSans-Gone.ttf",))


LOOKS_OF = {"kaptcha": ("ripple", "border_width"), "securimage": ("branch_lines", "speckles"), "gregwar": ("ripple",),
            "simple_captcha": (), "pku_elective": ("outline_width", "fisheye", "border_width"),
            "advrpg_digits": ("glyph_dots", "dotted_lines", "sparkles", "transparent")}


@pytest.mark.parametrize("style", sorted(LIBRARY_STYLES))
def test_each_library_preset_draws_its_look(style):
    assert style in STYLES
    params = make_parameters({"style": style})
    label, image = make_generator(params).sample(random.Random(0))
    assert image.size == (params.image_width, params.image_height) and len(label) == params.length_range[0]
    assert all(getattr(params, knob) != getattr(LookSettings(), knob) for knob in LOOKS_OF[style])
