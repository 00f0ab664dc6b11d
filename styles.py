"""Named generator styles (`--style=NAME`): each a {setting: value} map in the form of a style file (what
fit_style.py writes and generate_captcha.py keeps as .generator.json), applied before the command line's
settings. The seed style, the styles of the shared sites, and the documented default looks of the common
captcha libraries (their knobs are in looks.py).
"""

DIGITS = "0123456789"
LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
# Every render_jitter family (custom_captcha_image.JITTER's): the default, and the choices.
JITTERS = ("weight", "edges", "resample", "jpeg", "blur", "contrast", "scale", "color")

# The libraries' documented default looks, and the two shared sites drawn with them. Fonts are named by
# family (fontconfig): the libraries ship their own fonts, so these are the closest free families.
LIBRARY_STYLES = {
    "kaptcha": {  # Kaptcha (Java) defaults: 200x50, 5 characters of abcde2345678gfynmnpwx in black 40 px Arial or
        # Courier bold, 2 px apart, a curve of noise, the water-ripple warp, a light grey to white gradient, a
        # 1 px black border
        "image_width": 200, "image_height": 50, "charset": "2345678abcdefgmnpwxy", "captcha_length": "5",
        "fonts": ("Liberation Sans:bold", "Liberation Mono:bold"), "font_sizes": (36, 38, 40),
        "stretch_glyphs": False, "baseline": True, "rotation": 0.0, "warp_x": (0.0, 0.0), "warp_y": (0.0, 0.0),
        "space_probability": 0.0, "char_spacing": (2.0, 2.0), "left_margin": (8.0, 16.0), "solid_text": True,
        "text_color_min": 0, "text_color_max": 0, "background_min": 255, "background_max": 255,
        "background_gradient": (63.0, 63.0), "noise_curves": 1, "noise_curve_width": 2, "noise_dots": 0,
        "ripple": (2.5, 24.0), "border_width": 1, "smooth": False, "render_jitter": (),
    },
    "securimage": {  # Securimage (PHP) defaults: 215x80, 6 characters of a charset without look-alikes, grey
        # #707070 bold sans text 0.4 of the height, distorted, random lines crossing it, speckles, white
        "image_width": 215, "image_height": 80, "charset": "23456789ABCDEFGHKLMNPRSTUVWYZabcdefghklmnprstuvwyz",
        "captcha_length": "6", "fonts": ("DejaVu Sans:bold",), "font_sizes": (32,), "stretch_glyphs": False,
        "baseline": True, "rotation": 10.0, "warp_x": (0.0, 0.05), "warp_y": (0.0, 0.05), "space_probability": 0.0,
        "char_spacing": (0.0, 4.0), "left_margin": (10.0, 30.0), "solid_text": True, "text_color_min": 112,
        "text_color_max": 112, "background_min": 255, "background_max": 255, "ripple": (2.5, 40.0),
        "noise_curves": 0, "noise_dots": 0, "branch_lines": 5, "branch_depth": 1,
        "branch_line_width": (1, 2), "speckles": 200, "smooth": False, "render_jitter": (),
    },
    "gregwar": {  # Gregwar/Captcha (PHP) defaults: 150x40, 5 characters in one of several fonts, each turned a
        # little, on a random light colour, random lines behind and in front, a sine distortion
        "image_width": 150, "image_height": 40, "charset": "abcdefghijklmnpqrstuvwxyz123456789",
        "captcha_length": "5", "fonts": ("DejaVu Sans:bold", "DejaVu Serif:bold", "Liberation Serif:bold",
                                         "DejaVu Sans Mono:bold"),
        "font_sizes": (22, 24, 26), "stretch_glyphs": False, "baseline": True, "rotation": 12.0,
        "warp_x": (0.0, 0.05), "warp_y": (0.0, 0.05), "space_probability": 0.0, "char_spacing": (0.0, 3.0),
        "left_margin": (6.0, 20.0), "char_jitter_y": 3.0, "solid_text": True, "color_per_char": True,
        "text_color_min": 0, "text_color_max": 150, "background_min": 180, "background_max": 255,
        "noise_curves": 0, "noise_dots": 0, "noise_lines": (4, 8), "noise_line_length": (30.0, 120.0),
        "noise_line_gray": (60, 200), "noise_lines_under_text": True, "noise_polylines": 1,
        "noise_polyline_width": (1, 2), "ripple": (1.5, 30.0), "smooth": False, "render_jitter": (),
    },
    "simple_captcha": {  # django-simple-captcha defaults: 4 capitals in 22-point Vera (DejaVu Sans is its
        # descendant) of #001100 on white, each turned by up to 35 degrees, noise arcs and dots, smoothed
        "image_width": 100, "image_height": 32, "charset": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "captcha_length": "4",
        "fonts": ("DejaVu Sans",), "font_sizes": (22,), "stretch_glyphs": False, "rotation": 35.0,
        "warp_x": (0.0, 0.0), "warp_y": (0.0, 0.0), "space_probability": 0.0, "char_spacing": (-2.0, 1.0),
        "left_margin": (6.0, 12.0), "solid_text": True, "text_color_min": 0, "text_color_max": 17,
        "background_min": 255, "background_max": 255, "noise_curves": 1, "noise_dots": 25, "noise_dot_width": 1,
        "render_jitter": (),
    },
    "pku_elective": {  # shared/datasets/pku_elective, by eye: a Kaptcha-like 130x52, white letters in a dark
        # rough outline (hollow glyphs filled white) on a grey gradient, a fisheye bulge, a green border
        "image_width": 130, "image_height": 52, "charset": "2345678abcdefgmnpwxy", "captcha_length": "4",
        "fonts": ("DejaVu Sans:bold", "Liberation Sans:bold", "DejaVu Sans"), "font_sizes": (34, 36, 38),
        "stretch_glyphs": False, "baseline": True, "rotation": 8.0, "warp_x": (0.0, 0.05), "warp_y": (0.0, 0.05),
        "space_probability": 0.0, "char_spacing": (-2.0, 2.0), "left_margin": (8.0, 18.0), "row_shift_y": (-2.0, 2.0),
        "solid_text": True, "text_color_min": 60, "text_color_max": 140, "background_min": 230, "background_max": 250,
        "background_gradient": (40.0, 70.0), "outline_width": 1, "outline_fill": "white", "ragged": (0.5, 1.5),
        "fisheye": 0.25, "border_width": 1, "border_color": "#66b366", "noise_curves": 0, "noise_dots": 0,
        "smooth": False, "render_jitter": (),
    },
    "advrpg_digits": {  # shared/datasets/advrpg_digits, by eye: 240x80 transparent PNG, four handwriting-like
        # italic digits in one random colour, each stroke drawn as a band of dots, touching, a wavy dotted line,
        # sparkles and bubbles in tints
        "image_width": 240, "image_height": 80, "charset": DIGITS, "captcha_length": "4",
        "fonts": ("Comic Neue:italic", "Comic Neue Light:italic", "Comic Neue:bold:italic"), "font_sizes": (44, 50, 56),
        "stretch_glyphs": False, "baseline": True, "rotation": 15.0, "warp_x": (0.0, 0.15), "warp_y": (0.0, 0.15),
        "space_probability": 0.0, "char_spacing": (-6.0, 2.0), "left_margin": (30.0, 90.0), "row_shift_y": (-6.0, 2.0),
        "char_jitter_y": 4.0, "solid_text": True, "text_color_min": 30, "text_color_max": 160, "background_min": 255,
        "background_max": 255, "glyph_dots": 1.6, "glyph_dot_size": (0.8, 1.3), "glyph_dot_jitter": 0.4,
        "dotted_lines": 1, "dotted_line_spacing": 1.5, "sparkles": 25, "sparkle_size": (0.5, 3.5), "speckles": 20,
        "transparent": True,
        "noise_curves": 0, "noise_dots": 0, "smooth": False, "image_format": "png", "render_jitter": (),
    },
}


