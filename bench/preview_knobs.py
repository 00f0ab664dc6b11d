"""A PNG grid of what each glyph knob and render_jitter family does to a style: one row per knob, the
same labels and random draws in every row, the first row as the style draws it without jitter.

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
from parameters import fail, make_parameters, parse_args, run_main  # noqa: E402

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
            enlarged = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)
            grid.paste(enlarged, (LABEL_WIDTH + column * cell_w, row * cell_h))
    os.makedirs(os.path.dirname(os.path.abspath(params.preview_file)), exist_ok=True)
    grid.save(params.preview_file)
    print(f"knob preview grid: {params.preview_file}")


if __name__ == "__main__":
    run_main(main)
