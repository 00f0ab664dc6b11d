"""A styled, seedable, fast captcha generator built on the `captcha` package's ImageCaptcha.

Every knob (size, fonts, font sizes, noise curves, dots and lines, colours, rotation, warp, spacing,
smoothing) comes from `parameters.py`. Randomness comes from a `random.Random` passed in per image,
so the same seed gives the same image bytes in any process (the stock class uses `secrets`, which
cannot be seeded).

    python custom_captcha_image.py aB3x               # writes sample.png in the style of parameters.py

Speed: each glyph is rasterised once per (font, character) and cached as an ink-cropped mask; an
image then costs only a rotate, one warp transform and a paste per character.
"""
import glob
import math
import os
import random

from captcha.image import DEFAULT_FONTS, ImageCaptcha
from PIL import Image, ImageDraw, ImageFilter

from parameters import ProjectError, fail, parse_args, run_main

FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")
USER_FONT_DIR = "fonts"
# The stock class pastes glyphs through their luminance boosted by ~2x, so darker text is partly
# transparent over the background (and black text vanishes). Kept for the seed style's look, with a
# floor so that dark colours stay visible.
INK_GAIN = 1.97
MIN_INK_OPACITY = 0.5


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
        else:
            raise StyleError(f"font file {entry!r} does not exist")
    return paths


