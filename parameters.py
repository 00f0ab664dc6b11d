"""Every setting of every script, in one place: the single source of truth.

Settings come in groups: a dataclass each (DataSettings, ModelSettings, ... and looks.py's LookSettings), whose
fields are setting(default, help, range) (setting.py). Parameters is all of them in one object. Each script's
command line (command_line.py) takes the groups its SCRIPT_GROUPS entry names, and --help lists those:

    python generate_captcha.py --train_count=20000 --font_sizes=20,22,23 --noise_dots=0
    python main.py --epochs=5 --batch_size=128
    python generate_captcha.py --style=captcha_default      # a named preset (see STYLES)
    python main.py --help                                    # lists main.py's settings

Every value is checked when it is read (command line, preset, style file): its type, its range, its choices, and
a misspelt key (the nearest setting is suggested). make_parameters() takes every setting.

Scripts never read module-level copies of these values: each builds one `Parameters` object with
`parse_args()` and passes it down, so an override reaches every module (and DataLoader workers).
"""
import ast
import dataclasses
import difflib
import functools
import json
import os
import re
from dataclasses import dataclass

from errors import ProjectError
from head_names import HEAD_FORMS, auto_head, class_chars, length_bounds
from looks import LookSettings
from setting import choices_of, range_problem, setting
from styles import DIGITS, JITTERS, LOWER, PRESET_KEYS, STYLES, UPPER

@dataclass
class DataSettings:
    """Labelled image folders, written by generate_captcha.py and read by training and dataset.py."""
    GROUP = "data"
    train_dir: str = setting("data/captcha/train", "folder of labelled training images")
    test_dir: str = setting("data/captcha/test", "folder of labelled test images")
    data_dir: str = setting("",
        "one labelled folder to split into train/test by test_split ('' = use train_dir and test_dir)")
    test_split: float = setting(0.2, "fraction of data_dir held out for testing (seeded by seed)", low=0, below=1)
    train_count: int = setting(200000, "captchas generated into train_dir", low=0, high=10 ** 8)
    test_count: int = setting(10000, "captchas generated into test_dir", low=0, high=10 ** 8)
    cache_dir: str = setting("data/cache",
        "decoded image folders are cached here as uint8 arrays ('' = decode every time)")
    workers: int = setting(0,
        "worker processes for generation and data loading (0 = one per CPU core)", low=0, high=1024)
    strict: bool = setting(False, "fail on a bad image or label instead of reporting and skipping it")


@dataclass
class CaptchaSettings:
    """What every captcha holds (characters, length, image size) and the seed that draws them."""
    GROUP = "captcha"
    charset: str = setting(DIGITS + LOWER + UPPER, "the character classes, in class-index order")
    captcha_length: str = setting("4", "characters per captcha: a count (4), or a range (4-6) drawn per captcha")
    ignore_case: bool = setting(False, "fold labels to lower case (for sites whose answers ignore case)")
    captcha_kind: str = setting("text",
        "what a captcha asks: text (its characters), arithmetic (an expression such as 3+8=?, read and answered), "
        "color_target (only the characters in target_color)", choices=("text", "arithmetic", "color_target"))
    arithmetic_operands: tuple[int, ...] = setting((0, 20),
        "captcha_kind=arithmetic: range of each operand, min,max (charset and captcha_length follow from these three)",
        low=0, high=10 ** 6)
    arithmetic_operators: str = setting("+-x",
        "captcha_kind=arithmetic: operators drawn, from + - x × * ÷ / (x × * multiply, ÷ / divide)")
    arithmetic_endings: tuple[str, ...] = setting(("=?", "="),
        "captcha_kind=arithmetic: what follows the second operand, one drawn per captcha")
    arithmetic_negative: bool = setting(False, "captcha_kind=arithmetic: also draw subtractions that answer below zero")
    infer_charset: bool = setting(False,
        "main.py: take charset and captcha_length from the training folders' labels even where a folder's "
        ".generator.json names them (without it, labels are read for whatever no flag gives)")
    image_width: int = setting(64, "image width, pixels (also the model's input width)", low=8, high=10000)
    image_height: int = setting(24, "image height, pixels (also the model's input height)", low=8, high=10000)
    max_image_side: int = setting(2000,
        "largest image_width or image_height the generator accepts, pixels (a typo must not need gigabytes)",
        low=8, high=10 ** 5)
    seed: int = setting(0, "seed of labels, images, splits and weight init", low=0, high=2 ** 32 - 1)