# The renderer every measured run of the swust and captcha_images_v2 styles drew with: the benchmark once
# built these styles over the seed style's settings, which they kept (Pillow < 8 text boxes, nearest-neighbour
# glyph warps, a digit as likely as a letter, PNG). Stated here, users draw what was measured.
MEASURED_RENDERER = {"font_box": "textsize", "glyph_resample": "nearest", "squeeze_resample": "nearest",
                     "char_class_weights": (1.0, 1.0, 1.0), "image_format": "png"}


# Named generator styles: each maps settings to values applied before command-line overrides.
STYLES = {
    "seed": {  # the original project's own generator as it ran in 2019 (shared/datasets/original_style): the
        # captcha package's 64x24 look (DroidSansMono 20/22/23, +/-10 degrees, 1 arc, 5 dots) drawn by Pillow < 7
        # (glyphs stretched to textsize boxes by a nearest-neighbour resize and then a nearest-neighbour warp, text
        # pasted from a transparent layer so its edges darken, no opacity floor), its arc reaching the right fifth,
        # labels a digit, lower- or upper-case letter with 1/3 chance each, saved lossless. Glyphs match 24 drawn by
        # Pillow 6.2.2 within 2 levels (tests/data); drawn in one warp, a 20-minute model read the original's
        # captchas at 0.9428 of its own test, in two at 0.9857.
        "font_box": "textsize", "glyph_resample": "nearest", "glyph_passes": 2, "squeeze_resample": "nearest",
        "dark_edges": True,
        "ink_opacity_floor": 0.0, "noise_curve_end": (0.8, 1.0), "char_class_weights": (1.0, 1.0, 1.0),
        "image_format": "png",
        # No render jitter: this style is the site's own renderer, so jitter only hides what tells O from 0 and
        # v from V at 64x24 (20 minutes: original_style 0.9190 without it, 0.8610 with; own test 0.9748, 0.9339).
        "render_jitter": (),
    },
    # the seed style before its 2019 renderer was rebuilt: the captcha 0.7 package's look at 64x24, uniform labels,
    # JPEG q75
    "seed_v1": {},
    "captcha_default": {  # the captcha package's own ImageCaptcha defaults
        "image_width": 160, "image_height": 60, "font_sizes": (42, 50, 56), "rotation": 30.0,
        "noise_dots": 30, "noise_dot_width": 3,
        # No render jitter: like seed, this style stands for one known renderer, the package's (its O and 0,
        # stretched to one box, differ by a few percent of stroke width and roundness, which jitter's scale and
        # weight undo: 4-6 characters, ctc, 40 minutes: 0.9800 without, 0.9455 with).
        "render_jitter": (),
    },
    # SWUST CAS login as its 20191218 (100x35) and 20200226 (90x30) batches in shared/datasets/swust_cas:
    "swust_2020": {
        # upright bold/regular sans, a solid random colour per character at a fixed pitch, black line segments
        # over it. 100x35 is 20191218's own size and the largest of the batches (the others are scaled up to it when
        # read). These batches draw digits and capitals only; the site ignores case and its labels are lower case,
        # so the model learns the folded classes 0-9a-z (drawing lower-case glyphs too made 0/o, 5/s, I/l ambiguous).
        "image_width": 100, "image_height": 35, "charset": DIGITS + UPPER, "ignore_case": True,
        # Seven sans cuts, a font per glyph: with the first four only, the model read the site's B as 8 and
        # G as C, confidently; with these it reads shapes (generated only: 0.9423 of all swust, from 0.9157).
        "fonts": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                  "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",
                  "/usr/share/fonts/truetype/crosextra/Carlito-Bold.ttf"),
        "stretch_glyphs": False, "font_sizes": (24, 25, 26), "rotation": 3.0, "warp_x": (0.0, 0.05),
        "warp_y": (0.0, 0.05),
        "space_probability": 0.0, "char_pitch": 18.0, "char_jitter": 1.5, "row_shift": (0.0, 8.0),
        "row_shift_y": (-4.0, 5.0),  # 20200226's text sits low, its letters' feet near the bottom edge; 20191218's high
        "text_color_min": 20, "text_color_max": 230, "color_per_char": True, "solid_text": True,
        "background_min": 250, "background_max": 255, "noise_curves": 0, "noise_dots": 0,
        "noise_lines": (10, 70), "noise_line_length": (6.0, 14.0), "noise_line_angle": (0.0, 80.0), "smooth": False,
        **MEASURED_RENDERER, "render_jitter": (),  # (no jitter: see swust)
    },
    "captcha_images_v2": {  # the Kaggle captcha_images_v2 set (shared/datasets/captcha_images_v2): 200x50 grey
        # PNG, one fixed grey gradient (192 at the left to 252 at the right), 5 black bold sans characters of
        # 2345678bcdefgmnpwxy on one baseline from x = 19, spaced by their widths and touching, some frayed;
        # one thick black polyline from left of the text to near the right edge
        "image_width": 200, "image_height": 50, "charset": "2345678bcdefgmnpwxy", "captcha_length": 5,
        # DejaVu Sans, and its monospaced cut for a glyph in two: the set's m is as narrow as a monospaced
        # one while its other glyphs are DejaVu Sans's, and with DejaVu Sans alone the model read its m as n.
        "fonts": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                  "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"),
        "font_sizes": (38, 39, 40), "stroke_weight": (0.3, 0.8),
        "stretch_glyphs": False, "baseline": True, "rotation": 2.0, "warp_x": (0.0, 0.03), "warp_y": (0.0, 0.03),
        "space_probability": 0.0, "char_spacing": (1.0, 5.0), "left_margin": (19.0, 20.0), "row_shift_y": (2.0, 4.0),
        "solid_text": True, "text_color_min": 0, "text_color_max": 0, "background_min": 252, "background_max": 254,
        "background_gradient": (59.0, 60.0), "grey": True, "ragged": (0.0, 3.0), "noise_curves": 0, "noise_dots": 0,
        "noise_polylines": 1, "noise_polyline_width": (3, 4), "noise_polyline_bends": (1, 3), "smooth": False,
        "image_format": "png",
        "render_jitter": tuple(jitter for jitter in JITTERS if jitter != "color"),  # grey: no colour
        **MEASURED_RENDERER,
    },
    "swust_2019": {  # SWUST CAS login as its 20190121 batch (92x34, drawn here at 100x35): a pastel background
        # under a mesh of thin grey strokes, dark upright or italic narrow sans (and Carlito: the batch's glyphs
        # look like Calibri, of which Carlito is the free metric twin) of mixed case and size on one baseline, from
        # the 22 characters that batch uses (labels lower case).
        "image_width": 100, "image_height": 35, "charset": "12345678abcdefhknpqxyzABCDEFHKNPQXYZ", "ignore_case": True,
        "fonts": ("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
                  "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Oblique.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Italic.ttf",
                  "/usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf",
                  "/usr/share/fonts/truetype/crosextra/Carlito-Italic.ttf"),
        "stretch_glyphs": False, "font_sizes": (20, 22, 24, 26, 28, 30, 32), "rotation": 3.0,
        "warp_x": (0.0, 0.05), "warp_y": (0.0, 0.05), "space_probability": 0.0, "char_pitch": 23.0,
        "char_jitter": 3.0, "row_shift": (-3.0, 3.0), "row_shift_y": (-2.0, 2.0), "baseline": True,
        "text_color_min": 15, "text_color_max": 120, "color_per_char": True, "solid_text": True,
        "background_min": 190, "background_max": 250, "noise_curves": 0, "noise_dots": 0,
        "noise_lines": (50, 100), "noise_line_length": (5.0, 20.0), "noise_line_angle": (0.0, 180.0),
        "noise_line_gray": (130, 215), "noise_lines_under_text": True, "smooth": False,
        **MEASURED_RENDERER, "render_jitter": (),  # (no jitter: see swust)
    },
    "arithmetic": {  # an expression to answer, such as 3+8=? (many sites built on kaptcha-like generators): coloured
        # bold sans digits and operators on one baseline, spaced by their widths, an arc and dots over them.
        # The label is the expression as drawn; predictor.py (userPred, userTest, the API) also gives its answer.
        "captcha_kind": "arithmetic", "image_width": 128, "image_height": 40,
        "fonts": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
        "font_sizes": (22, 24, 26), "stretch_glyphs": False, "baseline": True, "rotation": 8.0,
        "warp_x": (0.0, 0.1), "warp_y": (0.0, 0.1), "space_probability": 0.0, "char_spacing": (-1.0, 3.0),
        "left_margin": (4.0, 16.0), "row_shift_y": (-3.0, 3.0), "char_jitter_y": 2.0, "solid_text": True,
        "color_per_char": True, "text_color_min": 0, "text_color_max": 170, "noise_curve_width": 2,
        "noise_dots": 30, "noise_dot_width": 2, "image_format": "png",
    },
    "color_target": {  # "type the characters in red": letters and digits in several colours, of which the label
        # holds only the red ones, in order; the others are distractors drawn between them
        "captcha_kind": "color_target", "image_width": 128, "image_height": 40,
        "charset": "23456789ABCDEFGHJKLMNPQRSTUVWXYZ",  # without 0/O, 1/I: sites that ask for colours drop them too
        "captcha_length": "4", "palette": ("red", "blue", "green", "black"), "target_color": "red",
        "color_distractors": (2, 3),
        "fonts": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                  "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
        "font_sizes": (18, 20, 22), "stretch_glyphs": False, "baseline": True, "rotation": 10.0,
        "warp_x": (0.0, 0.1), "warp_y": (0.0, 0.1), "space_probability": 0.0, "char_spacing": (-1.0, 1.0),
        "left_margin": (4.0, 8.0), "row_shift_y": (-3.0, 3.0), "char_jitter_y": 2.0, "solid_text": True,
        "background_min": 225, "noise_curves": 0, "noise_dots": 20, "noise_dot_width": 2,
        "render_jitter": tuple(jitter for jitter in JITTERS if jitter != "color"),  # colour is the label here
    },
    "swust": {  # SWUST CAS login, every batch in shared/datasets/swust_cas: its two looks, half the captchas each
        "style_mix": ("swust_2019", "swust_2020"), "image_width": 100, "image_height": 35,
        "charset": DIGITS + UPPER, "ignore_case": True,  # the folded classes 0-9a-z the model learns
        # No render jitter: no run measured it helping here. Without it (24 + 10 minutes): 0.9453 of all swust
        # generated only, 0.9766 self-trained with zero labels; with it (last round, a slower machine): 0.9423
        # and 0.9691.
        "render_jitter": (), **MEASURED_RENDERER,  # (its members draw; the mix's own settings name the file format)
    },
    "plain": {  # the look many sites' own few-line generators draw: upright sans glyphs at a fixed pitch, one size,
        # dark or coloured on a light plain background, a few thin lines over them. fit_style.py always starts a
        # search from it placed as the site's captchas place their text (site_layout.py)
        "image_width": 100, "image_height": 35, "fonts": ("DejaVu Sans:bold", "DejaVu Sans", "Liberation Sans:bold",
                                                          "Liberation Sans"),
        "font_sizes": (24, 26, 28), "stretch_glyphs": False, "rotation": 5.0, "warp_x": (0.0, 0.0),
        "warp_y": (0.0, 0.0), "space_probability": 0.0, "char_pitch": 20.0, "char_jitter": 1.5, "solid_text": True,
        "text_color_min": 0, "text_color_max": 160, "background_min": 240, "background_max": 255,
        "noise_curves": 0, "noise_dots": 0, "noise_lines": (4, 10), "noise_line_length": (8.0, 24.0),
        "smooth": False, "image_format": "png", "render_jitter": (),
    },
    **LIBRARY_STYLES,  # kaptcha, securimage, gregwar, simple_captcha, pku_elective, advrpg_digits (below)
}


