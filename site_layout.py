"""Where a site's captchas put their text, measured from the ink of unlabelled captchas: a start for
fit_style.py that the pixel-statistics distance would not find by itself.

The distance compares averages (ink shares, colour and edge histograms), and heavy, overlapping, turned
glyphs can match those as well as the site's upright, spaced ones (swust_cas: every fitted style kept the
`seed` preset's layout, and a model of it read the site at 0.06; docs/RESULTS.md). So the fit also starts
from the `plain` preset placed as the site places its text: its height (font size), its row's extent
(left edge and pitch of the characters), its height in the image, whether each character has a colour
of its own, and the range of the text's and the paper's colours. Thin noise lines are left out of the
measure by keeping only ink at least two pixels thick.
"""
import numpy as np

INK_DISTANCE = 80.0  # RGB distance from the paper (an image's median colour) that makes a pixel text ink
EDGE = 2  # pixels at each side left out (a border, the frame of a scan)
CAP_HEIGHT = 0.72  # height of a capital or digit over the font size (em) of the sans fonts `plain` draws
FILLED = 0.75  # a glyph's width over the pitch of its row: the row spans (length - 1 + FILLED) pitches
OWN_COLOURS = 40.0  # spread of the characters' colours (RGB distance) above which each has its own
TEXT_SHARE = (3, 97)  # percentiles of the characters' colour channels that bound the text's colours
PAPER_SHARE = (25, 75)  # and of the papers' channels: the middle half, since each channel is drawn on its own and
# a wide range of them draws saturated papers the site does not have (swust_cas: 3-97% is 200-252, most are grey)


def thick_ink(images):
    """(N, H-1, W-1) bool: pixels whose 2x2 block is all ink (strokes of glyphs, not one-pixel lines). Ink
    is what differs from the paper in colour, dark or light (white glyphs on grey, pale ones on white)."""
    pixels = images.astype(np.float32)  # (N, H, W, 3)
    paper = paper_colours(images)[:, None, None]  # (N, 1, 1, 3)
    ink = np.sqrt(((pixels - paper) ** 2).sum(axis=-1)) > INK_DISTANCE  # (N, H, W)
    ink[:, :EDGE], ink[:, -EDGE:], ink[:, :, :EDGE], ink[:, :, -EDGE:] = False, False, False, False
    return ink[:, :-1, :-1] & ink[:, 1:, :-1] & ink[:, :-1, 1:] & ink[:, 1:, 1:]


def paper_colours(images):
    """(N, 3) float: each captcha's (N, H, W, 3) paper, its median colour."""
    return np.median(images.reshape(len(images), -1, 3).astype(np.float32), axis=1)


def extent(core):
    """(left, right, top, bottom) of one image's thick ink (H, W) bool, its outermost 3% left out; None
    when it has too little ink to say."""
    ys, xs = np.nonzero(core)
    if len(xs) < 20:
        return None
    left, right = np.percentile(xs, (3, 97))
    top, bottom = np.percentile(ys, (3, 97))
    return left, right + 2, top, bottom + 2  # (+2: the 2x2 block's far pixel, and the last one inclusive)


def char_colours(image, core, left, right, length):
    """(n, 3) float: the colour of each character of one image (H, W, 3), as the median of the thick ink in
    each of `length` equal slices of the row: robust to the ink at a stroke's edges (blended with the paper)
    and to noise lines crossing a glyph (a dark line over a pastel glyph is dark thick ink where they meet)."""
    edges = np.linspace(left, right, length + 1).astype(int)
    pixels = image[:-1, :-1].astype(np.float32)  # (H-1, W-1, 3), aligned with core
    colours = [np.median(pixels[:, a:b][core[:, a:b]], axis=0)
               for a, b in zip(edges[:-1], edges[1:]) if core[:, a:b].sum() >= 4]
    return np.asarray(colours, np.float32).reshape(-1, 3)


def measured_layout(images, length):
    """{setting: value} of the `plain` preset that places text as the real captchas (N, H, W, 3) uint8 do;
    {} when too few of them have ink to measure."""
    cores = thick_ink(images)
    found = [(extent(core), image, core) for image, core in zip(images, cores)]
    found = [(box, image, core) for box, image, core in found if box is not None]
    if len(found) < max(3, len(images) // 4):
        return {}
    # medians of each image's own measures (not a box of median edges: a folder of two looks, one high and
    # one low, would seem to have text as tall as both)
    boxes = np.array([box for box, _, _ in found])  # (n, 4): left, right, top, bottom
    text_width, text_height = np.median(boxes[:, 1] - boxes[:, 0]), np.median(boxes[:, 3] - boxes[:, 2])
    centre_x, centre_y = np.median(boxes[:, :2].mean(axis=1)), np.median(boxes[:, 2:].mean(axis=1))
    height, width = images.shape[1:3]
    size = max(6.0, text_height / CAP_HEIGHT)
    pitch = max(2.0, text_width / (length - 1 + FILLED))
    shift_x, shift_y = centre_x - width / 2, centre_y - height / 2
    colours = [char_colours(image, core, *box[:2], length) for box, image, core in found]
    # each character a colour of its own: the spread of one image's characters' colours (RGB distance)
    coloured = np.mean([len(own) > 1 and np.std(own, axis=0).sum() > OWN_COLOURS for own in colours]) > 0.5
    return {**colour_ranges(images, np.concatenate(colours)),
            "font_sizes": tuple(round(size * factor) for factor in (0.95, 1.0, 1.05)),
            "char_pitch": round(float(pitch), 1), "char_jitter": round(float(pitch) / 12, 1),
            "row_shift": (round(float(shift_x) - 2, 1), round(float(shift_x) + 2, 1)),
            "row_shift_y": (round(float(shift_y) - 2, 1), round(float(shift_y) + 2, 1)),
            "color_per_char": bool(coloured)}


def colour_ranges(images, colours):
    """text_color_min/max and background_min/max (0-255, each channel drawn between them): the range of the
    channels of the characters' colours (n, 3) and of the captchas' (N, H, W, 3) papers (median colours).
    Pale text on white and dark text on grey differ from the `plain` preset's dark-on-white in just these."""
    text = np.percentile(colours, TEXT_SHARE)
    paper = np.percentile(paper_colours(images), PAPER_SHARE)
    return {"text_color_min": int(text[0]), "text_color_max": int(round(text[1])),
            "background_min": int(paper[0]), "background_max": int(round(paper[1]))}