@dataclass
class StyleSettings:
    """How generated captchas look."""
    GROUP = "style"
    style: str = setting("seed", "named style preset applied before other overrides (the end of --help lists them)",
        choices=tuple(STYLES))
    style_file: str = setting("",
        "a style file (fit_style.py writes one; a generated folder's .generator.json is one): its settings apply over "
        "--style's preset, under the flags given")
    style_mix: tuple[str, ...] = setting((),
        "draw each captcha in one of these styles (names, or style files), picked at random (repeat one to weight it);"
        " empty = this style alone")
    fonts: tuple[str, ...] = setting((), ".ttf/.otf files or folders; empty = captcha's DroidSansMono plus fonts/*.ttf")
    font_sizes: tuple[int, ...] = setting((20, 22, 23), "font sizes drawn from at random, pixels", low=1, high=1000)
    font_variety: float = setting(0.0,
        "share of characters drawn in a font of VARIETY_FONTS (many families: sans, serif, mono, narrow, rounded), at "
        "0.7-1.3 of its width, instead of --fonts, so a model learns each character in shapes beyond the style's own "
        "(0 = off)",
        low=0, high=1)
    noise_curves: int = setting(1, "arcs drawn through the text", low=0, high=1000)
    noise_curve_width: int = setting(1, "arc line width, pixels", low=0, high=100)
    noise_dots: int = setting(5, "noise dots per image", low=0, high=10 ** 5)
    noise_dot_width: int = setting(1, "noise dot size, pixels", low=0, high=100)
    noise_lines: tuple[int, ...] = setting((0, 0),
        "range of short straight line segments per image, min,max count", low=0, high=10 ** 5)
    noise_line_length: tuple[float, ...] = setting((4.0, 12.0),
        "range of line segment lengths, min,max pixels", low=0, high=10000)
    noise_line_angle: tuple[float, ...] = setting((0.0, 180.0),
        "range of line segment angles, min,max degrees (90 = downward)", low=-360, high=360)
    noise_line_gray: tuple[int, ...] = setting((0, 0),
        "range of line segment grey levels, min,max (0 = black, 255 = white)", low=0, high=255)
    noise_lines_under_text: bool = setting(False,
        "draw the line segments on the background, under the text (default: over it)")
    text_color_min: int = setting(10, "lowest value of each text colour channel (0-255)", low=0, high=255)
    text_color_max: int = setting(200, "highest value of each text colour channel (0-255)", low=0, high=255)
    color_per_char: bool = setting(False, "draw a new text colour for each character instead of one per image")
    solid_text: bool = setting(False,
        "paste glyphs in their full colour (default: translucent, as the captcha package)")
    stretch_glyphs: bool = setting(True,
        "stretch each glyph's ink to its font box, as the captcha package does (off: natural shape)")
    background_min: int = setting(238, "lowest value of each background colour channel (0-255)", low=0, high=255)
    background_max: int = setting(255, "highest value of each background colour channel (0-255)", low=0, high=255)
    rotation: float = setting(10.0, "each character rotates by up to +/- this many degrees", low=0, high=180)
    warp_x: tuple[float, ...] = setting((0.1, 0.3), "range of horizontal warp, fraction of glyph width", low=-1, high=1)
    warp_y: tuple[float, ...] = setting((0.2, 0.3), "range of vertical warp, fraction of glyph height", low=-1, high=1)
    space_probability: float = setting(0.5, "chance of a blank gap before each character", low=0, high=1)
    char_overlap: float = setting(0.25,
        "characters overlap by up to this fraction of the mean glyph width", low=-1, high=1)
    char_pitch: float = setting(0.0,
        "distance between character centres, pixels, row centred (0 = packed with char_overlap)",
        low=0, high=10000)
    char_jitter: float = setting(0.0,
        "with char_pitch: each character centre moves by up to +/- this many pixels", low=0, high=1000)
    row_shift: tuple[float, ...] = setting((0.0, 0.0),
        "with char_pitch: range of the row's shift rightwards, min,max pixels", low=-10000, high=10000)
    row_shift_y: tuple[float, ...] = setting((0.0, 0.0),
        "range of the text's shift downwards from centred, min,max pixels", low=-10000, high=10000)
    baseline: bool = setting(False,
        "sit characters on one baseline, as typed text (default: centre each one vertically)")
    smooth: bool = setting(True, "apply a smoothing filter to the finished image")
    grey: bool = setting(False, "finish the image in grey levels (R = G = B), as a grey site")
    font_box: str = setting("bbox",
        "box each glyph is stretched to and centred by: bbox (text box measured from (1, 1), as captcha >= 0.5) or "
        "textsize (Pillow < 8: advance x ascent + descent)", choices=("bbox", "textsize"))
    glyph_resample: str = setting("bilinear",
        "filter of each glyph's stretch and warp: nearest (Pillow < 7's default), bilinear, bicubic",
        choices=("nearest", "bilinear", "bicubic"))
    glyph_passes: int = setting(1,
        "resamplings of each glyph's stretch and warp: 1 (one combined transform) or 2 (resized to the warp frame, "
        "then warped, as the captcha package does)", low=1, high=2)
    squeeze_resample: str = setting("bilinear",
        "filter squeezing a text row wider than the image into it: nearest, bilinear, bicubic",
        choices=("nearest", "bilinear", "bicubic"))
    dark_edges: bool = setting(False,
        "translucent glyphs rotated and pasted from a transparent layer as Pillow < 8 did: bolder strokes, edges blend"
        " toward black (no effect with solid_text)")
    ink_opacity_floor: float = setting(0.5,
        "translucent text is at least this opaque (0-1; the captcha package has no floor, so its dark colours are "
        "faint)", low=0, high=1)
    noise_curve_end: tuple[float, ...] = setting((0.2, 1.0),
        "range of the noise arc's right end, fractions of the width (captcha < 0.5: 0.8,1)", low=0, high=2)
    background_gradient: tuple[float, ...] = setting((0.0, 0.0),
        "range of how much darker the left edge is than the right, grey levels (0 = flat)", low=-255, high=255)
    noise_polylines: int = setting(0,
        "thick polylines drawn through the text, from its left end to past its right end", low=0, high=100)
    noise_polyline_width: tuple[int, ...] = setting((2, 3), "range of polyline widths, min,max pixels", low=0, high=100)
    noise_polyline_bends: tuple[int, ...] = setting((1, 3),
        "range of bends in each polyline, min,max (at least 1)", low=1, high=100)
    stroke_weight: tuple[float, ...] = setting((0.0, 0.0),
        "range of pixels added to (negative: taken from) each side of every stroke, fractional allowed",
        low=-50, high=50)
    elastic: tuple[float, ...] = setting((0.0, 0.0),
        "range of elastic distortion: parts of each glyph move by up to this many pixels, min,max", low=0, high=1000)
    ragged: tuple[float, ...] = setting((0.0, 0.0),
        "range of ragged stroke edges: each glyph pixel is taken from up to this many pixels away, min,max",
        low=0, high=1000)
    glyph_width: tuple[float, ...] = setting((1.0, 1.0),
        "range of each glyph's horizontal stretch, min,max factor", above=0, high=10)
    char_spacing: tuple[float, ...] = setting((),
        "gap from one glyph's right edge to the next glyph, min,max pixels (negative overlaps), row from left_margin "
        "(empty = packed as the captcha package)", low=-10000, high=10000)
    left_margin: tuple[float, ...] = setting((0.0, 0.0),
        "with char_spacing: range of the first glyph's left edge, min,max pixels", low=-10000, high=10000)
    char_jitter_y: float = setting(0.0,
        "each character moves up or down by up to +/- this many pixels (a wavy baseline)", low=0, high=1000)
    off_edge: float = setting(0.0,
        "chance per image that the text runs off the left, right, top or bottom edge", low=0, high=1)
    off_edge_depth: tuple[float, ...] = setting((0.2, 0.5),
        "how far text runs off: fraction of the end glyph's width (or of the text's height) past the edge, min,max",
        low=0, high=1)
    char_class_weights: tuple[float, ...] = setting((),
        "chance weights of drawing each character from the charset's digits, lower-case, upper-case letters (empty = "
        "uniform over the charset)", low=0, high=10 ** 6)
    palette: tuple[str, ...] = setting(("red", "blue", "green", "black"),
        "captcha_kind=color_target: text colours drawn, names or #rrggbb")
    target_color: str = setting("red",
        "captcha_kind=color_target: the palette colour whose characters, in order, are the label")
    color_distractors: tuple[int, ...] = setting((2, 3),
        "captcha_kind=color_target: range of characters drawn in the other palette colours, min,max", low=0, high=100)
    color_jitter: int = setting(24,
        "captcha_kind=color_target: each colour channel of each character moves by up to +/- this much",
        low=0, high=255)
    render_jitter: tuple[str, ...] = setting(JITTERS,
        "renderer differences varied per image (see custom_captcha_image.JITTER); empty = off", choices=JITTERS)


