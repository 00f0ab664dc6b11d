"""The captcha reader: a ResNet over the native image, one linear softmax head per character.

    python model.py                        # parameter count, file size, CPU training speed and its share of the
                                           # CPU's peak (GFLOP per image, measured peak)
    python model.py --model_preset=original

Input: uint8 images (N, H, W, 3) exactly as `dataset.preprocess()` returns them; the model converts
and normalises them itself, so training, prediction, the API and an ONNX export share one path.
Output: logits, as the reading head (heads.py, `head`) makes them from the feature columns. `positions`:
(N, captcha_length, len(charset)), a softmax per character place, for captchas of one length. `ctc`:
(N, columns, 1 + len(charset)), a softmax per feature column over CTC's blank (class 0) and the
characters, trained with CTC loss, for captchas of any length up to the columns (dataset.decode_logits
reads both).

The model knows nothing of the project's settings: a ModelConfig builds it, and model_config() makes one from
a run's settings as a dict (the form a checkpoint keeps them in). This module is also the one home of
checkpoints (save_checkpoint writes atomically, load_checkpoint loads with weights_only and checks that the
heads fit the charset and length saved with them, model_from_checkpoint), of the device (select_device) and of
mixed precision (autocast); batch_logits is the PyTorch side of predictor.py's Predictor.

Presets (`model_preset`):
- `default`: residual stages at the native 24x64 resolution (no resizing: thin strokes survive);
  the width axis is kept at 1/8 resolution (`feature_stride`) for the heads, the height axis is
  averaged away.
- `original`: the original project's design for comparison: a ResNet-18 (7x7 stem, max-pool, four
  stages of two blocks at 64-512 channels) on images squashed to 32x32, global average pooling.
"""
import dataclasses
import io
import json
import os
import pickle
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from command_line import parse_args, run_main
from errors import ProjectError
from files import atomic_write
from head_names import auto_head, charset_problem, class_chars, length_bounds
from heads import head_class

SPEED_TEST_BATCH = 256  # python model.py's batch when batch_size is auto (0)
PRECISION_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                               "captcha-ocr", "precision.json")  # amp=auto's probe verdict, per machine


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


def make_stages(in_channels, channels, blocks, strides):
    layers = []
    for out_channels, count, stride in zip(channels, blocks, strides):
        for index in range(count):
            layers.append(BasicBlock(in_channels, out_channels, stride if index == 0 else 1))
            in_channels = out_channels
    return nn.Sequential(*layers)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """All that a CaptchaResNet is built from. model_config() makes it from a run's settings (parameters.py's
    model group, charset and length), as training has them and as a checkpoint saves them."""
    length: int  # the most characters a captcha has
    classes: int  # characters the heads tell apart (the charset, case folded where it is ignored)
    head: str  # the reading head's registered name (heads.py): positions, ctc, ...
    image_height: int  # pixels the model reads; images of another size are resized to it
    image_width: int
    preset: str  # default (native-resolution ResNet) or original (ResNet-18 on 32x32)
    stem_channels: int  # channels of the first convolution
    stem_stride: int  # its stride: 1 or 2
    stage_channels: tuple  # channels of each residual stage
    stage_blocks: tuple  # residual blocks in each stage
    feature_stride: int  # image pixels per feature column before the heads: 4, 8, 16 or 32
    dropout: float  # before the heads


# Settings a checkpoint saved before they existed lacks, and what its model had then.
SETTINGS_BEFORE_THEY_EXISTED = {"stem_stride": 1, "feature_stride": 8, "head": "positions"}


def model_config(settings, chars):
    """The ModelConfig of a run's settings: `settings` a dict of parameters.py's names, as a checkpoint saves
    them (dataclasses.asdict of the run's Parameters); `chars` the characters the model has a class for."""
    def value(key):
        return settings[key] if key in settings else SETTINGS_BEFORE_THEY_EXISTED[key]
    fewest, most = length_bounds(settings["captcha_length"])
    head = value("head")
    return ModelConfig(length=most, classes=len(chars), head=auto_head(fewest, most) if head == "auto" else head,
                       image_height=settings["image_height"], image_width=settings["image_width"],
                       preset=settings["model_preset"], stem_channels=settings["stem_channels"],
                       stem_stride=value("stem_stride"), stage_channels=tuple(settings["stage_channels"]),
                       stage_blocks=tuple(settings["stage_blocks"]), feature_stride=value("feature_stride"),
                       dropout=settings["dropout"])


