"""Writes pillow6_glyphs.npz: glyphs drawn the way the original project's generator drew them in 2019, by
Pillow 6.2.2 itself, for tests/test_generate_knobs.py to hold the `seed` style's renderer against.

Each glyph: DroidSansMono (the captcha package's font) drawn in white on a transparent RGBA layer, cropped
to its ink, rotated (bilinear, expanded), resized to its warp frame and warped into its text box, both
nearest-neighbour (Pillow 6's defaults). The red channel is the glyph's share of the text colour.

Run it under Pillow 6.2.2, built from source in a virtual environment of its own:
    python -m venv /tmp/pillow6 && /tmp/pillow6/bin/pip install "setuptools<60" wheel "numpy<2"
    /tmp/pillow6/bin/pip install --no-build-isolation --no-binary :all: pillow==6.2.2
    /tmp/pillow6/bin/python tests/data/pillow6_glyphs.py .venv/lib/python3.*/site-packages/captcha/data/DroidSansMono.ttf
"""
import os
import random
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CHARS = "0OvVDYxX"
SIZES = (20, 22, 23)


def glyph(font, char, angle, corners):
    """(red channel of the warped glyph, its text box (width, height))."""
    width, height = ImageDraw.Draw(Image.new("RGB", (1, 1))).textsize(char, font=font)
    layer = Image.new("RGBA", (width, height))
    ImageDraw.Draw(layer).text((0, 0), char, font=font, fill=(255, 255, 255, 255))
    layer = layer.crop(layer.getbbox()).rotate(angle, Image.BILINEAR, expand=1)
    x1, y1, x2, y2 = corners
    frame_w, frame_h = width + abs(x1) + abs(x2), height + abs(y1) + abs(y2)
    layer = layer.resize((frame_w, frame_h))
    quad = (x1, y1, -x1, frame_h - y2, frame_w + x2, frame_h + y2, frame_w - x2, -y1)
    return np.asarray(layer.transform((width, height), Image.QUAD, quad))[..., 0], (width, height)


def main():
    draw = random.Random(2019)
    cases, arrays = [], {}
    for char in CHARS:
        for size in SIZES:
            font = ImageFont.truetype(sys.argv[1], size)
            angle = draw.uniform(-10, 10)
            corners = tuple(draw.randint(-3, 3) if i % 2 == 0 else draw.randint(-6, 6) for i in range(4))
            arrays[f"glyph{len(cases)}"], box = glyph(font, char, angle, corners)
            cases.append((ord(char), size, angle, *corners, *box))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pillow6_glyphs.npz")
    np.savez_compressed(out, cases=np.array(cases, dtype=np.float64), **arrays)
    print(f"{len(cases)} glyphs written to {out}")


if __name__ == "__main__":
    main()