@dataclass
class GenerationSettings:
    """The files generate_captcha.py writes."""
    GROUP = "generation"
    image_format: str = setting("jpg", "file format of generated images: jpg or png", choices=("jpg", "png"))
    jpeg_quality: int = setting(75, "JPEG quality of generated images (1-95)", low=1, high=95)
    preview: bool = setting(False, "generate_captcha.py: write only the preview grid, no data set")
    preview_count: int = setting(40, "captchas in the preview grid", low=1, high=10000)
    preview_file: str = setting("data/captcha/preview.png", "grid of sample captchas written by generate_captcha.py")


@dataclass
class ModelSettings:
    """The network's architecture."""
    GROUP = "model"
    model_preset: str = setting("default", "default (fast native-resolution ResNet) or original (ResNet-18 on 32x32)",
        choices=("default", "original"))
    stem_channels: int = setting(32, "channels of the first convolution", low=1, high=4096)
    stem_stride: int = setting(2,
        "stride of the first convolution (2: no full-resolution activations, ~1.6x faster training)", low=1, high=8)
    stage_channels: tuple[int, ...] = setting((32, 64, 128, 192), "channels of each residual stage", low=1, high=4096)
    stage_blocks: tuple[int, ...] = setting((1, 2, 2, 1), "residual blocks in each stage", low=1, high=64)
    feature_stride: int = setting(8,
        "image pixels per feature column before the heads (4-32; 16 for images ~160 px wide)", low=4, high=32)
    head: str = setting("auto",
        "reader: positions (a softmax per character place), ctc (a softmax per feature column, CTC loss: any length), "
        "auto (ctc when lengths vary, else head_names.AUTO_FIXED_HEAD)", choices=lambda: ("auto", *HEAD_FORMS))
    dropout: float = setting(0.1, "dropout before the heads", low=0, below=1)