class CaptchaResNet(nn.Module):
    """uint8 (N, H, W, 3) -> logits (N, steps, classes) of the head `config.head` (heads.py), for captchas of
    up to `config.length` characters of `config.classes` characters."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        length, classes, head, preset = config.length, config.classes, config.head, config.preset
        image_height, image_width, feature_stride = config.image_height, config.image_width, config.feature_stride
        stem_channels, stem_stride = config.stem_channels, config.stem_stride
        stage_channels, stage_blocks = config.stage_channels, config.stage_blocks
        if preset not in ("default", "original"):
            raise ProjectError(f"model_preset must be default or original, got {preset!r}")
        if len(stage_channels) != len(stage_blocks):
            raise ProjectError("stage_channels and stage_blocks need one entry per stage")
        if head_class(head).ctc and preset == "original":
            raise ProjectError(f"model_preset=original reads with positions heads (global pooling leaves no columns "
                               f"for {head}): use --head=positions")
        self.preset = preset
        self.length, self.classes = length, classes
        if preset == "original":
            self.input_size = (32, 32)
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
            self.body = make_stages(64, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2))
            channels, self.columns = 512, 1  # global pooling: one feature column
        else:
            self.input_size = (image_height, image_width)
            if stem_stride not in (1, 2):
                raise ProjectError(f"stem_stride must be 1 or 2, got {stem_stride}")
            self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, stem_stride, 1, bias=False),
                                      nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
            # Halve both axes log2(feature_stride) times (in the stem and/or the first stages), keep
            # later stages there: at 1/8 a 64-pixel-wide captcha leaves 8 feature columns, about two
            # per character; 1/16 keeps a 160-pixel-wide one at a similar cost. A stride-2 stem never
            # holds a full-resolution activation map, which is most of the cost of the first layers
            # on a CPU; 3x3 windows at stride 2 still see every pixel.
            if feature_stride not in (4, 8, 16, 32):
                raise ProjectError(f"feature_stride must be 4, 8, 16 or 32, got {feature_stride}")
            halvings = feature_stride.bit_length() - 1 - (stem_stride == 2)
            if halvings > len(stage_channels):
                raise ProjectError(f"feature_stride {feature_stride} needs {halvings} stages, "
                                   f"got {len(stage_channels)}")
            strides = [2 if index < halvings else 1 for index in range(len(stage_channels))]
            self.body = make_stages(stem_channels, stage_channels, stage_blocks, strides)
            columns = (image_width + stem_stride - 1) // stem_stride
            for stride in strides:
                columns = (columns + stride - 1) // stride
            channels, self.columns = stage_channels[-1], columns
        self.dropout = nn.Dropout(config.dropout)
        if head_class(head).ctc and length > self.columns:
            raise ProjectError(f"captchas of up to {length} characters need at least {length} feature columns for "
                               f"{head}; image_width {image_width} / feature_stride {feature_stride} gives "
                               f"{self.columns}: lower --feature_stride (or widen --image_width)")
        self.head = head_class(head)(channels, self.columns, length, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for block in self.body:  # residual branches start near zero: stable early training
            nn.init.zeros_(block.bn2.weight)

    def forward(self, images):
        # images: uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]
        x = images.permute(0, 3, 1, 2).float().mul_(2 / 255).sub_(1)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        x = self.body(self.stem(x))  # (N, C, H', W')
        features = x.mean(dim=2)  # average the height away: (N, C, W')
        if self.preset == "original":
            features = features.mean(dim=2, keepdim=True)  # global pooling: (N, 512, 1)
        return self.head(self.dropout(features))  # (N, steps, classes)


def select_device(name, threads):
    """The device `name` asks for (auto: CUDA when present, else the CPU), chosen once; on the CPU, with
    `threads` threads."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ProjectError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ProjectError(f"--device={name} but CUDA is not available")
    if device.type == "cpu":
        torch.set_num_threads(threads)
    return device


