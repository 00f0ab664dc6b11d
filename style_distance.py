"""How far generated captchas look from real ones: one number that fit_style.py minimises.

Each image (uint8 (H, W, 3), as the model reads it: transparency composited onto white) is described by
feature groups: grey-level and saturation histograms (colours), gradient strengths (sharpness, stroke
edges), gradient directions (upright or turned glyphs), where the ink lies (row and column profiles), and
the responses of a small fixed random convolutional network to a shrunk grey copy (glyph shapes:
outlines, dots, fonts, which statistics of pixels do not see; shrunk, so that noise texture cannot pass
for them). distance() compares each group (see there)
and averages the groups: 0 is indistinguishable by these features.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GREY_BINS, SATURATION_BINS, GRADIENT_BINS, DIRECTION_BINS = 16, 8, 8, 12
ROW_BINS, COLUMN_BINS = 8, 16
INK_DEPTH = 30  # grey levels below an image's paper (its 90th percentile) that make a pixel ink
EDGE_DEPTH = 24  # grey-level change between neighbours that counts as a stroke edge for its direction
SHARE_SCALE = 4.0  # a share distance of 0.25 (a quarter of the mass moved) weighs 1, as does a pooled spread
SMALL_HEIGHT = 16  # rows of the grey copy the random network sees: glyph shapes, not pixel texture


def histograms(values, bins, high):
    """(N, bins) share of each image's values (N, H, W) in `bins` equal bins over 0..high."""
    index = np.clip((values * (bins / high)).astype(np.int64), 0, bins - 1).reshape(len(values), -1)
    counts = np.stack([np.bincount(row, minlength=bins) for row in index])
    return counts / index.shape[1]


def profile(ink, axis, bins):
    """(N, bins): the share of ink along one axis of (N, H, W) bool, resampled to `bins` bands."""
    share = ink.mean(axis=axis)  # (N, length)
    edges = np.linspace(0, share.shape[1], bins + 1).astype(np.int64)
    return np.stack([share[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


def directions(grey):
    """(N, DIRECTION_BINS): each image's stroke edges by direction (0..180 degrees), weighted by strength.
    Upright glyphs put their weight at 0 and 90 degrees; turned ones spread it."""
    dx = grey[:, 1:-1, 2:] - grey[:, 1:-1, :-2]  # (N, H-2, W-2) central differences
    dy = grey[:, 2:, 1:-1] - grey[:, :-2, 1:-1]
    strength = np.hypot(dx, dy)
    angle = np.mod(np.arctan2(dy, dx), np.pi)
    index = np.minimum((angle * (DIRECTION_BINS / np.pi)).astype(np.int64), DIRECTION_BINS - 1)
    weight = np.where(strength >= EDGE_DEPTH, strength, 0.0)
    counts = np.stack([np.bincount(i.ravel(), w.ravel(), minlength=DIRECTION_BINS) for i, w in zip(index, weight)])
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-9)


def shapes(grey):
    """(N, 80): a fixed random network's responses to the grey images shrunk (area averaging) to
    SMALL_HEIGHT rows, where glyph shapes stay and pixel texture (speckles, JPEG noise) averages out."""
    x = torch.from_numpy(grey[:, None] / 255).float()
    width = max(8, round(grey.shape[2] * SMALL_HEIGHT / grey.shape[1]))
    return _SHAPES(F.interpolate(x, size=(SMALL_HEIGHT, width), mode="area")).numpy()


def features(images):
    """{group: (N, ...) array} of uint8 images (N, H, W, 3), all of one size."""
    pixels = images.astype(np.float32)
    grey = pixels.mean(axis=-1)
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    gradient = np.abs(np.diff(grey, axis=2))[:, 1:, :] + np.abs(np.diff(grey, axis=1))[:, :, 1:]
    paper = np.percentile(grey.reshape(len(grey), -1), 90, axis=1)[:, None, None]
    ink = grey <= paper - INK_DEPTH
    rows, columns = profile(ink, 2, ROW_BINS), profile(ink, 1, COLUMN_BINS)  # ink shares along each axis
    return {"colours": np.concatenate([histograms(grey, GREY_BINS, 256), histograms(saturation, SATURATION_BINS, 256)],
                                      axis=1),
            "edges": histograms(gradient, GRADIENT_BINS, 256), "directions": directions(grey),
            "layout": np.concatenate([rows / ROW_BINS, columns / COLUMN_BINS], axis=1), "shapes": shapes(grey)}


class RandomShapes(nn.Module):
    """A fixed random convolutional network (seeded, never trained): mean and spread of its responses per
    channel describe stroke shapes without labels."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(1234)
        self.first = nn.Conv2d(1, 16, 5, padding=2)
        self.second = nn.Conv2d(16, 24, 3, stride=2, padding=1)
        for layer in (self.first, self.second):
            layer.weight.data = torch.randn(layer.weight.shape, generator=generator) / (layer.weight[0].numel() ** 0.5)
            layer.bias.data.zero_()

    @torch.no_grad()
    def forward(self, grey):
        """(N, 1, h, w) float grey in [0, 1] -> (N, 80) features."""
        x = grey - grey.mean(dim=(2, 3), keepdim=True)
        first = torch.relu(self.first(x))
        second = torch.relu(self.second(first))
        return torch.cat([first.mean(dim=(2, 3)), first.std(dim=(2, 3)), second.mean(dim=(2, 3)),
                          second.std(dim=(2, 3))], dim=1)


_SHAPES = RandomShapes().eval()


def distance(generated, real):
    """(distance, {group: distance}) between two feature dicts (features() of generated and real images).

    Histograms and profiles compare their mean shares: half the L1 distance, 0 (the same) to 1
    (disjoint), times SHARE_SCALE. Shapes compare each response's means in units of the two sets' pooled
    spread z, as one minus the overlap exp(-z^2 / 8) of two bell curves that far apart (0 to 1, averaged,
    times SHARE_SCALE): bounded like the others, so one response far off cannot outweigh all the rest."""
    parts = {}
    for group, theirs in real.items():
        ours = generated[group]
        if group == "shapes":
            pooled = np.sqrt((ours.var(axis=0) + theirs.var(axis=0)) / 2) + 1e-6
            separation = (ours.mean(axis=0) - theirs.mean(axis=0)) / pooled
            parts[group] = SHARE_SCALE * float(np.mean(1 - np.exp(-separation ** 2 / 8)))
        else:
            parts[group] = SHARE_SCALE * float(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)).sum() / 2)
    return float(np.mean(list(parts.values()))), parts