@dataclass
class TrainingSettings:
    """How main.py trains."""
    GROUP = "training"
    data_mode: str = setting("folder", "folder (read train_dir) or generate (fresh captchas every epoch, in workers)",
        choices=("folder", "generate"))
    epochs: int = setting(0,
        "passes over the training set, a cap on time_budget when given (0 = time_budget alone sets the run; without "
        "one, DEFAULT_EPOCHS and at least MIN_STEPS steps)", low=0, high=10 ** 6)
    time_budget: float = setting(0.0,
        "train this many minutes, the schedule fitted to them (0 = epochs only)", low=0, high=10 ** 6)
    batch_size: int = setting(0,
        "images per training step (0 = auto: SMALL_BATCH for a training set under SMALL_SET images, else 256)",
        low=0, high=65536)
    lr: float = setting(3e-3, "peak learning rate of the one-cycle schedule", above=0, high=10)
    weight_decay: float = setting(0.05, "AdamW weight decay", low=0, high=10)
    warmup: float = setting(0.05, "fraction of training spent warming the learning rate up", low=0, high=1)
    label_smoothing: float = setting(0.05, "cross-entropy label smoothing", low=0, below=1)
    augment: str = setting("auto",
        "random shift/scale/rotation/blur/noise of training images: on, off, auto (on under 50,000 images)",
        choices=("auto", "on", "off"))
    eval_every: int = setting(0, "also evaluate every N steps (0 = only at epoch ends)", low=0, high=10 ** 9)
    eval_epochs: int = setting(1,
        "evaluate and save checkpoints every N epochs, and after the last (tiny data: raise it)", low=1, high=10 ** 6)
    target_accuracy: float = setting(0.0,
        "stop early once test case-sensitive accuracy reaches this (0 = never)", low=0, high=1)
    resume: bool = setting(False, "continue the run in model_dir from last.pt, with the settings it was started with")
    unlabelled_dir: str = setting("",
        "self-training: folder of the target site's captchas without labels; confident reads join training")
    unlabelled_fraction: float = setting(0.25,
        "self-training: share of each training batch taken from confidently read unlabelled captchas", low=0, below=1)
    pseudo_threshold: float = setting(0.8,
        "self-training: lowest confidence (mean over the views) of each character of a read that is used",
        low=0, high=1)
    pseudo_views: int = setting(4,
        "self-training: views each unlabelled captcha is read in (as it is, and augmented copies); all must agree",
        low=1, high=64)
    pseudo_surest: float = setting(0.0,
        "self-training: share of the unlabelled captchas, the plain read's surest, also used when each reads the same "
        "moved 3 pixels left and right (0: only reads alike on every view)", low=0, high=1)
    pseudo_align: bool = setting(False,
        "self-training: rescale each round's reads so every class's mean probability matches its share of the training"
        " labels (for a site whose characters are drawn as the generator's are)")
    target_batch_norm: bool = setting(False,
        "self-training: batch-norm statistics re-measured on the unlabelled captchas before each read and each save "
        "(AdaBN)")
    pseudo_every: int = setting(0,
        "self-training: steps between re-reads of the unlabelled captchas (0 = at every epoch's start)",
        low=0, high=10 ** 9)
    pseudo_keep: bool = setting(False,
        "self-training: a read once used stays in training (with its text) until a later round reads that captcha "
        "confidently as something else")
    extend: float = setting(0.0,
        "with --resume: train this many more minutes on a short cosine tail from lr/10, no warm-up (0 = off)",
        low=0, high=10 ** 6)
    init_from: str = setting("", "start from this checkpoint's weights (fine-tuning)")
    train_repeat: int = setting(1,
        "each training image (train_dir, or data_dir's train split) is seen this many times an epoch",
        low=1, high=10 ** 6)
    mix_dir: str = setting("",
        "a second labelled folder mixed into training once an epoch (e.g. generated captchas beside few real ones)")
    mix_count: int = setting(0, "images taken from mix_dir, the first by name (0 = all)", low=0, high=10 ** 9)
    amp: str = setting("auto",
        "bf16 mixed precision: on, off, auto (on CUDA; on a CPU where a short probe, cached per machine, measures it "
        "faster than fp32)", choices=("auto", "on", "off"))


@dataclass
class RunSettings:
    """The run folder and the hardware that trains or reads with it."""
    GROUP = "run"
    model_dir: str = setting("model", "run folder: checkpoints best.pt and last.pt, log.csv, curves.png")
    device: str = setting("auto", "auto (CUDA when present, else CPU), cpu, cuda, cuda:N",
        choices=("auto", "cpu", "cuda", "cuda:N"))
    threads: int = setting(0, "CPU threads for torch (0 = one per core)", low=0, high=1024)
    eval_batch_size: int = setting(512, "images per evaluation batch", low=1, high=65536)


@dataclass
class DashboardSettings:
    """Live training plots on visdom."""
    GROUP = "dashboard"
    visdom: bool = setting(True, "send live plots to a visdom server")
    visdom_server: str = setting("http://localhost", "visdom server address")
    visdom_port: int = setting(8097, "visdom server port", low=1, high=65535)
    visdom_env: str = setting("captcha",
        "visdom environment prefix: a run plots to PREFIX_RUN, RUN the last folder of model_dir")


@dataclass
class PredictionSettings:
    """Reading captchas with a trained checkpoint."""
    GROUP = "prediction"
    checkpoint: str = setting("", "checkpoint to load ('' = model_dir/best.pt)")
    backend: str = setting("torch",
        "inference backend: torch, or onnx (onnxruntime on the checkpoint's exported .onnx)", choices=("torch", "onnx"))
    predict_threads: int = setting(1,
        "userPred.py and api_demo.py: torch CPU threads (0 = one per core)", low=0, high=1024)
    unsure_below: float = setting(0.8,
        "a read whose least sure character is below this confidence is marked unsure (above 1: every read)",
        low=0, high=2)
    json: bool = setting(False, "userPred.py: print JSON instead of text")