def autocast(device, enabled):
    """Mixed precision when `enabled`: bf16 on CPU (fast on AVX-512/AMX cores) and on CUDA."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def use_bf16(amp, device):
    """Whether to train in bf16 autocast: amp 'on' or 'off' as said; 'auto' on CUDA, and on a CPU only
    where bf16 measures faster than fp32. A CPU without native bf16 (AVX2 only) runs it about 20 times
    slower; one with AMX about 3 times faster."""
    if amp != "auto":
        return amp == "on"
    return device.type == "cuda" or (device.type == "cpu" and cpu_prefers_bf16())


def cpu_prefers_bf16():
    """precision_probe's verdict for this machine, measured once and then read from PRECISION_CACHE."""
    key, cache = machine_key(), read_precision_cache()
    if isinstance(cache.get(key), dict) and isinstance(cache[key].get("bf16"), bool):
        return cache[key]["bf16"]
    bf16, fp32 = precision_probe()
    cache[key] = {"bf16": bf16 < fp32, "bf16_seconds": round(bf16, 5), "fp32_seconds": round(fp32, 5)}
    try:
        atomic_write(PRECISION_CACHE, json.dumps(cache, indent=1))
    except OSError:  # a read-only home: measure again next time
        pass
    return bf16 < fp32


def read_precision_cache():
    """{machine key: verdict} from PRECISION_CACHE; {} when it is missing or damaged (measured again)."""
    try:
        with open(PRECISION_CACHE) as handle:
            cache = json.load(handle)
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def machine_key():
    """What the probe's verdict depends on: the processor, its vector extensions as torch sees them, the
    thread count and torch's version."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{name}|{capability}|{torch.get_num_threads()} threads|torch {torch.__version__}|probe 2"  # 2: PROBE_MODEL


# What precision_probe times: the default model at a site's usual size. A smaller net (three convolutions)
# misjudged an AVX-512-bf16 CPU: fp32 by 13% there, where the model itself trains 1.5x faster in bf16.
PROBE_MODEL = ModelConfig(length=4, classes=36, head="positions", image_height=40, image_width=112,
                          preset="default", stem_channels=32, stem_stride=2, stage_channels=(32, 64, 128, 192),
                          stage_blocks=(1, 2, 2, 1), feature_stride=8, dropout=0.1)


def precision_probe(rounds=3, batch=32):
    """(bf16 seconds, fp32 seconds): step_seconds of PROBE_MODEL on a batch of random images in each precision."""
    torch.manual_seed(0)
    net = CaptchaResNet(PROBE_MODEL).to(memory_format=torch.channels_last).train()  # as training runs it
    images = torch.randint(0, 256, (batch, PROBE_MODEL.image_height, PROBE_MODEL.image_width, 3), dtype=torch.uint8)
    return step_seconds(net, images, True, rounds), step_seconds(net, images, False, rounds)


def step_seconds(net, images, bf16, rounds=3):
    """The best of `rounds` training steps (forward and backward) of `net` on uint8 images (N, H, W, 3) in one
    precision, after a warm-up step (kernels are chosen and packed once)."""
    best = float("inf")
    for index in range(rounds + 1):
        start = time.perf_counter()
        with autocast(torch.device("cpu"), bf16):
            loss = net(images).float().logsumexp(-1).mean()
        loss.backward()
        best = min(best, time.perf_counter() - start) if index else best
    return best


def batch_logits(model, device, amp, images):
    """uint8 (N, H, W, 3) numpy -> float32 logits (N, length, classes) numpy, one batch through `model`."""
    with torch.inference_mode(), autocast(device, amp):
        return model(torch.from_numpy(images).to(device)).float().cpu().numpy()


def measure_batch_norms(model, device, images, batch_size):
    """Re-measure every batch-norm layer's running mean and variance on uint8 images (N, H, W, 3), as their
    plain average over these images' batches (AdaBN): a model trained on generated captchas then
    normalises its features as the site's captchas need when it reads them. Weights do not change."""
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta, training = [norm.momentum for norm in norms], model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # None: a cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(torch.from_numpy(images[start:start + batch_size]).to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.train(training)


class CheckpointWriteError(ProjectError):
    """A checkpoint that could not be written (a full disk): the work failed, the one written before stays."""
    exit_status = 1


def save_checkpoint(path, checkpoint):
    """torch.save of a checkpoint dict, atomically: a crash never leaves a half-written checkpoint, and the
    temporary files of a killed earlier save of `path` are removed."""
    try:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))
    except (OSError, RuntimeError) as error:  # a full disk: torch.save says so as a RuntimeError
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise CheckpointWriteError(f"cannot write the checkpoint {path} ({why}): the one saved there before, if any, "
                           f"is kept") from None


