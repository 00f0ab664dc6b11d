"""The looks of the common captcha libraries, as generator knobs: outlined (hollow) and shadowed glyphs,
glyphs drawn as dots, a box around each character, fisheye and water-ripple warps, wavy dotted lines,
branching lines, speckles, sparkles, a border and a transparent canvas. The presets of the libraries that
draw them (Kaptcha, Securimage, Gregwar/Captcha, django-simple-captcha) are in styles.py.

Every knob is off by default, and a knob that is off draws nothing and takes no random number, so a
style without them draws the same bytes as before they existed. The renderer (custom_captcha_image.py)
calls shape_glyph() for each glyph, paste_glyph_extras() beside each paste, finish() on the whole
image and transparent_canvas() last.
"""
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFilter

from setting import setting


@dataclass
class LookSettings:
    """What the common captcha libraries draw (Kaptcha, Securimage, Gregwar, simple-captcha); all off by default."""
    GROUP = "looks"
    outline_width: int = setting(0,
        "draw each glyph as its outline, this many pixels wide (0 = off): hollow letters", low=0, high=50)
    outline_fill: str = setting("", "with outline_width: colour inside the outline, a name or #rrggbb ('' = hollow)")
    shadow_offset: tuple[int, ...] = setting((0, 0),
        "each glyph's shadow, right,down pixels (0,0 = off)", low=-100, high=100)
    shadow_gray: int = setting(150, "grey level of the shadows (0-255)", low=0, high=255)
    glyph_dots: float = setting(0.0, "draw each glyph as dots this many pixels apart (0 = off)", low=0, high=100)
    glyph_dot_size: tuple[float, ...] = setting((0.8, 1.3),
        "range of the radius of glyph and line dots, min,max pixels", low=0, high=100)
    glyph_dot_jitter: float = setting(0.5, "each glyph dot moves by up to +/- this many pixels", low=0, high=100)
    char_box: int = setting(0, "line width of a box drawn around each character, pixels (0 = off)", low=0, high=50)
    char_box_padding: tuple[float, ...] = setting((2.0, 4.0),
        "range of the room between a character's ink and its box, pixels", low=0, high=1000)
    char_box_tilt: float = setting(0.0, "each box tilts by up to +/- this many degrees", low=0, high=90)
    fisheye: float = setting(0.0,
        "fisheye bulge of the whole image: 0 = off, 0.3 strong (Kaptcha's FishEyeGimpy)", low=0, high=1)
    ripple: tuple[float, ...] = setting((0.0, 0.0),
        "water-ripple warp of the whole image: amplitude, wavelength, pixels (0 = off)", low=0, high=10000)
    dotted_lines: int = setting(0, "wavy dotted lines across the image, in the text colour", low=0, high=1000)
    dotted_line_spacing: float = setting(3.0, "pixels between a dotted line's dots", low=0, high=100)
    branch_lines: int = setting(0, "random branching lines across the text (Securimage's lines)", low=0, high=1000)
    branch_line_width: tuple[int, ...] = setting((1, 2),
        "range of branching line widths, min,max pixels", low=0, high=100)
    branch_depth: int = setting(2, "times each branching line forks", low=0, high=8)
    speckles: int = setting(0, "one-pixel specks in the text colour, anywhere", low=0, high=10 ** 5)
    sparkles: int = setting(0,
        "small filled circles (sparkles, bubbles) in tints of the text colour", low=0, high=10000)
    sparkle_size: tuple[float, ...] = setting((1.0, 3.0), "range of sparkle radius, min,max pixels", low=0, high=100)
    border_width: int = setting(0, "a border around the image, pixels (0 = off)", low=0, high=500)
    border_color: str = setting("black", "border colour, a name or #rrggbb")
    transparent: bool = setting(False,
        "the canvas stays transparent where nothing is drawn (saved as a PNG with alpha); reading composites it onto "
        "white")