@dataclass
class EvaluationSettings:
    """UserTest.py's golden set and report."""
    GROUP = "evaluation"
    golden_dir: str = setting("golden_set", "hand-labelled real captchas evaluated by userTest.py")
    sure_confidence: float = setting(0.9,
        "userTest.py: misreads at least this confident in every character are listed as labels to check", low=0, high=1)
    report_dir: str = setting("",
        "userTest.py: folder of its error grid and JSON report ('' = report/ beside the checkpoint)")
    least_sure: int = setting(0,
        "userTest.py: list the N least sure reads of golden_dir (labelled or not) to label first (0 = none)",
        low=0, high=10 ** 9)
    min_accuracy: float = setting(0.0,
        "userTest.py: end with an error (exit status 1) when the case-insensitive accuracy is below this (0 = never)",
        low=0, high=1)


@dataclass
class ExportSettings:
    """Export_onnx.py's files."""
    GROUP = "export"
    onnx_file: str = setting("", "export_onnx.py output ('' = the checkpoint's path with .onnx)")
    ddddocr: bool = setting(True, "export_onnx.py: also write the .ddddocr.onnx and .ddddocr.json files ddddocr loads")
    quantize: str = setting("", "export_onnx.py: also write a statically quantized <name>.int8.onnx ('' = no, int8)",
        choices=("", "int8"))
    calibration_dir: str = setting("",
        "export_onnx.py --quantize: images (labels not needed) whose activations set the int8 ranges ('' = the "
        "checkpoint's train_dir)")
    calibration_count: int = setting(512,
        "export_onnx.py --quantize: images read from calibration_dir (a seeded draw)", low=1, high=10 ** 9)
    quantize_test_dir: str = setting("",
        "export_onnx.py --quantize: labelled folder both models are scored on ('' = the checkpoint's test_dir)")
    quantize_max_loss: float = setting(0.003,
        "export_onnx.py --quantize: most whole-captcha accuracy (0-1) the int8 model may lose; more: it is not written",
        low=0, high=1)


@dataclass
class ServingSettings:
    """Api_demo.py's HTTP server."""
    GROUP = "serving"
    host: str = setting("127.0.0.1", "api_demo.py listen address")
    port: int = setting(5000, "api_demo.py listen port", low=0, high=65535)
    server: str = setting("flask", "api_demo.py: flask (development server) or waitress (production server)",
        choices=("flask", "waitress"))
    server_threads: int = setting(4, "api_demo.py --server=waitress: request threads", low=1, high=1024)
    max_upload_bytes: int = setting(1048576, "largest request body the API accepts, bytes", low=1, high=2 ** 40)
    max_image_pixels: int = setting(4000000,
        "largest decoded image the API accepts, pixels (decompression-bomb guard)", low=1, high=2 ** 40)
    max_batch: int = setting(64, "most images in one API request", low=1, high=10 ** 5)
    max_request_pixels: int = setting(8000000,
        "most decoded pixels in one API request, summed over its images (checked from their headers, before decoding)",
        low=1, high=2 ** 40)
    max_concurrent: int = setting(4,
        "most API requests decoding images and running the model at once; more are answered 503 at once",
        low=1, high=1024)
    api_key: str = setting("",
        "key POST /predict requires, as X-API-Key or Authorization: Bearer ('' = none; the environment's "
        "CAPTCHA_API_KEY when unset here)")
    rate_limit: int = setting(0,
        "most POST /predict requests a minute from one client address, more answered 429 (0 = no limit)",
        low=0, high=10 ** 9)
    max_connections: int = setting(1000,
        "--server=waitress: most open connections, idle ones too (more wait to be accepted)", low=1, high=10 ** 5)
    idle_timeout: float = setting(10.0,
        "--server=waitress: seconds a connection may send or take nothing before it is closed (slow and stalled "
        "clients)", above=0, high=3600)
    metrics: bool = setting(False,
        "serve Prometheus metrics at GET /metrics (behind the API key when one is set); off: no cost per request")


@dataclass
class FittingSettings:
    """Fit_style.py's search for a style that draws like a folder of the site's captchas."""
    GROUP = "fitting"
    fit_file: str = setting("",
        "style file fit_style.py writes ('' = <folder>.style.json beside the folder), with <name>.png beside it")
    fit_images: int = setting(160,
        "real captchas read, and captchas drawn for each candidate style", low=1, high=10 ** 9)
    fit_minutes: float = setting(10.0,
        "the search stops after this many minutes (the style found so far is written)", above=0, high=10 ** 6)
    fit_rounds: int = setting(4,
        "passes of the search over the knobs (it stops sooner when a pass changes nothing, or at fit_minutes)",
        low=1, high=1000)
    fit_presets: tuple[str, ...] = setting((),
        "the presets the fit may start from, e.g. securimage when the site is known to run it (empty = every text "
        "style)")
    fit_candidates: int = setting(0,
        "also write the styles of this many of the best starts and their searches (<fit_file>.candidate<k>.json), for "
        "choose_style.py to try (0 = none)", low=0, high=10 ** 9)


