"""A styled, seedable, fast captcha generator built on the `captcha` package's ImageCaptcha.

Every knob (size, fonts, font sizes, noise curves, dots and lines, colours, rotation, warp, spacing,
smoothing, how the renderer resamples and pastes, glyph shape) comes from `parameters.py`. Randomness
comes from a `random.Random` passed in per image, so the same seed gives the same image bytes in any
process (the stock class uses `secrets`, which cannot be seeded). render_jitter varies per image what
sites' renderers vary (stroke weight, edge darkness, resampling, scale, blur, contrast, colour, JPEG),
drawn from the same random source.

    python custom_captcha_image.py aB3x               # writes sample.png in the style of parameters.py

Speed: each glyph is rasterised once per (font, character) and cached as an ink-cropped mask; an
image then costs only a rotate, one warp transform and a paste per character.
"""
import dataclasses
import functools
import glob
import io
import math
import os
import random
import shutil
import subprocess
from typing import NamedTuple

import numpy as np
from captcha.image import DEFAULT_FONTS, ImageCaptcha
from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from arithmetic import Grammar
from looks import check_looks, draw_char_box, finish, glyph_room, paste_glyph_extras, shape_glyph, transparent_canvas
from command_line import fail, parse_args, run_main
from parameters import DIGITS, LOWER, UPPER, DrawSettings, make_parameters, read_style_file
from errors import ProjectError
from styles import STYLES

FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")
# The Debian packages of the families styles name (make fonts installs them all).
FONT_PACKAGES = {"dejavu": "fonts-dejavu-core fonts-dejavu-extra", "liberation": "fonts-liberation",
                 "carlito": "fonts-crosextra-carlito", "caladea": "fonts-crosextra-caladea",
                 "free": "fonts-freefont-ttf", "nimbus": "fonts-urw-base35", "comic neue": "fonts-comic-neue"}
USER_FONT_DIR = "fonts"
# font_variety's families: each character's shape in many designs, so that a model trained on a style whose
# fonts are near a site's, but not its own, learns what makes an m an m rather than one font's m (a site
# whose m is as narrow as a monospaced one was read as n by a model of DejaVu Sans alone: docs/RESULTS.md).
VARIETY_FONTS = ("DejaVu Sans", "DejaVu Sans:bold", "DejaVu Sans Mono", "DejaVu Sans Mono:bold", "DejaVu Serif",
                 "Liberation Sans", "Liberation Sans:bold", "Liberation Sans Narrow", "Liberation Sans Narrow:bold",
                 "Liberation Serif:bold", "Liberation Mono", "Carlito", "Carlito:bold", "Caladea:bold",
                 "FreeSans:bold", "Nimbus Sans:bold", "Nimbus Mono PS:bold", "URW Gothic", "Comic Neue",
                 "Comic Neue:bold")
# ... each drawn at a width of this range times its own (condensed and extended cuts of them: a site's glyphs
# are often narrower or wider than any installed family's, and a model of one width reads a narrow m as n).
VARIETY_WIDTH = (0.7, 1.3)
# The stock class pastes glyphs through their luminance boosted by ~2x, so darker text is partly
# transparent over the background (and black text vanishes).
INK_GAIN = 1.97
RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC}
CHAR_CLASSES = (DIGITS, LOWER, UPPER)  # the classes char_class_weights weighs, in order
WEIGHT_JITTER = (-0.35, 0.35)  # render_jitter 'weight': pixels added to each side of every stroke
EDGE_JITTER = (-0.4, 0.4)  # render_jitter 'edges': log of the exponent on glyph coverage