def check_style(params):
    """Raise StyleError for settings that cannot produce captchas (before any work starts)."""
    if not params.charset:
        raise StyleError("charset is empty")
    if len(set(params.charset)) != len(params.charset):
        raise StyleError(f"charset {params.charset!r} repeats a character")
    if params.captcha_length < 1:
        raise StyleError(f"captcha_length must be at least 1, got {params.captcha_length}")
    if not params.font_sizes or min(params.font_sizes) < 4:
        raise StyleError(f"font_sizes must be at least 4 pixels, got {params.font_sizes}")
    if params.image_height < 8:
        raise StyleError(f"image_height {params.image_height} is too small (at least 8 pixels)")
    for low, high, name in ((params.text_color_min, params.text_color_max, "text_color"),
                            (params.background_min, params.background_max, "background")):
        if not 0 <= low <= high <= 255:
            raise StyleError(f"{name}_min/{name}_max must satisfy 0 <= min <= max <= 255, got {low}/{high}")
    for name in ("warp_x", "warp_y"):
        value = getattr(params, name)
        if len(value) != 2 or value[0] > value[1] or value[0] < 0:
            raise StyleError(f"{name} must be two fractions low,high with 0 <= low <= high, got {value}")
    for name in ("noise_curves", "noise_dots", "noise_curve_width", "noise_dot_width", "char_pitch", "char_jitter"):
        if getattr(params, name) < 0:
            raise StyleError(f"{name} must not be negative")
    for name, floor, ceiling in (("noise_lines", 0, None), ("noise_line_length", 1, None),
                                 ("noise_line_angle", -360, 360), ("noise_line_gray", 0, 255),
                                 ("row_shift", -params.image_width / 2, params.image_width / 2),
                                 ("row_shift_y", -params.image_height / 2, params.image_height / 2)):
        value = getattr(params, name)
        bound = "" if ceiling is None else f" <= {ceiling}"
        if len(value) != 2 or not floor <= value[0] <= value[1] or (ceiling is not None and value[1] > ceiling):
            raise StyleError(f"{name} must be two values low,high with {floor} <= low <= high{bound}, got {value}")
    if params.char_pitch > 0 and params.space_probability > 0:
        raise StyleError("char_pitch places characters at fixed points: set space_probability=0 with it")
    if params.char_pitch * params.captcha_length > params.image_width:
        raise StyleError(f"char_pitch {params.char_pitch} x {params.captcha_length} characters does not fit "
                         f"image_width {params.image_width}")
    fonts = resolve_fonts(params.fonts)
    if not fonts:
        raise StyleError("no font files found")
    # Each character is squeezed to at most a third of the smallest font size; below that text is unreadable.
    needed = params.captcha_length * max(4, min(params.font_sizes) // 3)
    if params.image_width < needed:
        raise StyleError(f"image_width {params.image_width} is too small for {params.captcha_length} characters "
                         f"at font size {min(params.font_sizes)} (needs at least {needed} pixels)")
    return fonts


class StyledCaptcha(ImageCaptcha):
    """ImageCaptcha with every knob exposed and all randomness drawn from a given random.Random."""

    def __init__(self, params):
        fonts = check_style(params)
        super().__init__(params.image_width, params.image_height, fonts=fonts, font_sizes=tuple(params.font_sizes))
        self.params = params
        self.character_rotate = (-params.rotation, params.rotation)
        self.character_warp_dx = tuple(params.warp_x)
        self.character_warp_dy = tuple(params.warp_y)
        self.word_space_probability = params.space_probability
        self.word_offset_dx = params.char_overlap
        self._glyphs = {}  # (font index, char) -> (ink mask 'L', box width, box height, ink bottom below the baseline)
        self._measure = ImageDraw.Draw(Image.new("L", (1, 1)))
        # With baseline on: where the baseline sits so that a capital of the mean font size (cap height
        # ~0.72 of it) is centred.
        self._baseline_y = (params.image_height + 0.72 * sum(params.font_sizes) / len(params.font_sizes)) / 2

    def _glyph(self, font_index, char):
        key = (font_index, char)
        if key not in self._glyphs:
            font = self.truefonts[font_index]
            _, _, width, height = self._measure.multiline_textbbox((1, 1), char, font=font)
            width, height = max(1, int(width)), max(1, int(height))
            canvas = Image.new("L", (width + 2, height + 2))
            ImageDraw.Draw(canvas).text((1, 1), char, font=font, fill=255)
            box = canvas.getbbox()
            # Text is drawn from its ascender line, so the baseline sits `ascent` pixels below the origin (1, 1).
            below_baseline = box[3] - 1 - font.getmetrics()[0] if box else 0
            self._glyphs[key] = (canvas.crop(box) if box else None, width, height, below_baseline)
        return self._glyphs[key]

    def _warped_glyph(self, char, rng):
        """(ink mask, ink bottom below the baseline): one character rotated and warped into the font's box
        (as the stock class does), or into its own ink box when stretch_glyphs is off."""
        font_index = rng.randrange(len(self.truefonts))
        mask, width, height, below_baseline = self._glyph(font_index, char)
        if mask is None:  # a space: no ink, only its width
            return Image.new("L", (width, height)), 0
        low, high = self.character_rotate
        ink_height = mask.height
        mask = mask.rotate(rng.uniform(low, high), Image.Resampling.BILINEAR, expand=True)
        below_baseline += (mask.height - ink_height) // 2  # rotation grows the box about its centre
        if not self.params.stretch_glyphs:  # keep the ink's own proportions: a '1' stays narrow, an 'o' short
            width, height = mask.size
        reach_x = width * rng.uniform(*self.character_warp_dx)
        reach_y = height * rng.uniform(*self.character_warp_dy)
        x1, x2 = (int(rng.uniform(-reach_x, reach_x)) for _ in range(2))
        y1, y2 = (int(rng.uniform(-reach_y, reach_y)) for _ in range(2))
        # A quad in the rotated mask, scaled from the (width + |x1| + |x2|) x (height + ...) frame the
        # stock class resizes to, so one transform does its resize and warp together.
        frame_w, frame_h = width + abs(x1) + abs(x2), height + abs(y1) + abs(y2)
        sx, sy = mask.width / frame_w, mask.height / frame_h
        quad = (x1 * sx, y1 * sy, -x1 * sx, (frame_h - y2) * sy,
                (frame_w + x2) * sx, (frame_h + y2) * sy, (frame_w - x2) * sx, -y1 * sy)
        return mask.transform((width, height), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR), below_baseline

    def _random_color(self, rng, low, high):
        return tuple(rng.randint(low, high) for _ in range(3))

    def _ink(self, color, background):
        """The fill that pastes `color` through a glyph mask: solid, or translucent as the stock class."""
        if self.params.solid_text:
            return color
        luminance = (299 * color[0] + 587 * color[1] + 114 * color[2]) / 1000
        opacity = min(1.0, max(MIN_INK_OPACITY, luminance * INK_GAIN / 255))
        # Pasting the colour pre-blended with the background through the plain mask equals pasting
        # it through a mask scaled by `opacity` (on a flat background), without a per-glyph point().
        return tuple(round(b + opacity * (c - b)) for b, c in zip(background, color))

    def _packed_lefts(self, masks, count, rng):
        """(canvas width, glyph left edges): side by side from a small margin, overlapping at random.

        The overlaps are drawn in the order the stock loop drew them while pasting, so seeded images keep their bytes.
        """
        text_width = sum(mask.width for mask in masks)
        average = text_width / count
        overlap = int(self.word_offset_dx * average)
        x, lefts = int(average * 0.1), []
        for mask in masks:
            lefts.append(x)
            x += mask.width - rng.randint(0, overlap)
        return max(text_width, self.params.image_width), lefts

    def _pitched_lefts(self, masks, rng):
        """Glyph left edges: centres char_pitch apart (each jittered), the row about the image's centre."""
        p = self.params
        first = (p.image_width - (len(masks) - 1) * p.char_pitch) / 2 + rng.uniform(*p.row_shift)
        return [round(first + i * p.char_pitch + rng.uniform(-p.char_jitter, p.char_jitter) - mask.width / 2)
                for i, mask in enumerate(masks)]

    def render(self, text, rng):
        """The captcha image (RGB, image_width x image_height) of `text`, drawn with `rng`."""
        p = self.params
        background = self._random_color(rng, p.background_min, p.background_max)
        color = self._random_color(rng, p.text_color_min, p.text_color_max)
        glyphs = []
        for char in text:
            if rng.random() < self.word_space_probability:
                glyphs.append(self._warped_glyph(" ", rng))
            glyphs.append(self._warped_glyph(char, rng))
        masks = [mask for mask, _ in glyphs]
        if p.char_pitch > 0:
            canvas_width, lefts = p.image_width, self._pitched_lefts(masks, rng)
        else:
            canvas_width, lefts = self._packed_lefts(masks, len(text), rng)
        image = Image.new("RGB", (canvas_width, p.image_height), background)
        if p.noise_lines[1] > 0 and p.noise_lines_under_text:
            self._noise_lines(ImageDraw.Draw(image), rng)
        ink = self._ink(color, background)
        # Sites do not always centre the text vertically; drawn only when asked (seeded images keep their bytes).
        shift_y = round(rng.uniform(*p.row_shift_y)) if any(p.row_shift_y) else 0
        for (mask, below_baseline), x in zip(glyphs, lefts):
            if p.color_per_char:
                ink = self._ink(self._random_color(rng, p.text_color_min, p.text_color_max), background)
            if p.baseline:
                top = round(self._baseline_y + below_baseline - mask.height)
            else:
                top = (p.image_height - mask.height) // 2
            image.paste(ink, (x, top + shift_y), mask)
        if canvas_width > p.image_width:
            image = image.resize((p.image_width, p.image_height), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(image)
        self._noise_dots(draw, rng, color)
        for _ in range(p.noise_curves):
            self._noise_curve(draw, rng, color)
        if p.noise_lines[1] > 0 and not p.noise_lines_under_text:
            self._noise_lines(draw, rng)
        if p.smooth:
            image = image.filter(ImageFilter.SMOOTH)
        return image

    def _noise_dots(self, draw, rng, color):
        w, h = self.params.image_width, self.params.image_height
        for _ in range(self.params.noise_dots):
            x, y = rng.randint(0, w), rng.randint(0, h)
            draw.line(((x, y), (x - 1, y - 1)), fill=color, width=self.params.noise_dot_width)

    def _noise_curve(self, draw, rng, color):
        """An arc across the text, from the left fifth of the image towards the right."""
        w, h = self.params.image_width, self.params.image_height
        x1 = rng.randint(0, w // 5)
        x2 = rng.randint(w // 5, w)
        y1 = rng.randint(h // 5, h - h // 5)
        y2 = rng.randint(y1, max(y1, h - h // 5))
        start, end = rng.randint(0, 20), rng.randint(160, 200)
        draw.arc((x1, y1, x2, y2), start, end, fill=color, width=self.params.noise_curve_width)

    def _noise_lines(self, draw, rng):
        """Short straight segments anywhere, over the text (as on the swust site)."""
        p = self.params
        for _ in range(rng.randint(*p.noise_lines)):
            x, y = rng.uniform(0, p.image_width), rng.uniform(0, p.image_height)
            length = rng.uniform(*p.noise_line_length)
            angle = math.radians(rng.uniform(*p.noise_line_angle))
            gray = rng.randint(*p.noise_line_gray)
            end = (x + length * math.cos(angle), y + length * math.sin(angle))
            draw.line(((x, y), end), fill=(gray, gray, gray), width=1)

    def sample(self, rng):
        """(label, image): a random label from the charset, drawn with the same `rng`."""
        label = random_label(rng, self.params.charset, self.params.captcha_length)
        return label, self.render(label, rng)

    def generate_image(self, chars, bg_color=None, fg_color=None):
        """Stock-compatible entry point (unseeded): a fresh random.Random per call."""
        return self.render(chars, random.Random())


class StyleMix:
    """Captchas of several styles in one data set (a site that changed its look): each image's style is
    picked by its own random source, so mixes stay seedable. Image size comes from the mix's settings."""

    def __init__(self, params):
        # Imported here: parameters.py holds the presets, and only a mix needs them at this point.
        from parameters import STYLES, make_parameters
        unknown = [name for name in params.style_mix if name not in STYLES]
        if unknown:
            raise StyleError(f"style_mix names unknown styles {unknown} (choose from {', '.join(STYLES)})")
        if any(STYLES[name].get("style_mix") for name in params.style_mix):
            raise StyleError("style_mix cannot name a style that is itself a mix")
        self.params = params
        classes = set(params.charset.lower() if params.ignore_case else params.charset)
        self.generators = []
        for name in params.style_mix:
            style = make_parameters({"style": name, "style_mix": (), "image_width": params.image_width,
                                     "image_height": params.image_height, "captcha_length": params.captcha_length,
                                     "ignore_case": params.ignore_case}, base=params)
            outside = sorted(set(style.charset.lower() if params.ignore_case else style.charset) - classes)
            if outside:
                raise StyleError(f"style {name!r} draws {''.join(outside)!r}, outside the charset {params.charset!r}")
            self.generators.append(StyledCaptcha(style))

    def sample(self, rng):
        return rng.choice(self.generators).sample(rng)

    def render(self, text, rng):
        """`text` drawn in one of the styles, picked with `rng`."""
        return rng.choice(self.generators).render(text, rng)


def make_generator(params):
    """The generator `params` describe: one style, or a mix of named styles (style_mix)."""
    return StyleMix(params) if params.style_mix else StyledCaptcha(params)


def random_label(rng, charset, length):
    """Characters drawn uniformly from the charset."""
    return "".join(rng.choice(charset) for _ in range(length))


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