@dataclass
class ChoosingSettings:
    """Choose_style.py, which of a few styles trains a model that reads the site's captchas best."""
    GROUP = "choosing"
    choose_file: str = setting("",
        "where choose_style.py copies the chosen style file ('' = <the site folder>.style.json)")
    choose_dir: str = setting("",
        "choose_style.py's work folder: each candidate's generated captchas and trial model ('' = runs/choose_<the "
        "folder's name>)")
    choose_count: int = setting(8000, "captchas generated for each candidate's trial model", low=100, high=10 ** 8)
    choose_minutes: float = setting(2.0, "minutes of training each candidate's trial model", above=0, high=10 ** 6)
    choose_learnt: float = setting(0.25,
        "a trial model reading less than this share of its own test captchas after choose_minutes has not learnt its "
        "style yet: it trains as long again before it is judged (0 = never)", low=0, high=1)
    choose_mix_margin: float = setting(1.0,
        "a runner-up scoring within this much of the best is mixed in: the chosen style file draws each captcha in one"
        " of the two (1 = always the two best; 0 = the best alone)", low=0, high=1)
    choose_mix_share: float = setting(0.5,
        "... and only when its score is at least this share of the best (a style its trial model reads four times"
        " less steadily is another kind, not a close call; 0 = whatever its score)", low=0, high=1)


@dataclass
class SiteSettings:
    """Site_model.py, from a folder of a site's unlabelled captchas to a model that reads them."""
    GROUP = "site"
    site_dir: str = setting("", "site_model.py's work folder ('' = runs/site_<the folder's name>)")
    site_style_file: str = setting("",
        "a style file to use instead of fitting one (a style made by eye, or fitted before; '' = fit)")
    site_candidates: int = setting(4,
        "styles of the fit (its searches' results and their presets) that choose_style.py tries (1 = the fit, untried)",
        low=1, high=100)
    site_train_count: int = setting(60000, "captchas generated in the fitted style", low=0, high=10 ** 8)
    site_font_variety: float = setting(0.5,
        "font_variety of the captchas generated in a fitted style (0 = its fonts alone; a site_style_file keeps its "
        "own)", low=0, high=1)
    site_minutes: float = setting(20.0,
        "minutes of training on the generated captchas, less those choose_style.py's trials spent training styles slow"
        " to learn longer (at least half)", above=0, high=10 ** 6)
    site_self_minutes: float = setting(10.0,
        "minutes of self-training on the site's own captchas after that", low=0, high=10 ** 6)


# Every group of settings, in --help's order when a script takes them all (LookSettings is in looks.py; the bench
# scripts' own group in bench/bench_settings.py).
SETTING_GROUPS = (DataSettings, CaptchaSettings, StyleSettings, GenerationSettings, ModelSettings, TrainingSettings,
                  RunSettings, DashboardSettings, PredictionSettings, EvaluationSettings, ExportSettings,
                  ServingSettings, FittingSettings, ChoosingSettings, SiteSettings, LookSettings)


@dataclass
class Parameters(*reversed(SETTING_GROUPS)):  # fields in SETTING_GROUPS order: a dataclass takes its bases' last first
    """Every setting of every script: the groups above in one object, with what follows from them."""

    @property
    def length_range(self):
        """(fewest, most) characters per captcha, from captcha_length ('4' -> (4, 4), '4-6' -> (4, 6))."""
        return length_bounds(self.captcha_length)

    @property
    def reader_head(self):
        """The head the model reads with: `head`, with auto resolved (ctc when the length varies)."""
        if self.head != "auto":
            return self.head
        return auto_head(*self.length_range)

    @property
    def class_chars(self):
        """The characters the model has a class for, in class order: the charset, each letter lower-cased
        and the characters kept once with ignore_case."""
        return class_chars(self.charset, self.ignore_case)

    @property
    def ctc_form(self):
        """The model's outputs are CTC columns (a blank class first), as its head answers."""
        return HEAD_FORMS[self.reader_head]


@dataclass
class DrawSettings(LookSettings, GenerationSettings, StyleSettings, CaptchaSettings):
    """What the generator draws from (custom_captcha_image.StyledCaptcha): the captcha, its style, its looks
    and its file; none of the data, model, training or serving settings."""

    length_range = Parameters.length_range

    @classmethod
    def of(cls, params):
        """The drawing settings of a Parameters (or of any settings class holding them)."""
        return cls(**{name: getattr(params, name) for name in fields_of(cls)})


# The operator glyphs an arithmetic style may draw: + add, - subtract, x × * multiply, ÷ / divide (arithmetic.py
# computes each).
ARITHMETIC_OPERATORS = "+-x×*÷/"


def arithmetic_problem(params):
    """Why the arithmetic settings make no grammar (a one-line reason), or None."""
    low, high = params.arithmetic_operands
    unknown = sorted(set(params.arithmetic_operators) - set(ARITHMETIC_OPERATORS))
    if unknown or not params.arithmetic_operators:
        return f"arithmetic_operators must be drawn from {ARITHMETIC_OPERATORS}, got {params.arithmetic_operators!r}"
    if not 0 <= low <= high:
        return f"arithmetic_operands must be a range min,max of whole numbers from 0, got {low},{high}"
    endings = params.arithmetic_endings
    clashing = sorted({c for end in endings for c in end} & set(DIGITS + ARITHMETIC_OPERATORS))
    if not endings or clashing:
        return f"arithmetic_endings must be one or more endings without digits or operators (such as =?,=), got " \
               f"{','.join(endings)!r}"
    return None


