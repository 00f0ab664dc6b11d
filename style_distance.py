"""How far generated captchas look from real ones: one number that fit_style.py minimises.

Each image (uint8 (H, W, 3), as the model reads it: transparency composited onto white) is described by
feature groups: grey-level and saturation histograms (colours), gradient histograms (sharpness, stroke
edges), where the ink lies (row and column profiles) and the responses of a small fixed random convolutional network
(stroke shapes and textures: outlines, dots, lines). distance() compares each group (see there) and
averages the groups: 0 is indistinguishable by these features.
"""
import numpy as np
import torch
from torch import nn

GREY_BINS, SATURATION_BINS, GRADIENT_BINS = 16, 8, 8
ROW_BINS, COLUMN_BINS = 8, 16
INK_DEPTH = 30  # grey levels below an image's paper (its 90th percentile) that make a pixel ink
SHARE_SCALE = 4.0  # a share distance of 0.25 (a quarter of the mass moved) weighs 1, as a pooled spread does


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


class RandomShapes(nn.Module):
    """A fixed random convolutional network (seeded, never trained): mean and spread of its responses per
    channel describe stroke shapes and textures without labels."""

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
        """(N, H, W) float grey in [0, 1] -> (N, 80) features."""
        x = grey[:, None] - grey.mean(dim=(1, 2), keepdim=True)[:, None]
        first = torch.relu(self.first(x))
        second = torch.relu(self.second(first))
        return torch.cat([first.mean(dim=(2, 3)), first.std(dim=(2, 3)), second.mean(dim=(2, 3)),
                          second.std(dim=(2, 3))], dim=1)


_SHAPES = RandomShapes().eval()


def features(images):
    """{group: (N, D) float64} of uint8 images (N, H, W, 3), all of one size."""
    pixels = images.astype(np.float32)
    grey = pixels.mean(axis=-1)
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    gradient = np.abs(np.diff(grey, axis=2))[:, 1:, :] + np.abs(np.diff(grey, axis=1))[:, :, 1:]
    paper = np.percentile(grey.reshape(len(grey), -1), 90, axis=1)[:, None, None]
    ink = grey <= paper - INK_DEPTH
    rows, columns = profile(ink, 2, ROW_BINS), profile(ink, 1, COLUMN_BINS)  # ink shares along each axis
    layout = np.concatenate([rows / ROW_BINS, columns / COLUMN_BINS], axis=1)
    shapes = _SHAPES(torch.from_numpy(grey / 255)).numpy()
    return {"colours": np.concatenate([histograms(grey, GREY_BINS, 256), histograms(saturation, SATURATION_BINS, 256)],
                                      axis=1),
            "edges": histograms(gradient, GRADIENT_BINS, 256), "layout": layout, "shapes": shapes}


def distance(generated, real):
    """(distance, {group: distance}) between two feature dicts (features() of generated and real images).

    Histograms and profiles (colours, edges, layout) compare their mean shares: half the L1 distance,
    0 (the same) to 1 (disjoint), times SHARE_SCALE. Shapes compare each response's means in units of
    the two sets' pooled spread (squared, averaged): a feature the real images never vary in cannot
    outweigh the others."""
    parts = {}
    for group, theirs in real.items():
        ours = generated[group]
        if group == "shapes":
            pooled = np.sqrt((ours.var(axis=0) + theirs.var(axis=0)) / 2) + 1e-6
            parts[group] = float(np.mean(((ours.mean(axis=0) - theirs.mean(axis=0)) / pooled) ** 2))
        else:
            parts[group] = SHARE_SCALE * float(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)).sum() / 2)
    return float(np.mean(list(parts.values()))), parts
