"""The captcha reader: a ResNet over the native image, one linear softmax head per character.

    python model.py                        # prints parameter count, file size and CPU speed of the model
    python model.py --model_preset=original

Input: uint8 images (N, H, W, 3) exactly as `dataset.preprocess()` returns them; the model converts
and normalises them itself, so training, prediction, the API and an ONNX export share one path.
Output: logits (N, captcha_length, len(charset)).

Presets (`model_preset`):
- `default`: residual stages at the native 24x64 resolution (no resizing: thin strokes survive);
  the width axis is kept at 1/8 resolution (`feature_stride`) for the heads, the height axis is
  averaged away.
- `original`: the original project's design for comparison: a ResNet-18 (7x7 stem, max-pool, four
  stages of two blocks at 64-512 channels) on images squashed to 32x32, global average pooling.
"""
import dataclasses
import io
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from dataset import Charset
from parameters import Parameters, fail, parse_args


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


class CaptchaResNet(nn.Module):
    """uint8 (N, H, W, 3) -> logits (N, length, classes)."""

    def __init__(self, length, classes, image_height, image_width, preset="default", stem_channels=16,
                 stage_channels=(32, 64, 128, 192), stage_blocks=(1, 2, 2, 1), dropout=0.1, stem_stride=1,
                 feature_stride=8):
        super().__init__()
        if preset not in ("default", "original"):
            raise ValueError(f"model_preset must be default or original, got {preset!r}")
        if len(stage_channels) != len(stage_blocks):
            raise ValueError("stage_channels and stage_blocks need one entry per stage")
        self.preset = preset
        self.length, self.classes = length, classes
        if preset == "original":
            self.input_size = (32, 32)
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
            self.body = make_stages(64, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2))
            feature_size = 512
        else:
            self.input_size = (image_height, image_width)
            if stem_stride not in (1, 2):
                raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
            self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, stem_stride, 1, bias=False),
                                      nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
            # Halve both axes log2(feature_stride) times (in the stem and/or the first stages), keep
            # later stages there: at 1/8 a 64-pixel-wide captcha leaves 8 feature columns, about two
            # per character; 1/16 keeps a 160-pixel-wide one at a similar cost. A stride-2 stem never
            # holds a full-resolution activation map, which is most of the cost of the first layers
            # on a CPU; 3x3 windows at stride 2 still see every pixel.
            if feature_stride not in (4, 8, 16, 32):
                raise ValueError(f"feature_stride must be 4, 8, 16 or 32, got {feature_stride}")
            halvings = feature_stride.bit_length() - 1 - (stem_stride == 2)
            if halvings > len(stage_channels):
                raise ValueError(f"feature_stride {feature_stride} needs {halvings} stages, got {len(stage_channels)}")
            strides = [2 if index < halvings else 1 for index in range(len(stage_channels))]
            self.body = make_stages(stem_channels, stage_channels, stage_blocks, strides)
            columns = (image_width + stem_stride - 1) // stem_stride
            for stride in strides:
                columns = (columns + stride - 1) // stride
            feature_size = stage_channels[-1] * columns
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(feature_size, classes) for _ in range(length))
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
        if self.preset == "original":
            features = x.mean(dim=(2, 3))  # (N, 512)
        else:
            features = x.mean(dim=2).flatten(1)  # average the height away: (N, C * W')
        features = self.dropout(features)
        return torch.stack([head(features) for head in self.heads], dim=1)  # (N, length, classes)


def build_model(params):
    """The model `params` describe (charset and length set the heads)."""
    return CaptchaResNet(params.captcha_length, len(Charset.from_params(params)), params.image_height, params.image_width,
                         params.model_preset, params.stem_channels, tuple(params.stage_channels),
                         tuple(params.stage_blocks), params.dropout, params.stem_stride,
                         params.feature_stride)


def load_checkpoint(path):
    """A checkpoint dict, loaded safely (weights_only: tensors and plain data, never arbitrary code)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r} (train one with: python main.py)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which and why, not a traceback
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"{path!r} is not a readable checkpoint ({type(error).__name__}: {first_line})") from None
    if not isinstance(checkpoint, dict) or not {"model", "params", "charset"} <= set(checkpoint):
        raise ValueError(f"{path!r} is not a captcha-ocr checkpoint (no model, params and charset)")
    return checkpoint


def model_params(saved):
    """The Parameters a checkpoint (or an ONNX export) saved as a dict; settings unknown here are ignored."""
    known = {field.name for field in dataclasses.fields(Parameters)}
    return Parameters(**{key: tuple(value) if isinstance(value, list) else value
                         for key, value in saved.items() if key in known})


def model_from_checkpoint(checkpoint):
    """(model in eval mode, the Parameters it was trained with) from a checkpoint dict."""
    params = model_params(checkpoint["params"])
    model = build_model(params)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), params


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def file_size(model):
    """Bytes of the model's weights as torch.save writes them."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    try:
        model = build_model(params).eval()
    except ValueError as error:  # a setting the architecture cannot take: one line, as for any bad setting
        fail(str(error))
    print(f"{params.model_preset}: {parameter_count(model) / 1e6:.2f}M parameters, "
          f"{file_size(model) / 1e6:.1f} MB of weights")
    images = torch.randint(0, 256, (params.batch_size, params.image_height, params.image_width, 3), dtype=torch.uint8)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters())
    model = model.to(memory_format=torch.channels_last)
    for index in range(6):
        if index == 2:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=params.amp):
            loss = model(images).float().logsumexp(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    rate = 4 * params.batch_size / (time.perf_counter() - start)
    print(f"training speed on this machine: {rate:.0f} images/s (batch {params.batch_size}, amp={params.amp})")


if __name__ == "__main__":
    main()