def arithmetic_charset(params):
    """Every character an arithmetic style draws: digits, then its operators, then its endings' characters."""
    return "".join(dict.fromkeys(DIGITS + params.arithmetic_operators + "".join(params.arithmetic_endings)))


def arithmetic_lengths(params):
    """(fewest, most) characters of an arithmetic style's expression."""
    short, long = (len(str(bound)) for bound in params.arithmetic_operands)
    ends = [len(end) for end in params.arithmetic_endings]
    return 2 * short + 1 + min(ends), 2 * long + 1 + max(ends)


def length_text(fewest, most):
    """captcha_length's text for (fewest, most) characters: '4', or '4-6'."""
    return str(fewest) if fewest == most else f"{fewest}-{most}"


# Settings of the network itself: fine-tuning (--init_from) takes them from the checkpoint it starts from.
ARCHITECTURE_KEYS = ("image_width", "image_height", "model_preset", "stem_channels", "stem_stride", "stage_channels",
                     "stage_blocks", "feature_stride", "head")
# Settings that fix the shape of the model, its heads too: prediction takes them from the model it loads.
MODEL_SHAPE_KEYS = ("charset", "captcha_length", "ignore_case") + ARCHITECTURE_KEYS


class ParameterError(ProjectError):
    """A bad --key=value: the message names the key and is fit to show as one line."""


@functools.cache
def fields_of(kind):
    """{name: field} of a settings class: Parameters, or one with a group of its own beside them (bench/)."""
    return {field.name: field for field in dataclasses.fields(kind)}


FIELDS = fields_of(Parameters)
LENGTH_KEYS = ("captcha_length",)  # settings holding a count or a range of counts ('4' or '4-6')
SWITCH_KEYS = ("amp",)  # auto/on/off settings that were true/false once (old checkpoints, old command lines)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def added_groups(kind):
    """The groups settings class `kind` adds to SETTING_GROUPS (a bench script's own; none for Parameters)."""
    return tuple(part for part in reversed(kind.__mro__) if "GROUP" in vars(part) and part not in SETTING_GROUPS)


@functools.cache
def layout(kind=Parameters):
    """The groups of settings and their help: ({group: (title, settings)}, {setting: help}).

    A group is a dataclass of SETTING_GROUPS (or one `kind` adds): its GROUP names it and its docstring is its
    title, so a setting added to one joins that group (and every script that takes it) with no other edit."""
    groups = {part.GROUP: (part.__doc__[0].lower() + part.__doc__[1:].rstrip("."),
                           [field.name for field in dataclasses.fields(part)])
              for part in SETTING_GROUPS + added_groups(kind)}
    return groups, {name: field.metadata["help"] for name, field in fields_of(kind).items()}


def check_known(key, fields=FIELDS):
    """Refuse a key that is no setting, naming the closest one."""
    if key in fields:
        return
    guess = difflib.get_close_matches(key, fields, n=1)
    hint = f"did you mean --{guess[0]}?" if guess else "run with --help to list them"
    raise ParameterError(f"unknown setting --{key} ({hint})")


def type_name(annotation):
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _element_type(annotation):
    """'tuple[int, ...]' -> int; None when the setting is not a tuple."""
    match = re.fullmatch(r"tuple\[(\w+), \.\.\.\]", str(annotation).replace("typing.", ""))
    return {"int": int, "float": float, "str": str}[match.group(1)] if match else None