def load_checkpoint(path):
    """A checkpoint dict, loaded safely (weights_only: tensors and plain data, never arbitrary code)."""
    if not os.path.isfile(path):
        raise ProjectError(f"no checkpoint at {path!r} (train one with: python main.py)", 404)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # PyTorch's message suggests weights_only=False: it would run the file
        if "unsupported global" in str(error).lower():
            raise ProjectError(f"{path!r} is not a plain-weights checkpoint: it holds objects other than tensors "
                               f"and plain data, and is not loaded") from None
        raise ProjectError(f"{path!r} is not a readable checkpoint (its bytes are not a PyTorch checkpoint)") from None
    except Exception as error:  # a truncated or foreign file: say which and why, not a traceback
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ProjectError(f"{path!r} is not a readable checkpoint ({type(error).__name__}: {first_line})") from None
    if not isinstance(checkpoint, dict) or not {"model", "params", "charset"} <= set(checkpoint):
        raise ProjectError(f"{path!r} is not a captcha-ocr checkpoint (no model, params and charset)")
    if isinstance(checkpoint["model"], dict):
        checkpoint["model"] = renamed_head_keys(checkpoint["model"])
    problem = heads_problem(checkpoint)
    if problem:
        raise ProjectError(f"{path!r} is not a consistent checkpoint: {problem}")
    return checkpoint


def heads_problem(checkpoint):
    """Why the heads of a checkpoint do not fit the charset and captcha length saved with it (None when
    they do). A charset longer or shorter than the heads would load and read the wrong characters."""
    state, chars = checkpoint["model"], checkpoint["charset"]
    if not isinstance(state, dict) or not isinstance(checkpoint["params"], dict) or not isinstance(chars, str):
        return "its model, params or charset is not of the kind training saves"
    try:
        config = model_config(checkpoint["params"], chars)
    except KeyError as error:
        return f"its settings do not name its model's {error.args[0]}"
    except (TypeError, ValueError) as error:
        return str(error).splitlines()[0]
    heads = [key for key in state if key.startswith("head.")]
    if not heads or not all(isinstance(state[key], torch.Tensor) and state[key].dim() >= 1 for key in heads):
        return "its heads are not weight tensors"
    try:
        head = head_class(config.head)
    except KeyError:
        return f"its settings name a head this version does not have: {config.head}"
    problem = charset_problem(chars) or head.state_problem(state, config.length, chars)
    named = class_chars(checkpoint["params"].get("charset", chars), checkpoint["params"].get("ignore_case", False))
    if not problem and chars != named:
        problem = f"its charset {chars!r} disagrees with the charset of its settings {named!r}"
    return problem


# State-dict names of the heads before they had a module of their own (heads.py): loading renames them.
OLD_HEAD_KEYS = (("heads.", "head.places."), ("ctc_head.", "head.linear."))


def renamed_head_keys(state):
    """A model state dict with the head weights of an older checkpoint under today's names."""
    renamed = {}
    for key, value in state.items():
        old = next((pair for pair in OLD_HEAD_KEYS if key.startswith(pair[0])), None)
        renamed[old[1] + key[len(old[0]):] if old else key] = value
    return renamed


