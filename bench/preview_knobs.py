"""A PNG grid of what each glyph knob, library look (looks.py) and render_jitter family does to a style: one
row per knob, the same labels and random draws in every row, the first row as the style draws it without
jitter.

    python bench/preview_knobs.py                                   # the seed style -> knobs.png
    python bench/preview_knobs.py --style=captcha_images_v2 --preview_file=v2_knobs.png

The knob values shown are strong on purpose, so each effect is plain to see.
"""
import os
import random
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from custom_captcha_image import JITTER, StyleError, make_generator  # noqa: E402
from command_line import fail, parse_args, run_main  # noqa: E402
from parameters import make_parameters  # noqa: E402

KNOBS = (
    ("as drawn", {}),
    ("stroke_weight 0.8", {"stroke_weight": (0.8, 0.8)}),
    ("stroke_weight -0.4", {"stroke_weight": (-0.4, -0.4)}),
    ("elastic 2", {"elastic": (2.0, 2.0)}),
    ("ragged 1.5", {"ragged": (1.5, 1.5)}),
    ("glyph_width 1.4", {"glyph_width": (1.4, 1.4)}),
    ("char_spacing 0..3, left_margin 2", {"char_spacing": (0.0, 3.0), "left_margin": (2.0, 2.0), "char_pitch": 0.0}),
    ("char_jitter_y 4", {"char_jitter_y": 4.0}),
    ("off_edge 1", {"off_edge": 1.0}),
    ("dark_edges", {"dark_edges": True, "solid_text": False}),
    ("font_variety 1", {"font_variety": 1.0}),
    # the library looks (looks.py)
    ("outline_width 1 (hollow)", {"outline_width": 1}),
    ("outline_width 1, outline_fill white", {"outline_width": 1, "outline_fill": "white", "solid_text": True,
                                             "background_gradient": (60.0, 60.0)}),
    ("shadow_offset 2,2", {"shadow_offset": (2, 2)}),
    ("glyph_dots 1.5", {"glyph_dots": 1.5, "glyph_dot_size": (0.5, 0.8)}),
    ("char_box 1, tilt 10", {"char_box": 1, "char_box_padding": (1.0, 2.0), "char_box_tilt": 10.0}),
    ("fisheye 0.4", {"fisheye": 0.4}),
    ("ripple 1.5,16", {"ripple": (1.5, 16.0)}),
    ("dotted_lines 1", {"dotted_lines": 1, "dotted_line_spacing": 2.0, "glyph_dot_size": (0.5, 0.8)}),
    ("branch_lines 2", {"branch_lines": 2, "branch_line_width": (1, 1)}),
    ("speckles 60", {"speckles": 60}),
    ("sparkles 8", {"sparkles": 8, "sparkle_size": (0.8, 2.0)}),
    ("border_width 1, green", {"border_width": 1, "border_color": "green"}),
    ("transparent (on grey)", {"transparent": True, "image_format": "png", "smooth": False}),
) + tuple((f"render_jitter {name}", {"render_jitter": (name,)}) for name in JITTER)
COLUMNS = 6
SCALE = 3
LABEL_WIDTH = 200


def knob_row(params, overrides):
    """COLUMNS images of the style with `overrides` (jitter off unless the row names a family)."""
    generator = make_generator(make_parameters({"render_jitter": (), **overrides}, base=params))
    return [generator.sample(random.Random(f"{params.seed}:knobs:{index}"))[1] for index in range(COLUMNS)]


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    if params.preview_file == "data/captcha/preview.png":
        params = make_parameters({"preview_file": "knobs.png"}, base=params)
    try:
        rows = [(name, knob_row(params, overrides)) for name, overrides in KNOBS]
    except StyleError as error:
        fail(str(error))
    cell_w, cell_h = params.image_width * SCALE + 4, params.image_height * SCALE + 4
    grid = Image.new("RGB", (LABEL_WIDTH + COLUMNS * cell_w, len(rows) * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    for row, (name, images) in enumerate(rows):
        draw.text((4, row * cell_h + cell_h // 2 - 6), name, fill="black")
        for column, image in enumerate(images):
            if image.mode == "RGBA":  # a transparent canvas, shown on grey so its transparency is seen
                image = Image.alpha_composite(Image.new("RGBA", image.size, (160, 160, 160, 255)), image).convert("RGB")
            enlarged = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)
            grid.paste(enlarged, (LABEL_WIDTH + column * cell_w, row * cell_h))
    os.makedirs(os.path.dirname(os.path.abspath(params.preview_file)), exist_ok=True)
    grid.save(params.preview_file)
    print(f"knob preview grid: {params.preview_file}")


if __name__ == "__main__":
    run_main(main)