def check_looks(params, fail):
    """The look settings that must agree with each other (each one's own range is checked when it is read);
    `fail(message)` raises the style's one-line error."""
    for name in ("glyph_dot_size", "char_box_padding", "sparkle_size", "branch_line_width"):
        pair = getattr(params, name)
        if len(pair) != 2 or pair[0] > pair[1]:  # each value's own range is checked when read
            fail(f"{name} must be a range min,max with 0 <= min <= max, got {','.join(map(str, pair))}")
    if len(params.shadow_offset) != 2 or len(params.ripple) != 2:
        fail("shadow_offset and ripple each take two numbers (right,down and amplitude,wavelength)")
    if params.ripple[0] and params.ripple[1] <= 0:
        fail(f"ripple's wavelength must be above 0 pixels, got {params.ripple[1]}")
    if params.dotted_lines and params.dotted_line_spacing <= 0:
        fail("dotted_line_spacing must be above 0 pixels")
    if params.transparent and params.image_format != "png":
        fail("transparent needs --image_format=png (JPEG has no alpha)")
    for name in ("outline_fill", "border_color"):
        if getattr(params, name):
            try:
                ImageColor.getrgb(getattr(params, name))
            except ValueError:
                fail(f"{name} {getattr(params, name)!r} is not a colour name or #rrggbb")


def glyph_room(params):
    """Pixels of room a glyph mask needs around its ink for what shape_glyph() grows past it."""
    dots = params.glyph_dot_size[1] + params.glyph_dot_jitter if params.glyph_dots else 0.0
    return params.outline_width + dots


def shape_glyph(mask, rng, params):
    """(ink mask, fill mask or None) of one glyph mask ('L'): outlined (its ink the ring, its fill the glyph),
    then drawn as dots (the ring's dots, for an outlined glyph)."""
    fill = None
    if params.outline_width:
        mask, fill = outline(mask, params.outline_width), mask
    if params.glyph_dots:
        mask = dotted_glyph(mask, rng, params)
    return mask, fill


def dotted_glyph(mask, rng, params):
    """The glyph redrawn as dots on a grid glyph_dots apart, each jittered, where its ink is."""
    coverage = np.asarray(mask)
    dotted = Image.new("L", mask.size)
    draw = ImageDraw.Draw(dotted)
    step, jitter = params.glyph_dots, params.glyph_dot_jitter
    for y in np.arange(step / 2, mask.height, step):
        for x in np.arange(step / 2, mask.width, step):
            if coverage[int(y), int(x)] < 128:
                continue
            cx, cy = x + rng.uniform(-jitter, jitter), y + rng.uniform(-jitter, jitter)
            radius = rng.uniform(*params.glyph_dot_size)
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    return dotted


def outline(mask, width):
    """The ring of `width` pixels around the ink of `mask`: ink on the outline, none inside."""
    grown = mask.filter(ImageFilter.MaxFilter(2 * width + 1))
    return ImageChops.subtract(grown, mask)


def paste_glyph_extras(image, mask, fill, position, params):
    """What is drawn under a glyph before it is pasted at `position`: its shadow, the fill inside its outline."""
    if any(params.shadow_offset):
        shape = ImageChops.lighter(mask, fill) if fill is not None else mask
        dx, dy = params.shadow_offset
        image.paste((params.shadow_gray,) * 3, (position[0] + dx, position[1] + dy), shape)
    if fill is not None and params.outline_fill:
        image.paste(ImageColor.getrgb(params.outline_fill)[:3], position, fill)


def draw_char_box(image, mask, position, color, rng, params):
    """A box (tilted by up to char_box_tilt) around the ink of one glyph mask pasted at `position`."""
    box = mask.getbbox()
    if box is None:
        return
    pad = rng.uniform(*params.char_box_padding)
    left, top = position[0] + box[0] - pad, position[1] + box[1] - pad
    right, bottom = position[0] + box[2] + pad, position[1] + box[3] + pad
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    angle = math.radians(rng.uniform(-params.char_box_tilt, params.char_box_tilt))
    cos, sin = math.cos(angle), math.sin(angle)
    corners = [(centre_x + (x - centre_x) * cos - (y - centre_y) * sin, centre_y + (x - centre_x) * sin
                + (y - centre_y) * cos) for x, y in ((left, top), (right, top), (right, bottom), (left, bottom))]
    ImageDraw.Draw(image).line(corners + corners[:1], fill=color, width=params.char_box, joint="curve")