def model_from_checkpoint(checkpoint):
    """The model of a checkpoint dict (load_checkpoint's), in eval mode."""
    model = CaptchaResNet(model_config(checkpoint["params"], checkpoint["charset"]))
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def file_size(model):
    """Bytes of the model's weights as torch.save writes them."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def training_gflop(model):
    """GFLOP of one training image, forward and backward, as torch.utils.flop_counter counts them (matmuls and
    convolutions: what the machine's peak bounds)."""
    from torch.utils.flop_counter import FlopCounterMode
    batch = 4
    images = torch.randint(0, 256, (batch, model.config.image_height, model.config.image_width, 3), dtype=torch.uint8)
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        model(images).float().logsumexp(-1).mean().backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / batch / 1e9


def best_seconds(work, seconds):
    """The shortest of the runs of `work()` that fit in about `seconds`, after one warm-up run."""
    work()  # warm-up: the kernel is chosen and packed once
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        work()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return best


def compute_peak(dtype, seconds=1.0):
    """GFLOP/s this machine's CPU threads reach in `dtype`, measured now: the better of a 2048 x 2048 matmul
    and a 3x3 convolution, since they run on different libraries' kernels (on an AMD CPU the convolution's
    oneDNN kernels beat the matmul's by a fifth in fp32): the ceiling training's convolutions are held against."""
    size = 2048
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    matmul = 2 * size ** 3 / best_seconds(lambda: a @ b, seconds / 2)
    x = torch.randn(8, 256, 32, 32, dtype=dtype).to(memory_format=torch.channels_last)  # (N, C, H, W)
    w = torch.randn(256, 256, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
    conv = 2 * x.numel() * w[0].numel() / best_seconds(lambda: F.conv2d(x, w, padding=1), seconds / 2)
    return max(matmul, conv) / 1e9


def speed_line(images_per_second, gflop, bf16):
    """'... images/s x G GFLOP = A GFLOP/s, R of this CPU's fp32 peak (P GFLOP/s)': training speed as a share of
    what the machine can do in the precision it trains in (which compares across machines where images/s
    does not). A bf16 run is held against the faster of the bf16 and fp32 peaks, since autocast leaves part
    of the step in fp32: on a CPU without native bf16 (an AVX-512 Xeon) the model trained 74 GFLOP/s there
    against a bf16 peak of 70. An fp32 run times only the fp32 peak: a bf16 matmul is slow on an AVX2 CPU."""
    peaks = {"fp32": compute_peak(torch.float32)}
    if bf16:
        peaks["bf16"] = compute_peak(torch.bfloat16)
    name = max(peaks, key=peaks.get)
    achieved = images_per_second * gflop
    return (f"{images_per_second:.0f} images/s x {gflop:.3f} GFLOP = {achieved:.0f} GFLOP/s, "
            f"{achieved / peaks[name]:.0%} of this CPU's {name} peak ({peaks[name]:.0f} GFLOP/s)")


def remap_heads(state, old_chars, new_chars, head, length):
    """The weights of a `head` (a heads.py class) for captchas of up to `length` characters, trained for
    `old_chars`, rearranged for `new_chars`: shared characters keep their rows, new ones start small (a CTC
    head's blank, its class 0, keeps its own)."""
    blank = ("",) * head.ctc
    old, new = blank + tuple(old_chars), blank + tuple(new_chars)
    remapped = dict(state)
    for key in head.class_rows(length):
        value = state.get(key)
        if value is None or value.shape[0] != len(old):
            continue
        rows = value.new_zeros((len(new),) + tuple(value.shape[1:]))
        if value.dim() == 2:
            torch.nn.init.normal_(rows, std=0.01)
        for new_index, char in enumerate(new):
            if char in old:
                rows[new_index] = value[old.index(char)]
        remapped[key] = rows
    return remapped


def init_from(model, path, charset):
    """Load a checkpoint's weights for fine-tuning; heads follow the characters when charsets differ."""
    checkpoint = load_checkpoint(path)
    trained = model_config(checkpoint["params"], checkpoint["charset"])
    state = remap_heads(checkpoint["model"], checkpoint["charset"], charset.chars, head_class(trained.head),
                        trained.length)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(usable))
    model.load_state_dict(usable, strict=False)
    note = f" (not loaded, shapes differ: {', '.join(skipped[:4])}{' ...' if len(skipped) > 4 else ''})" if skipped else ""
    print(f"initialised from {path}: {len(usable)} of {len(own)} tensors{note}")


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    # a setting the architecture cannot take: one line (run_main)
    model = CaptchaResNet(model_config(dataclasses.asdict(params), params.class_chars)).eval()
    print(f"{params.model_preset}: {parameter_count(model) / 1e6:.2f}M parameters, "
          f"{file_size(model) / 1e6:.1f} MB of weights", flush=True)
    gflop = training_gflop(model)
    bf16 = use_bf16(params.amp, torch.device("cpu"))
    batch = params.batch_size or SPEED_TEST_BATCH
    images = torch.randint(0, 256, (batch, params.image_height, params.image_width, 3), dtype=torch.uint8)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters())
    model = model.to(memory_format=torch.channels_last)
    for index in tqdm(range(6), desc=f"training steps ({'bf16' if bf16 else 'fp32'})", leave=False):
        if index == 2:  # two warm-up steps: kernels are chosen and packed once
            start = time.perf_counter()
        with autocast(torch.device("cpu"), bf16):
            loss = model(images).float().logsumexp(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    rate = 4 * batch / (time.perf_counter() - start)
    print(f"training speed on this machine (batch {batch}, amp={params.amp}: {'bf16' if bf16 else 'fp32'}): "
          f"{speed_line(rate, gflop, bf16)}")


if __name__ == "__main__":
    run_main(main)