LEVELS = np.arange(256, dtype=np.float64)  # the 8-bit values a point() table maps
SQUARED = (LEVELS * LEVELS // 255).astype(np.uint8)  # coverage m -> m^2 (0-255 as 0-1)


def mapped(mask, table):
    """An 'L' mask through a (256,) uint8 table (Image.point without its per-call list conversion)."""
    return Image.fromarray(table[np.asarray(mask)], "L")


def gamma_table(gamma, bands=1):
    """A point() table raising values (0-255 as 0-1) to `gamma`, for `bands` bands."""
    return np.rint(255 * (LEVELS / 255) ** gamma).astype(np.uint8).tolist() * bands


def stroke_weight(mask, weight):
    """A glyph mask whose strokes gain (weight > 0) or lose `weight` pixels on each side: whole pixels by
    3x3 max (min) filters, the fraction by blending with one more pass."""
    grow = ImageFilter.MaxFilter(3) if weight > 0 else ImageFilter.MinFilter(3)
    fraction, whole = math.modf(abs(weight))
    for _ in range(int(whole)):
        mask = mask.filter(grow)
    return Image.blend(mask, mask.filter(grow), fraction) if fraction else mask


def layer_rotate(mask, angle):
    """A glyph's coverage rotated as Pillow < 8 rotated text drawn on a transparent RGBA layer, given as the
    fraction of the text colour its pixels hold (the mask dark_edges pastes).

    That layer held colour x coverage m in RGB and m in alpha, and was rotated premultiplied: bilinear
    weights w over RGB x alpha, divided by the interpolated alpha. A pixel then holds the colour times
    sum(w m^2) / sum(w m): a pixel the rotation smears any full-ink pixel onto gets nearly the full colour,
    which makes strokes bolder than a plain rotation of the coverage.
    """
    squared = mapped(mask, SQUARED)
    alpha = np.asarray(mask.rotate(angle, Image.Resampling.BILINEAR, expand=True), dtype=np.float32)
    colour = np.asarray(squared.rotate(angle, Image.Resampling.BILINEAR, expand=True), dtype=np.float32)
    fraction = np.where(alpha > 0, colour * 255 / np.maximum(alpha, 1), 0)  # (h, w), 0-255
    return Image.fromarray(np.clip(fraction.round(), 0, 255).astype(np.uint8), "L")


def elastic_warp(mask, amount, rng, cells=3):
    """Parts of a glyph moved by up to `amount` pixels: each vertex of a cells x cells mesh over the mask
    moves at random and every cell follows its corners, so strokes bend and shift against each other."""
    w, h = mask.size
    xs = [w * i / cells for i in range(cells + 1)]
    ys = [h * j / cells for j in range(cells + 1)]
    moved = {(i, j): (xs[i] + rng.uniform(-amount, amount), ys[j] + rng.uniform(-amount, amount))
             for i in range(cells + 1) for j in range(cells + 1)}
    mesh = []
    for i in range(cells):
        for j in range(cells):
            box = (round(xs[i]), round(ys[j]), round(xs[i + 1]), round(ys[j + 1]))
            corners = (moved[i, j], moved[i, j + 1], moved[i + 1, j + 1], moved[i + 1, j])  # NW, SW, SE, NE
            mesh.append((box, tuple(v for corner in corners for v in corner)))
    return mask.transform(mask.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)


def warp_glyph(mask, box, corners, resample, passes=1):
    """`mask` warped into `box` (width, height) as the captcha package warps a glyph: resized to a frame
    |x1| + |x2| wider and |y1| + |y2| taller than the box, whose quad with corners moved in by `corners`
    (x1, y1, x2, y2) is then sampled into the box. passes=1 does both in one transform: the same in theory,
    but nearest-neighbour sampling once duplicates other rows and columns than sampling twice, and at 64x24
    a model trained on one look misreads the other (0 as D, v as Y)."""
    (width, height), (x1, y1, x2, y2) = box, corners
    frame_w, frame_h = width + abs(x1) + abs(x2), height + abs(y1) + abs(y2)
    if passes == 2:
        mask = mask.resize((frame_w, frame_h), resample)
    sx, sy = mask.width / frame_w, mask.height / frame_h  # frame -> mask coordinates (1 after the resize)
    quad = (x1 * sx, y1 * sy, -x1 * sx, (frame_h - y2) * sy,
            (frame_w + x2) * sx, (frame_h + y2) * sy, (frame_w - x2) * sx, -y1 * sy)
    return mask.transform((width, height), Image.Transform.QUAD, quad, resample)


def ragged_edges(mask, amount, rng, run=2):
    """Each pixel of a glyph mask taken from a random pixel up to `amount` away in x and y, the same offset
    along short horizontal runs: stroke edges fray into streaks while the inside of strokes stays whole."""
    pixels = np.asarray(mask)  # (h, w) coverage
    h, w = pixels.shape
    noise = np.random.default_rng(rng.getrandbits(64))
    offsets = np.rint(noise.uniform(-amount, amount, (2, h, -(-w // run)))).astype(np.int64)
    dy, dx = np.repeat(offsets, run, axis=2)[:, :, :w]  # (h, w) each
    rows = np.clip(np.arange(h)[:, None] + dy, 0, h - 1)
    columns = np.clip(np.arange(w)[None, :] + dx, 0, w - 1)
    return Image.fromarray(pixels[rows, columns], "L")


def lightest(pixels, axis):
    """The colour of the pixel at the 90th percentile of brightness along `axis` of (h, w, 3) pixels:
    the paper, as captcha text is darker than its paper."""
    grey = pixels.sum(axis=2)
    index = np.expand_dims(np.argsort(grey, axis=axis).take([int(0.9 * (grey.shape[axis] - 1))], axis=axis), -1)
    return np.take_along_axis(pixels, index, axis=axis).squeeze(axis)


def paper_border(image, pad):
    """The image inside a `pad`-pixel border of paper: above and below, each column's; left and right,
    that of the three edge columns."""
    pixels = np.asarray(image)  # (h, w, 3)
    h = pixels.shape[0]
    columns = lightest(pixels, 0)  # (w, 3)
    middle = np.concatenate([np.repeat(columns[None], pad, 0), pixels, np.repeat(columns[None], pad, 0)])
    left = lightest(pixels[:, :3].reshape(-1, 1, 3), 0)[0]  # (3,)
    right = lightest(pixels[:, -3:].reshape(-1, 1, 3), 0)[0]
    rows = h + 2 * pad
    full = np.concatenate([np.broadcast_to(left, (rows, pad, 3)), middle, np.broadcast_to(right, (rows, pad, 3))], 1)
    return Image.fromarray(np.ascontiguousarray(full), "RGB")


def jitter_scale(image, rng):
    """Content scaled by 0.9-1.05 in x and, independently, in y about the centre (size and aspect of the
    text vary; mostly smaller, as text that fills the image would run off it); uncovered borders take the
    background (paper_border), so a background gradient carries on."""
    w, h = image.size
    sx, sy = rng.uniform(0.9, 1.05), rng.uniform(0.9, 1.05)
    pad = math.ceil(0.06 * max(w, h)) + 1  # more than a 0.9 scale uncovers on each side
    padded = paper_border(image, pad)
    # AFFINE maps each output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f).
    data = (1 / sx, 0, w / 2 * (1 - 1 / sx) + pad, 0, 1 / sy, h / 2 * (1 - 1 / sy) + pad)
    return padded.transform((w, h), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)


def jitter_blur(image, rng):
    """A third of the images blurred (Gaussian, radius 0.3-0.9 px), a third sharpened (unsharp mask), a third
    as drawn."""
    pick = rng.randrange(3)
    if pick == 0:
        return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    if pick == 1:
        return image.filter(ImageFilter.UnsharpMask(rng.uniform(0.5, 1.5), rng.randint(30, 120), 0))
    return image


def jitter_contrast(image, rng):
    """Contrast x0.75-1.25 about the mean grey, then a gamma of 0.74-1.35."""
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.75, 1.25))
    return image.point(gamma_table(math.exp(rng.uniform(-0.3, 0.3)), bands=3))


def jitter_color(image, rng):
    """Saturation x0.6-1.4, then each channel shifted by up to +/-12 levels."""
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
    shifts = [rng.uniform(-12, 12) for _ in range(3)]
    table = np.concatenate([np.clip(np.rint(LEVELS + shift), 0, 255) for shift in shifts])  # (768,)
    return image.point(table.astype(np.uint8).tolist())


def jitter_jpeg(image, rng):
    """Half the images through JPEG at quality 30-95 (sites that serve JPEG); the rest stay lossless."""
    if rng.random() < 0.5:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=rng.randint(30, 95))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


# render_jitter's families applied to the finished image, in this order (JPEG last, as a site saves).
POST_JITTER = {"scale": jitter_scale, "blur": jitter_blur, "contrast": jitter_contrast, "color": jitter_color,
               "jpeg": jitter_jpeg}
# Every render_jitter family: stroke weight, edge darkness and resampling filters are drawn per image and
# applied while glyphs are drawn (Look); the others to the finished image.
JITTER = ("weight", "edges", "resample") + tuple(POST_JITTER)


class StyleError(ProjectError):
    """A generator setting that cannot work; the message is one clear line."""


def resolve_fonts(fonts):
    """Font files from settings: files or folders; empty = DroidSansMono plus fonts/*.ttf."""
    entries = list(fonts)
    if not entries:
        entries = list(DEFAULT_FONTS)
        if os.path.isdir(USER_FONT_DIR):
            entries.append(USER_FONT_DIR)
    paths = []
    for entry in entries:
        if os.path.isdir(entry):
            found = sorted(p for p in glob.glob(os.path.join(entry, "*")) if p.lower().endswith(FONT_EXTENSIONS))
            if not found and entry != USER_FONT_DIR:
                raise StyleError(f"font folder {entry!r} holds no .ttf/.otf files")
            paths.extend(found)
        elif os.path.isfile(entry):
            paths.append(entry)
        elif is_family(entry):
            paths.append(family_font(entry))
        else:
            raise StyleError(f"font file {entry!r} does not exist: {font_hint(entry)}")
    return paths


def font_hint(name):
    """How to get a missing font: its Debian package (make fonts installs every family the styles name)."""
    package = next((package for key, package in FONT_PACKAGES.items() if key in name.lower().replace("-", " ")), None)
    install = f"make fonts installs it (Debian: apt-get install {package})" if package else "install a package that has it"
    return install + ", or name another font (fc-list : family lists them)"


def is_family(entry):
    """A font named by family (and style), 'DejaVu Sans:bold', rather than by a file's path."""
    return os.sep not in entry and not entry.lower().endswith(FONT_EXTENSIONS)


@functools.lru_cache(maxsize=None)
def family_font(name):
    """The font file fontconfig holds for a family and style ('DejaVu Sans:bold'); a family or style that is
    not installed is a one-line error naming what to install (fc-match would quietly give another font).
    Found once a process (fc-match takes ~8 ms; a fit draws hundreds of styles, font_variety names 20)."""
    if shutil.which("fc-match") is None:
        raise StyleError(f"font {name!r} is named by family, which needs fontconfig's fc-match: install fontconfig "
                         f"(Debian: apt-get install fontconfig), or name the font's file")
    found = subprocess.run(["fc-match", "-f", "%{file}|%{family}|%{style}", name], capture_output=True, text=True,
                           timeout=30).stdout
    path, families, styles = (found.split("|") + ["", "", ""])[:3]
    family, _, style = name.partition(":")
    has_family = family.strip().lower() in [item.strip().lower() for item in families.split(",")]
    has_style = all(word.lower() in styles.lower() for word in style.replace(":", " ").split())
    if not (has_family and has_style and os.path.isfile(path)):
        raise StyleError(f"font family {name!r} is not installed (fontconfig offers {families or 'nothing'} "
                         f"{styles}): {font_hint(family)}")
    return path


def style_error(message):
    raise StyleError(message)


def check_range(style, name, floor, ceiling=None):
    """A setting that is a range low,high: two values with floor <= low <= high (<= ceiling)."""
    value = getattr(style, name)
    bound = "" if ceiling is None else f" <= {ceiling}"
    if len(value) != 2 or not floor <= value[0] <= value[1] or (ceiling is not None and value[1] > ceiling):
        raise StyleError(f"{name} must be two values low,high with {floor} <= low <= high{bound}, got {value}")


def check_render_knobs(style):
    """The renderer's knobs (filters, edges, glyph shape, spacing, jitter): a one-line StyleError each."""
    # glyph_resample, squeeze_resample, font_box and render_jitter are choices, checked when they are read.
    for name, floor, ceiling in (("noise_curve_end", 0, 1), ("background_gradient", 0, 255),
                                 ("noise_polyline_width", 1, None), ("noise_polyline_bends", 1, 10),
                                 ("stroke_weight", -3, 3), ("elastic", 0, None), ("ragged", 0, None),
                                 ("glyph_width", 0.2, 5), ("left_margin", -style.image_width, style.image_width),
                                 ("off_edge_depth", 0, 1)):
        check_range(style, name, floor, ceiling)
    if style.char_spacing:
        check_range(style, "char_spacing", -style.image_width, style.image_width)
        if style.char_pitch > 0:
            raise StyleError("char_spacing and char_pitch are two layouts: set one of them")
    if style.char_jitter_y > style.image_height:  # the other settings' own ranges are checked when read
        raise StyleError(f"char_jitter_y must be between 0 and {style.image_height}, got {style.char_jitter_y}")
    if any(style.background_gradient) and not (style.solid_text or style.dark_edges):
        raise StyleError("background_gradient needs solid_text or dark_edges (translucent text is blended "
                         "with a flat background)")
    check_class_weights(style)
    if style.captcha_kind == "color_target":
        check_palette(style)


def check_palette(style):
    """color_target's colours: readable, the target among them, and at least one other for distractors."""
    for name in style.palette + (style.target_color,):
        try:
            ImageColor.getrgb(name)
        except ValueError:
            raise StyleError(f"{name!r} is not a colour (a name such as red, or #rrggbb)") from None
    if style.target_color not in style.palette or len(set(style.palette)) < 2:
        raise StyleError(f"target_color {style.target_color!r} must be one of a palette of two or more colours, "
                         f"got {','.join(style.palette)}")
    check_range(style, "color_distractors", 0, 20)
    if not 0 <= style.color_jitter <= 127:
        raise StyleError(f"color_jitter must be between 0 and 127, got {style.color_jitter}")


def drawn_length(style):
    """The most characters a captcha draws: its label's, and color_target's distractors."""
    extra = style.color_distractors[1] if style.captcha_kind == "color_target" else 0
    return style.length_range[1] + extra


def check_class_weights(style):
    weights = style.char_class_weights
    if not weights:
        return
    if len(weights) != len(CHAR_CLASSES) or min(weights) < 0:
        raise StyleError(f"char_class_weights must be {len(CHAR_CLASSES)} weights >= 0 (digits, lower-case, "
                         f"upper-case letters), got {weights}")
    other = sorted(set(style.charset) - set("".join(CHAR_CLASSES)))
    if other:
        raise StyleError(f"char_class_weights draws digits and letters only, but the charset holds {''.join(other)!r}")
    if not any(w > 0 and set(group) & set(style.charset) for w, group in zip(weights, CHAR_CLASSES)):
        raise StyleError(f"char_class_weights {weights} give no weight to a class the charset holds")


def check_style(style):
    """Raise StyleError for settings that cannot produce captchas (before any work starts)."""
    if not style.charset:
        raise StyleError("charset is empty")
    if len(set(style.charset)) != len(style.charset):
        raise StyleError(f"charset {style.charset!r} repeats a character")
    if not style.font_sizes or min(style.font_sizes) < 4:
        raise StyleError(f"font_sizes must be at least 4 pixels, got {style.font_sizes}")
    if style.image_height < 8:
        raise StyleError(f"image_height {style.image_height} is too small (at least 8 pixels)")
    if max(style.image_width, style.image_height) > style.max_image_side:
        raise StyleError(f"image size {style.image_width}x{style.image_height} is over max_image_side "
                         f"{style.max_image_side} pixels ({style.image_width * style.image_height * 3 / 1e9:.1f} "
                         f"GB an image in RGB); raise --max_image_side if you mean it")
    for low, high, name in ((style.text_color_min, style.text_color_max, "text_color"),
                            (style.background_min, style.background_max, "background")):
        if not 0 <= low <= high <= 255:
            raise StyleError(f"{name}_min/{name}_max must satisfy 0 <= min <= max <= 255, got {low}/{high}")
    for name in ("warp_x", "warp_y"):
        value = getattr(style, name)
        if len(value) != 2 or value[0] > value[1] or value[0] < 0:
            raise StyleError(f"{name} must be two fractions low,high with 0 <= low <= high, got {value}")
    for name, floor, ceiling in (("noise_lines", 0, None), ("noise_line_length", 1, None),
                                 ("noise_line_angle", -360, 360), ("noise_line_gray", 0, 255),
                                 ("row_shift", -style.image_width / 2, style.image_width / 2),
                                 ("row_shift_y", -style.image_height / 2, style.image_height / 2)):
        check_range(style, name, floor, ceiling)
    if style.char_pitch > 0 and style.space_probability > 0:
        raise StyleError("char_pitch places characters at fixed points: set space_probability=0 with it")
    most = drawn_length(style)
    if style.char_pitch * most > style.image_width:
        raise StyleError(f"char_pitch {style.char_pitch} x {most} characters does not fit "
                         f"image_width {style.image_width}")
    check_render_knobs(style)
    check_looks(style, style_error)
    fonts = resolve_fonts(style.fonts)
    if not fonts:
        raise StyleError("no font files found")
    for path in fonts:  # opened here, so a file that is not a font fails before any captcha is drawn
        try:
            ImageFont.truetype(path, min(style.font_sizes))
        except OSError as error:
            raise StyleError(f"font file {path!r} cannot be opened as a font ({error})") from None
    # Each character is squeezed to at most a third of the smallest font size; below that text is unreadable.
    needed = most * max(4, min(style.font_sizes) // 3)
    if style.image_width < needed:
        raise StyleError(f"image_width {style.image_width} is too small for {most} characters "
                         f"at font size {min(style.font_sizes)} (needs at least {needed} pixels)")
    return fonts


class Glyph(NamedTuple):
    """One character ready to paste: its ink mask and the box the layout places."""
    mask: Image.Image  # ink coverage ('L'), `pad` pixels larger than the box on every side
    width: int  # layout box, pixels
    height: int
    below_baseline: int  # ink bottom below the baseline, pixels
    pad: int
    fill: object = None  # with outline_width: the glyph's own ink ('L'), mask being its outline


@dataclasses.dataclass
class Drawing:
    """One captcha as its style's steps draw it: what they read and write, in the order they do."""
    text: str  # the characters drawn (a label, or a label with colour-target distractors)
    rng: random.Random  # the image's random source: every step that draws takes from it, in turn
    colors: list  # each character's (r, g, b), or None: the style's own colour
    jitter_rng: random.Random = None  # render_jitter's fork of rng (None: jitter off)
    look: "Look" = None  # the glyph renderer's settings for this image
    background: tuple = None  # canvas colour (r, g, b)
    color: tuple = None  # text colour (r, g, b)
    glyphs: list = dataclasses.field(default_factory=list)  # Glyph per character (and word space)
    glyph_colors: list = dataclasses.field(default_factory=list)  # each glyph's colour, or None
    canvas_width: int = 0  # pixels: the image's width, or wider when the text did not fit
    lefts: list = None  # each glyph's left edge on the canvas
    image: Image.Image = None  # the picture so far


class Look(NamedTuple):
    """Per-image renderer draws used while glyphs are drawn (render_jitter's glyph families)."""
    glyph_filter: int  # PIL resampling filter of the glyph stretch and warp
    squeeze_filter: int  # and of the squeeze of a too-wide text row
    weight: float  # pixels added to each side of every stroke (negative: taken)
    edge_gamma: float  # exponent on glyph coverage: below 1 darkens anti-aliased edges, above 1 lightens them


class StyledCaptcha(ImageCaptcha):
    """ImageCaptcha with every knob exposed and all randomness drawn from a given random.Random; `style`
    (parameters.DrawSettings) holds the knobs."""

    def __init__(self, style):
        fonts = check_style(style)
        variety = resolve_fonts(VARIETY_FONTS) if style.font_variety else []
        super().__init__(style.image_width, style.image_height, fonts=fonts + variety,
                         font_sizes=tuple(style.font_sizes))
        self._own_fonts = len(fonts) * len(style.font_sizes)  # truefonts: the style's fonts, then VARIETY_FONTS
        self.style = style
        self.character_rotate = (-style.rotation, style.rotation)
        self.character_warp_dx = tuple(style.warp_x)
        self.character_warp_dy = tuple(style.warp_y)
        self.word_space_probability = style.space_probability
        self.word_offset_dx = style.char_overlap
        self._glyphs = {}  # (font index, char) -> (ink mask 'L', box width, box height, ink bottom below the baseline)
        self._measure = ImageDraw.Draw(Image.new("L", (1, 1)))
        # With baseline on: where the baseline sits so that a capital of the mean font size (cap height
        # ~0.72 of it) is centred.
        self._baseline_y = (style.image_height + 0.72 * sum(style.font_sizes) / len(style.font_sizes)) / 2
        # Room around each glyph mask for ink that the shape knobs move or grow past its box.
        grow = style.stroke_weight[1] + (WEIGHT_JITTER[1] if "weight" in style.render_jitter else 0.0)
        self._pad = math.ceil(max(style.elastic[1], style.ragged[1], grow, 0.0) + glyph_room(style))
        # What the captcha kinds draw from, prepared once rather than per image.
        self._grammar = Grammar.of(style) if style.captcha_kind == "arithmetic" else None
        self._palette = ({name: ImageColor.getrgb(name)[:3] for name in style.palette}
                         if style.captcha_kind == "color_target" else {})
        self.steps = self._pipeline()

    def _glyph(self, font_index, char):
        key = (font_index, char)
        if key not in self._glyphs:
            font = self.truefonts[font_index]
            if self.style.font_box == "textsize":  # Pillow < 8: advance x (ascent + descent below the baseline)
                _, _, width, height = font.getbbox(char)
            else:
                _, _, width, height = self._measure.multiline_textbbox((1, 1), char, font=font)
            width, height = max(1, int(width)), max(1, int(height))
            canvas = Image.new("L", (width + 2, height + 2))
            ImageDraw.Draw(canvas).text((1, 1), char, font=font, fill=255)
            box = canvas.getbbox()
            # Text is drawn from its ascender line, so the baseline sits `ascent` pixels below the origin (1, 1).
            below_baseline = box[3] - 1 - font.getmetrics()[0] if box else 0
            self._glyphs[key] = (canvas.crop(box) if box else None, width, height, below_baseline)
        return self._glyphs[key]

    def _font_index(self, rng):
        """Which of truefonts draws a character: one of the style's, or with font_variety (a random number
        taken only then, so styles without it keep their bytes) one of VARIETY_FONTS's."""
        if self.style.font_variety and rng.random() < self.style.font_variety:
            return rng.randrange(self._own_fonts, len(self.truefonts))
        return rng.randrange(self._own_fonts)

    def _warped_glyph(self, char, rng, look):
        """One character rotated and warped into the font's box (as the stock class does), or into its own
        ink box when stretch_glyphs is off, then shaped by the glyph knobs."""
        font_index = self._font_index(rng)
        mask, width, height, below_baseline = self._glyph(font_index, char)
        if mask is None:  # a space: no ink, only its width
            return Glyph(Image.new("L", (width, height)), width, height, 0, 0)
        low, high = self.character_rotate
        ink_height = mask.height
        angle = rng.uniform(low, high)
        if self.style.dark_edges and not self.style.solid_text:
            mask = layer_rotate(mask, angle)
        else:
            mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
        below_baseline += (mask.height - ink_height) // 2  # rotation grows the box about its centre
        if not self.style.stretch_glyphs:  # keep the ink's own proportions: a '1' stays narrow, an 'o' short
            width, height = mask.size
        reach_x = width * rng.uniform(*self.character_warp_dx)
        reach_y = height * rng.uniform(*self.character_warp_dy)
        x1, x2 = (int(rng.uniform(-reach_x, reach_x)) for _ in range(2))
        y1, y2 = (int(rng.uniform(-reach_y, reach_y)) for _ in range(2))
        mask = warp_glyph(mask, (width, height), (x1, y1, x2, y2), look.glyph_filter, self.style.glyph_passes)
        return self._shaped(mask, below_baseline, rng, look, font_index >= self._own_fonts)

    def _shaped(self, mask, below_baseline, rng, look, variety=False):
        """The glyph knobs, each drawn only when on (so styles without them keep their bytes); a `variety`
        glyph (font_variety's) also at a random width."""
        p = self.style
        stretch = rng.uniform(*p.glyph_width) if tuple(p.glyph_width) != (1.0, 1.0) else 1.0
        if variety:
            stretch *= rng.uniform(*VARIETY_WIDTH)
        if stretch != 1.0:
            mask = mask.resize((max(1, round(mask.width * stretch)), mask.height), look.glyph_filter)
        width, height = mask.size
        if self._pad:
            mask = ImageOps.expand(mask, self._pad, 0)
        weight = look.weight + (rng.uniform(*p.stroke_weight) if any(p.stroke_weight) else 0.0)
        if weight:
            mask = stroke_weight(mask, weight)
        if p.elastic[1] > 0:
            mask = elastic_warp(mask, rng.uniform(*p.elastic), rng)
        if p.ragged[1] > 0:
            mask = ragged_edges(mask, rng.uniform(*p.ragged), rng)
        if look.edge_gamma != 1.0:
            mask = mapped(mask, np.array(gamma_table(look.edge_gamma), dtype=np.uint8))
        mask, fill = shape_glyph(mask, rng, p)  # dots, outline (looks.py)
        return Glyph(mask, width, height, below_baseline, self._pad, fill)

    def _draw_look(self, rng):
        """The glyph families of render_jitter drawn for one image from `rng` (None when jitter is off)."""
        p = self.style
        glyph_filter, squeeze_filter = RESAMPLE[p.glyph_resample], RESAMPLE[p.squeeze_resample]
        if "resample" in p.render_jitter:
            glyph_filter, squeeze_filter = (rng.choice(tuple(RESAMPLE.values())) for _ in range(2))
        weight = rng.uniform(*WEIGHT_JITTER) if "weight" in p.render_jitter else 0.0
        gamma = math.exp(rng.uniform(*EDGE_JITTER)) if "edges" in p.render_jitter else 1.0
        return Look(glyph_filter, squeeze_filter, weight, gamma)

    def _random_color(self, rng, low, high):
        return tuple(rng.randint(low, high) for _ in range(3))

    def _ink(self, color, background):
        """The fill that pastes `color` through a glyph mask: solid, or translucent as the stock class."""
        if self.style.solid_text:
            return color
        # Pasting the colour pre-blended with the background through the plain mask equals pasting
        # it through a mask scaled by `opacity` (on a flat background), without a per-glyph point().
        opacity = self._opacity(color)
        return tuple(round(b + opacity * (c - b)) for b, c in zip(background, color))

    def _opacity(self, color):
        """The stock class pastes glyphs through their luminance boosted by INK_GAIN (clipped), so darker
        text is partly transparent; ink_opacity_floor keeps dark colours visible."""
        luminance = (299 * color[0] + 587 * color[1] + 114 * color[2]) / 1000
        return min(1.0, max(self.style.ink_opacity_floor, luminance * INK_GAIN / 255))

    def _paste_dark_edged(self, image, mask, color, position):
        """Paste as Pillow < 8 pasted text drawn on a transparent layer: the layer holds the colour times the
        coverage (edges blend toward black) and is pasted through its luminance boosted by INK_GAIN."""
        gain = self._opacity(color)
        through = mapped(mask, np.minimum(255, LEVELS * gain).astype(np.uint8))
        layer = ImageChops.multiply(Image.new("RGB", mask.size, color), mask.convert("RGB"))
        image.paste(layer, position, through)

    def _packed_lefts(self, glyphs, count, rng):
        """(canvas width, glyph left edges): side by side from a small margin, overlapping at random.

        The overlaps are drawn in the order the stock loop drew them while pasting, so seeded images keep their bytes.
        """
        text_width = sum(glyph.width for glyph in glyphs)
        average = text_width / count
        overlap = int(self.word_offset_dx * average)
        x, lefts = int(average * 0.1), []
        for glyph in glyphs:
            lefts.append(x)
            x += glyph.width - rng.randint(0, overlap)
        return max(text_width, self.style.image_width), lefts

    def _pitched_lefts(self, glyphs, rng):
        """Glyph left edges: centres char_pitch apart (each jittered), the row about the image's centre."""
        p = self.style
        first = (p.image_width - (len(glyphs) - 1) * p.char_pitch) / 2 + rng.uniform(*p.row_shift)
        return [round(first + i * p.char_pitch + rng.uniform(-p.char_jitter, p.char_jitter) - glyph.width / 2)
                for i, glyph in enumerate(glyphs)]

    def _spaced_lefts(self, glyphs, rng):
        """Glyph left edges: from left_margin, each glyph char_spacing after the previous one's right edge,
        so the spacing follows the glyphs' widths (a narrow '1' takes less room than a 'W')."""
        x, lefts = rng.uniform(*self.style.left_margin), []
        for glyph in glyphs:
            lefts.append(round(x))
            x += glyph.width + rng.uniform(*self.style.char_spacing)
        return lefts

    def _layout(self, glyphs, count, rng):
        """(canvas width, glyph left edges) of the style's layout."""
        if self.style.char_pitch > 0:
            return self.style.image_width, self._pitched_lefts(glyphs, rng)
        if self.style.char_spacing:
            return self.style.image_width, self._spaced_lefts(glyphs, rng)
        return self._packed_lefts(glyphs, count, rng)

    def _tops(self, glyphs, rng):
        """Glyph top edges: centred, or on one baseline; the row shifted, each glyph jittered when asked."""
        p = self.style
        # Sites do not always centre the text vertically; drawn only when asked (seeded images keep their bytes).
        shift_y = round(rng.uniform(*p.row_shift_y)) if any(p.row_shift_y) else 0
        tops = []
        for glyph in glyphs:
            if p.baseline:
                top = round(self._baseline_y + glyph.below_baseline - glyph.height)
            elif p.font_box == "textsize":  # centred as the Pillow-era code did: int() rounds toward zero
                top = int((p.image_height - glyph.height) / 2)
            else:
                top = (p.image_height - glyph.height) // 2
            if p.char_jitter_y:
                top += round(rng.uniform(-p.char_jitter_y, p.char_jitter_y))
            tops.append(top + shift_y)
        return tops

    def _off_edge(self, glyphs, lefts, tops, canvas_width, rng):
        """With chance off_edge, the whole text moved so that it runs off one edge by off_edge_depth."""
        p = self.style
        if p.off_edge <= 0 or rng.random() >= p.off_edge:
            return lefts, tops
        inked = [i for i, glyph in enumerate(glyphs) if glyph.mask.getbbox()]
        if not inked:
            return lefts, tops
        edge, depth = rng.choice(("left", "right", "top", "bottom")), rng.uniform(*p.off_edge_depth)
        first, last = glyphs[inked[0]], glyphs[inked[-1]]
        text_top = min(tops[i] for i in inked)
        text_bottom = max(tops[i] + glyphs[i].height for i in inked)
        dx = dy = 0
        if edge == "left":
            dx = round(-depth * first.width) - lefts[inked[0]]
        elif edge == "right":
            dx = round(canvas_width + depth * last.width) - (lefts[inked[-1]] + last.width)
        elif edge == "top":
            dy = round(-depth * (text_bottom - text_top)) - text_top
        else:
            dy = round(p.image_height + depth * (text_bottom - text_top)) - text_bottom
        return [x + dx for x in lefts], [y + dy for y in tops]

    def _background(self, width, color, rng):
        """The canvas: flat, or darker towards the left by background_gradient grey levels."""
        p = self.style
        if not any(p.background_gradient):
            return Image.new("RGB", (width, p.image_height), color)
        ramp = np.linspace(rng.uniform(*p.background_gradient), 0.0, width)  # (width,) darkening
        row = np.clip(np.array(color, dtype=np.float64)[None, :] - ramp[:, None], 0, 255)  # (width, 3)
        pixels = np.repeat(row[None].round().astype(np.uint8), p.image_height, axis=0)  # (height, width, 3)
        return Image.fromarray(pixels, "RGB")

    def _paste_text(self, image, glyphs, lefts, tops, color, background, rng, colors):
        p = self.style
        ink = self._ink(color, background)
        for glyph, x, top, own_color in zip(glyphs, lefts, tops, colors):
            if own_color is not None:
                color = own_color
                ink = self._ink(color, background)
            elif p.color_per_char:
                color = self._random_color(rng, p.text_color_min, p.text_color_max)
                ink = self._ink(color, background)
            position = (x - glyph.pad, top - glyph.pad)
            paste_glyph_extras(image, glyph.mask, glyph.fill, position, p)  # shadow, outline fill (looks.py)
            if p.dark_edges and not p.solid_text:
                self._paste_dark_edged(image, glyph.mask, color, position)
            else:
                image.paste(ink, position, glyph.mask)
            if p.char_box:
                draw_char_box(image, glyph.mask if glyph.fill is None else glyph.fill, position, color, rng, p)

    def render(self, text, rng, colors=None):
        """The captcha image (RGB, image_width x image_height) of `text`, drawn with `rng`; `colors`, when
        given, holds each character's (r, g, b). The style's steps (self.steps) draw it in turn."""
        drawing = Drawing(text, rng, list(colors or [None] * len(text)))
        for step in self.steps:
            step(drawing)
        return drawing.image

    def _pipeline(self):
        """The steps that draw a captcha of this style, in order: the canvas and text first, then what goes
        over them; a step the style does not use is left out."""
        p = self.style
        steps = [self._start, self._draw_glyphs, self._canvas]
        if p.noise_lines[1] > 0 and p.noise_lines_under_text:
            steps.append(self._lines_under_text)
        steps += [self._place_text, self._squeeze, self._noise_over_text, self._finish_looks]
        if p.smooth:
            steps.append(self._smooth)
        if any(name in p.render_jitter for name in POST_JITTER):
            steps.append(self._post_jitter)
        if p.grey:
            steps.append(self._grey)
        if p.transparent:
            steps.append(self._transparent)
        return steps

    def _start(self, d):
        """The image's look, background and text colour. render_jitter draws from a fork of the image's random
        source that leaves the source untouched, so with jitter on an image is the same drawing as with it
        off, only rendered differently."""
        p = self.style
        d.jitter_rng = random.Random(str(d.rng.getstate())) if p.render_jitter else None
        d.look = self._draw_look(d.jitter_rng)
        d.background = self._random_color(d.rng, p.background_min, p.background_max)
        d.color = self._random_color(d.rng, p.text_color_min, p.text_color_max)

    def _draw_glyphs(self, d):
        """Each character's glyph, and a word space before it now and then (a colour of None: the style's)."""
        for char, char_color in zip(d.text, d.colors):
            if d.rng.random() < self.word_space_probability:
                d.glyphs.append(self._warped_glyph(" ", d.rng, d.look))
                d.glyph_colors.append(None)
            d.glyphs.append(self._warped_glyph(char, d.rng, d.look))
            d.glyph_colors.append(char_color)

    def _canvas(self, d):
        d.canvas_width, d.lefts = self._layout(d.glyphs, len(d.text), d.rng)
        d.image = self._background(d.canvas_width, d.background, d.rng)

    def _lines_under_text(self, d):
        self._noise_lines(ImageDraw.Draw(d.image), d.rng)

    def _place_text(self, d):
        tops = self._tops(d.glyphs, d.rng)
        lefts, tops = self._off_edge(d.glyphs, d.lefts, tops, d.canvas_width, d.rng)
        self._paste_text(d.image, d.glyphs, lefts, tops, d.color, d.background, d.rng, d.glyph_colors)

    def _squeeze(self, d):
        """A canvas drawn wider than the image (text that did not fit) squeezed to the image's width."""
        if d.canvas_width > self.style.image_width:
            d.image = d.image.resize((self.style.image_width, self.style.image_height), d.look.squeeze_filter)

    def _noise_over_text(self, d):
        self._noise(d.image, d.rng, d.color)

    def _finish_looks(self, d):
        d.image = finish(d.image, d.rng, self.style, d.color)  # warps, lines, specks, sparkles, border (looks.py)

    def _smooth(self, d):
        d.image = d.image.filter(ImageFilter.SMOOTH)

    def _post_jitter(self, d):
        for name, family in POST_JITTER.items():
            if name in self.style.render_jitter:
                d.image = family(d.image, d.jitter_rng)

    def _grey(self, d):
        d.image = d.image.convert("L").convert("RGB")

    def _transparent(self, d):
        d.image = transparent_canvas(d.image, d.background)

    def _noise(self, image, rng, color):
        """Dots, arcs, polylines and line segments over the text (segments: unless drawn under it)."""
        p = self.style
        draw = ImageDraw.Draw(image)
        self._noise_dots(draw, rng, color)
        for _ in range(p.noise_curves):
            self._noise_curve(draw, rng, color)
        for _ in range(p.noise_polylines):
            self._noise_polyline(draw, rng, color)
        if p.noise_lines[1] > 0 and not p.noise_lines_under_text:
            self._noise_lines(draw, rng)

    def _noise_dots(self, draw, rng, color):
        w, h = self.style.image_width, self.style.image_height
        for _ in range(self.style.noise_dots):
            x, y = rng.randint(0, w), rng.randint(0, h)
            draw.line(((x, y), (x - 1, y - 1)), fill=color, width=self.style.noise_dot_width)

    def _noise_curve(self, draw, rng, color):
        """An arc across the text, from the left fifth of the image to a right end in noise_curve_end."""
        w, h = self.style.image_width, self.style.image_height
        low, high = self.style.noise_curve_end
        x1 = rng.randint(0, w // 5)
        x2 = rng.randint(max(x1, int(w * low)), max(x1, int(w * high)))
        y1 = rng.randint(h // 5, h - h // 5)
        y2 = rng.randint(y1, max(y1, h - h // 5))
        start, end = rng.randint(0, 20), rng.randint(160, 200)
        draw.arc((x1, y1, x2, y2), start, end, fill=color, width=self.style.noise_curve_width)

    def _noise_polyline(self, draw, rng, color):
        """A thick line through the text: from near its left end, bending a few times, to near the right edge
        (at least one bend: the end of the short first segment)."""
        p = self.style
        w, h = p.image_width, p.image_height
        # A short, often steep first segment from above the text's left end, then long ones to the right.
        xs = [rng.uniform(0.08, 0.15) * w, rng.uniform(0.15, 0.25) * w]
        xs += sorted(rng.uniform(0.25, 0.8) * w for _ in range(rng.randint(*p.noise_polyline_bends) - 1))
        xs.append(rng.uniform(0.85, 0.95) * w)
        points = [(xs[0], rng.uniform(0, 0.6 * h))] + [(x, rng.uniform(0.2 * h, 0.9 * h)) for x in xs[1:]]
        draw.line(points, fill=color, width=rng.randint(*p.noise_polyline_width), joint="curve")

    def _noise_lines(self, draw, rng):
        """Short straight segments anywhere, over the text (as on the swust site)."""
        p = self.style
        for _ in range(rng.randint(*p.noise_lines)):
            x, y = rng.uniform(0, p.image_width), rng.uniform(0, p.image_height)
            length = rng.uniform(*p.noise_line_length)
            angle = math.radians(rng.uniform(*p.noise_line_angle))
            gray = rng.randint(*p.noise_line_gray)
            end = (x + length * math.cos(angle), y + length * math.sin(angle))
            draw.line(((x, y), end), fill=(gray, gray, gray), width=1)

    def sample(self, rng):
        """(label, image) of the style's captcha_kind, both drawn with `rng`: a random text from the charset,
        an arithmetic expression, or a text with distractors in other colours (color_target)."""
        p = self.style
        if self._grammar is not None:
            label = self._grammar.draw(rng, p.arithmetic_negative)
            return label, self.render(label, rng)
        label = random_label(rng, p.charset, p.length_range, p.char_class_weights)
        if p.captcha_kind == "color_target":
            text, colors = self._with_distractors(label, rng)
            return label, self.render(text, rng, colors)
        return label, self.render(label, rng)

    def _with_distractors(self, label, rng):
        """(text, colours): `label` in target_color, with color_distractors characters in the palette's
        other colours put in at random places; every colour moved by up to color_jitter per channel."""
        p = self.style
        others = [name for name in p.palette if name != p.target_color]
        text, names = list(label), [p.target_color] * len(label)
        for _ in range(rng.randint(*p.color_distractors)):
            at = rng.randint(0, len(text))
            text.insert(at, rng.choice(p.charset))
            names.insert(at, rng.choice(others))
        colors = [tuple(min(255, max(0, c + rng.randint(-p.color_jitter, p.color_jitter)))
                        for c in self._palette[name]) for name in names]
        return "".join(text), colors


class StyleMix:
    """Captchas of several styles in one data set (a site that changed its look): each image's style is
    picked by its own random source, so mixes stay seedable. Image size, length and font_variety come from the
    mix's settings."""

    def __init__(self, params):
        unknown = [name for name in params.style_mix if name not in STYLES and not name.endswith(".json")]
        if unknown:
            raise StyleError(f"style_mix names unknown styles {unknown} (choose from {', '.join(STYLES)}, or give "
                             f"style files)")
        if any(member_settings(name).get("style_mix") for name in params.style_mix):
            raise StyleError("style_mix cannot name a style that is itself a mix")
        self.params = params
        classes = set(params.charset.lower() if params.ignore_case else params.charset)
        self.generators = []
        for name in params.style_mix:
            style = make_parameters({**member_style(name), "style_mix": (), "image_width": params.image_width,
                                     "image_height": params.image_height, "captcha_length": params.captcha_length,
                                     "ignore_case": params.ignore_case, "font_variety": params.font_variety},
                                    base=params)
            outside = sorted(set(style.charset.lower() if params.ignore_case else style.charset) - classes)
            if outside:
                raise StyleError(f"style {name!r} draws {''.join(outside)!r}, outside the charset {params.charset!r}")
            self.generators.append(StyledCaptcha(DrawSettings.of(style)))

    def sample(self, rng):
        return rng.choice(self.generators).sample(rng)

    def render(self, text, rng):
        """`text` drawn in one of the styles, picked with `rng`."""
        return rng.choice(self.generators).render(text, rng)


def member_settings(name):
    """The settings of a mix's member: a named style's preset, or a style file's settings."""
    return read_style_file(name) if name.endswith(".json") else STYLES[name]


def member_style(name):
    """The make_parameters overrides that draw in a mix's member."""
    return {"style_file": name} if name.endswith(".json") else {"style": name}


def make_generator(params):
    """The generator `params` describe: one style, or a mix of styles (style_mix)."""
    return StyleMix(params) if params.style_mix else StyledCaptcha(DrawSettings.of(params))


def random_label(rng, charset, lengths, class_weights=()):
    """`lengths` (fewest, most) characters, the count drawn uniformly, each drawn uniformly from the charset;
    or, with class_weights, each from a class (the charset's digits, lower-case, upper-case letters) picked
    by those weights, then uniformly within it."""
    fewest, most = lengths
    length = fewest if fewest == most else rng.randint(fewest, most)  # one length: no draw (older data sets stay)
    if not class_weights:
        return "".join(rng.choice(charset) for _ in range(length))
    classes = ["".join(c for c in charset if c in group) for group in CHAR_CLASSES]
    weights = [weight if chars else 0.0 for weight, chars in zip(class_weights, classes)]
    return "".join(rng.choice(chars) for chars in rng.choices(classes, weights, k=length))


def main(argv=None):
    params, text = parse_args(argv, doc=__doc__, script=__file__, positional=True)
    try:
        generator = make_generator(params)
    except StyleError as error:
        fail(str(error))
    rng = random.Random(params.seed)
    label, image = (text[0], generator.render(text[0], rng)) if text else generator.sample(rng)
    image.save("sample.png")
    print(f"wrote sample.png ({label})")


if __name__ == "__main__":
    run_main(main)