# One line on each style, for --help (the comments above say more).
DESCRIPTIONS = {
    "seed": "the original project's 2019 generator: 64x24, 4 of 62 characters, the captcha package's look (default)",
    "seed_v1": "this project's earlier look of seed: the captcha 0.7 package at 64x24, uniform labels, JPEG",
    "captcha_default": "the captcha package's own ImageCaptcha defaults: 160x60, large turned glyphs, dots",
    "swust_2020": "SWUST CAS login's 2019-12/2020 batches: coloured upright sans at a fixed pitch, short black lines",
    "captcha_images_v2": "the Kaggle captcha_images_v2 set: 200x50 grey, 5 black sans characters, one thick line",
    "swust_2019": "SWUST CAS login's 2019-01 batch: dark narrow sans of mixed size on pastel, a mesh of grey strokes",
    "arithmetic": "an expression to answer (3+8=?): coloured bold digits and operators, an arc and dots",
    "color_target": "type the red characters: letters and digits in several colours, the red ones the label",
    "swust": "SWUST CAS login, every batch: swust_2019 and swust_2020 mixed half and half",
    "plain": "upright sans at a fixed pitch on a light plain background, a few thin lines: the fit's measured start",
    "kaptcha": "Kaptcha (Java) defaults: 200x50, 5 black characters, a noise curve, water ripple, a gradient",
    "securimage": "Securimage (PHP) defaults: 215x80, 6 grey characters, branching random lines, speckles",
    "gregwar": "Gregwar/Captcha (PHP) defaults: 150x40, 5 turned characters in several fonts, lines, a sine warp",
    "simple_captcha": "django-simple-captcha defaults: 100x32, 4 turned capitals, noise arcs and dots",
    "pku_elective": "a Kaptcha-like site: 130x52 hollow white letters in a dark outline, fisheye, a green border",
    "advrpg_digits": "a site of dotted digits: 240x80 transparent PNG, 4 italic digits drawn as dots, a dotted line",
}

PRESET_KEYS = sorted({key for preset in STYLES.values() for key in preset})  # what some style preset sets