def finish(image, rng, params, color):
    """The whole-image looks on an RGB image: warps, then lines, specks, sparkles and the border."""
    if params.fisheye:
        image = fisheye(image, params.fisheye)
    if params.ripple[0]:
        image = ripple(image, *params.ripple, rng)
    draw = ImageDraw.Draw(image)
    for _ in range(params.dotted_lines):
        dotted_line(draw, image.size, rng, params, color)
    for _ in range(params.branch_lines):
        branching_line(draw, image.size, rng, params, color)
    for _ in range(params.speckles):
        draw.point((rng.randrange(image.width), rng.randrange(image.height)), fill=color)
    for _ in range(params.sparkles):
        sparkle(draw, image.size, rng, params, color)
    if params.border_width:
        draw.rectangle((0, 0, image.width - 1, image.height - 1), outline=ImageColor.getrgb(params.border_color)[:3],
                       width=params.border_width)
    return image


def remap(image, source_x, source_y):
    """`image` sampled at float pixel coordinates (H, W) each, bilinearly; edges repeat."""
    pixels = np.asarray(image, dtype=np.float32)  # (H, W, 3)
    height, width = pixels.shape[:2]
    x = np.clip(source_x, 0, width - 1.001)
    y = np.clip(source_y, 0, height - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x0 + 1] * fx
    bottom = pixels[y0 + 1, x0] * (1 - fx) + pixels[y0 + 1, x0 + 1] * fx
    return Image.fromarray(np.rint(top * (1 - fy) + bottom * fy).astype(np.uint8), "RGB")


def fisheye(image, strength):
    """A bulge about the centre: each pixel within the inscribed ellipse reads from nearer the centre."""
    height, width = image.height, image.width
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    dx, dy = (x - cx) / max(cx, 1), (y - cy) / max(cy, 1)
    radius = np.sqrt(dx * dx + dy * dy)
    scale = np.where(radius < 1, 1 - strength * (1 - radius) ** 2, 1.0)
    return remap(image, cx + dx * scale * cx, cy + dy * scale * cy)


def ripple(image, amplitude, wavelength, rng):
    """Water ripples: rows shift sideways and columns up and down along sine waves of random phase."""
    phase_x, phase_y = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:image.height, 0:image.width].astype(np.float32)
    source_x = x + amplitude * np.sin(2 * math.pi * y / wavelength + phase_x)
    source_y = y + amplitude / 2 * np.sin(2 * math.pi * x / wavelength + phase_y)
    return remap(image, source_x, source_y)


def dotted_line(draw, size, rng, params, color):
    """A wavy line of dots from the left edge to the right, about the middle rows."""
    width, height = size
    middle, amplitude = rng.uniform(0.3, 0.8) * height, rng.uniform(0.05, 0.2) * height
    wavelength, phase = rng.uniform(0.4, 1.2) * width, rng.uniform(0, 2 * math.pi)
    for x in np.arange(0, width, params.dotted_line_spacing):
        y = middle + amplitude * math.sin(2 * math.pi * x / wavelength + phase)
        radius = rng.uniform(*params.glyph_dot_size)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)


def branching_line(draw, size, rng, params, color):
    """A line that wanders from near the left edge to the right and forks branch_depth times."""
    width, height = size
    stack = [((rng.uniform(0, 0.2) * width, rng.uniform(0.1, 0.9) * height), rng.uniform(-0.6, 0.6), 0)]
    while stack:
        (x, y), heading, depth = stack.pop()
        points = [(x, y)]
        for _ in range(rng.randint(2, 4)):
            heading += rng.uniform(-0.7, 0.7)
            step = rng.uniform(0.08, 0.2) * width
            x, y = x + step * math.cos(heading), min(height, max(0.0, y + step * math.sin(heading)))
            points.append((x, y))
        draw.line(points, fill=color, width=rng.randint(*params.branch_line_width), joint="curve")
        if depth < params.branch_depth:
            stack += [((x, y), heading + turn, depth + 1) for turn in (-0.6, 0.6)]


def sparkle(draw, size, rng, params, color):
    """A small filled circle anywhere, in a tint of `color` (mixed with white by a random share)."""
    x, y, radius = rng.uniform(0, size[0]), rng.uniform(0, size[1]), rng.uniform(*params.sparkle_size)
    tint = rng.uniform(0.0, 0.7)
    fill = tuple(round(c + tint * (255 - c)) for c in color)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)


def transparent_canvas(image, background):
    """RGBA: `image` opaque where it differs from the flat `background` colour, transparent where it shows
    the background (which stays underneath, so a viewer without alpha sees the same picture)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    drawn = np.abs(pixels - np.array(background, dtype=np.int16)).max(axis=-1) > 0
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray((drawn * 255).astype(np.uint8), "L"))
    return rgba