def _convert_scalar(kind, text, key):
    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ParameterError(f"--{key} expects true or false, got {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ParameterError(f"--{key} expects an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ParameterError(f"--{key} expects a number, got {text!r}") from None
    return text


def _convert_list(key, value, element):
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("(", "[")):
            try:
                items = list(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                raise ParameterError(f"--{key} expects a comma-separated list, got {value!r}") from None
        else:
            items = [item for item in text.split(",") if item.strip()]
    else:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        return tuple(_convert_scalar(element, str(item).strip(), key) for item in items)
    except ParameterError:
        raise ParameterError(f"--{key} expects a comma-separated list of {element.__name__}s, got {value!r}") from None


def _convert_switch(key, value):
    """auto/on/off, with true/false and their kin (and a bool: checkpoints saved amp as one) read as on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    return "on" if text in _TRUE else "off" if text in _FALSE else text


def _convert_length(key, value):
    """A count (4) or a range ('4-6') of characters -> its canonical text ('4', '4-6')."""
    text = str(value).replace(" ", "") if not isinstance(value, bool) else ""
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not match:
        raise ParameterError(f"--{key} expects a count like 4 or a range like 4-6, got {value!r}")
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if low < 1:
        raise ParameterError(f"--{key} must be at least 1, got {value!r}")
    if high < low:
        raise ParameterError(f"--{key} range {value!r} runs backwards: write it fewest-most, e.g. {high}-{low}")
    return length_text(low, high)


def _convert_type(field, value):
    key = field.name
    if key in LENGTH_KEYS:
        return _convert_length(key, value)
    if key in SWITCH_KEYS:
        return _convert_switch(key, value)
    annotation = field.type
    element = _element_type(annotation)
    if element is not None:
        return _convert_list(key, value, element)
    kind = {"int": int, "float": float, "bool": bool, "str": str}[type_name(annotation)]
    if isinstance(value, str):
        return _convert_scalar(kind, value, key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParameterError(f"--{key} expects {kind.__name__}, got {value!r}")
    return value


def _is_choice(value, choice):
    if choice.endswith(":N"):  # a family: cuda:N is cuda:0, cuda:1, ...
        return re.fullmatch(re.escape(choice[:-1]) + r"\d+", value) is not None
    return value == choice


def _check_choice(field, value):
    """`value` when it (each of its items) is one of the setting's choices (a setting without any: every value).
    "cuda:N" stands for cuda:0, cuda:1, ..."""
    choices = choices_of(field)
    if choices is None:
        return value
    for item in value if isinstance(value, tuple) else (value,):
        if not any(_is_choice(item, choice) for choice in choices):
            what = "takes items among" if isinstance(value, tuple) else "must be one of"
            raise ParameterError(f"--{field.name} {what} {', '.join(choices)}, not {item!r}")
    return value


def convert(key, value, fields=FIELDS):
    """Check and convert one setting (a string from the command line, or a Python value): known key (one of
    `fields`), type, range, and for a setting with choices one of them."""
    check_known(key, fields)
    value = _check_choice(fields[key], _convert_type(fields[key], value))
    problem = range_problem(fields[key], value)
    if problem:
        raise ParameterError(problem)
    return value


def make_parameters(overrides=None, base=None, kind=Parameters):
    """A Parameters (or the settings class `kind`) with a style preset and then `overrides` applied (all
    type-checked); any setting.

    With `base`, its settings (and its class) are the starting point and only `overrides` change them; when
    `overrides` name a style, its preset is applied first, and if it is another style than base's, what base's
    own preset set is put back to the defaults before (see unstyled)."""
    overrides = dict(overrides or {})
    params = dataclasses.replace(base) if base is not None else kind()
    fields = fields_of(type(params))
    from_file = read_style_file(overrides["style_file"]) if overrides.get("style_file") else {}
    if from_file and "style" not in overrides:
        overrides = {"style": from_file.get("style", params.style), **overrides}
    style = convert("style", overrides.get("style", params.style))
    if base is not None and style != base.style:
        params = unstyled(base)
    # The preset is applied when the style is chosen, not again over a base that has it (and maybe
    # settings given beside it, which it would undo).
    preset = STYLES[style] if base is None or "style" in overrides else {}
    values = {**preset, **from_file, **overrides}
    for key, value in values.items():
        setattr(params, key, convert(key, value, fields))
    if params.captcha_kind == "arithmetic":  # what the expressions draw sets the characters and lengths
        problem = arithmetic_problem(params)
        if problem:
            raise ParameterError(problem)
        params.charset, params.captcha_length = arithmetic_charset(params), length_text(*arithmetic_lengths(params))
    return params


def read_style_file(path):
    """The settings of a style file (JSON {setting: value}, as fit_style.py and generate_captcha.py write);
    its seed is not taken (a run draws with its own). A file that cannot be read is a one-line error."""
    try:
        with open(path) as handle:
            settings = json.load(handle)
    except (OSError, ValueError) as error:
        raise ParameterError(f"--style_file={path} cannot be read ({error})") from None
    if not isinstance(settings, dict):
        raise ParameterError(f"--style_file={path} is not a style file (a JSON object of settings)")
    unknown = sorted(key for key in settings if key not in FIELDS)
    if unknown:
        raise ParameterError(f"--style_file={path} names unknown settings: {', '.join(unknown[:5])}")
    if isinstance(settings.get("style_mix"), list):  # style files it mixes: relative to this one's folder
        here = os.path.dirname(os.path.abspath(path))
        settings["style_mix"] = [os.path.normpath(os.path.join(here, name)) if name.endswith(".json") else name
                                 for name in settings["style_mix"]]
    return {key: value for key, value in settings.items() if key not in ("seed", "style_file")}


def unstyled(params):
    """`params` with each setting that its style preset put there back at its default, so that another style
    starts clean: a benchmark's experiment in the swust style must not draw with the seed style's renderer.
    Settings given beside the preset (a command line's --render_jitter=weight) differ from it, and stay."""
    preset, plain, params = make_parameters({"style": params.style}), type(params)(), dataclasses.replace(params)
    for key in PRESET_KEYS:
        if getattr(params, key) == getattr(preset, key):
            setattr(params, key, getattr(plain, key))
    return params


def saved_parameters(saved):
    """The Parameters a checkpoint (or an ONNX export) saved as a dict; settings unknown here are ignored,
    settings added since take their defaults (a checkpoint from before `head` read with positions)."""
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in saved.items() if key in FIELDS}
    values.setdefault("head", "positions")
    if "captcha_length" in values:
        values["captcha_length"] = _convert_length("captcha_length", values["captcha_length"])
    if "amp" in values:
        values["amp"] = _convert_switch("amp", values["amp"])
    return Parameters(**values)


def with_saved_settings(params, saved, keys=MODEL_SHAPE_KEYS):
    """`params` with the settings `keys` taken from a checkpoint's saved settings dict (those it has)."""
    return make_parameters({key: saved[key] for key in keys if key in saved}, base=params)


def worker_count(params, setting="workers"):
    """The count a setting (workers, threads, predict_threads) asks for, 0 meaning one per CPU core."""
    count = getattr(params, setting)
    return count if count > 0 else (os.cpu_count() or 1)
