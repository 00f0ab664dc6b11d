"""Self-training: read the site's unlabelled captchas with the model being trained; the reads it is sure of
(every view alike, each character confident enough; with pseudo_surest, also the plain read's surest that read
the same when the captcha is moved a few pixels) join training with the text read.
"""
import dataclasses
import functools
import math

import numpy as np
import torch

from batches import augment_batch
from dataset import decode_logits, least_confidence
from images import moved
from model import batch_logits, measure_batch_norms

# pixels a captcha is moved left and right to check that a read of it is steady, the gap white as training's
# augmentation pads it (the edge columns repeated drew a bar of pku_elective's border that the model read
# otherwise: 1% alike). The surest fifth of a generated model's plain reads were 0.61 right on
# advrpg_digits' dotted digits, 0.84 on pku_elective; those of them read the same moved 3 pixels either
# way 0.83 and 0.91 (2 pixels: 0.80 and 0.88; docs/RESULTS.md)
SHIFT = 3


@dataclasses.dataclass(frozen=True)
class SelfTraining:
    """How a run reads the site's unlabelled captchas and which reads it trains on (the pseudo_* settings)."""
    threshold: float  # each character of a read used is at least this sure (mean over the views), 0 to 1
    views: int  # reads that must agree: the image as it is, and views - 1 augmented copies
    surest: float  # share of the plain reads, the surest, used too when they read the same moved SHIFT px, 0-1
    align: bool  # class probabilities rescaled to the training labels' class shares before picking (aligned)
    every: int  # steps between rounds (0: a round at the start of every epoch)
    keep: bool  # a read that a round is unsure of keeps its earlier confident text
    site_batch_norm: bool  # batch-norm statistics measured on the site's captchas (target_batch_norm)
    read_batch: int  # images read at once
    seed: int  # of the augmented views

    @classmethod
    def of(cls, params):
        return cls(params.pseudo_threshold, params.pseudo_views, params.pseudo_surest, params.pseudo_align,
                   params.pseudo_every, params.pseudo_keep, params.target_batch_norm, params.eval_batch_size,
                   params.seed)

    def round_index(self, progress):
        """The round the run is in: its epoch (every 0), else its step // every."""
        return progress.step // self.every if self.every else progress.epoch

    def due(self, progress):
        """A round is due: at the start of every epoch (every 0), else every `every` steps, and once at the
        very start."""
        return progress.pseudo_round <= self.round_index(progress)


def self_training_due(progress, run):
    """The run self-trains (it has unlabelled captchas) and a round is due."""
    return run.data.unlabelled is not None and run.self_training.due(progress)


def read_views(model, device, bf16, images, config, round_index):
    """Class probabilities float32 (views, N, length, classes) of uint8 images (N, H, W, 3) read by `model`:
    the images as they are, and config.views - 1 augmented copies seeded by (seed, round, view)."""
    views = [read_images(model, device, bf16, images, config.read_batch)]
    for view in range(1, config.views):
        seed = (config.seed * 1000003 + round_index) * 1009 + view
        views.append(read_images(model, device, bf16, images, config.read_batch, functools.partial(augmented, seed)))
    return torch.stack(views)


def read_moved(model, device, bf16, images, config):
    """Class probabilities float32 (2, N, length, classes) of the images moved SHIFT pixels right, and left."""
    return torch.stack([read_images(model, device, bf16, moved(images, pixels, fill=255), config.read_batch)
                        for pixels in (SHIFT, -SHIFT)])


def read_images(model, device, bf16, images, read_batch, transform=None):
    """Class probabilities float32 (N, length, classes) of uint8 images (N, H, W, 3), `read_batch` at a time,
    each batch passed through `transform` first; the model in eval mode while it reads."""
    model.eval()
    chunks = []
    for start in range(0, len(images), read_batch):
        batch = images[start:start + read_batch]
        chunks.append(batch_logits(model, device, bf16, transform(batch) if transform else batch))
    model.train()
    return torch.softmax(torch.from_numpy(np.concatenate(chunks)).float(), dim=-1)


def augmented(seed, batch):
    """uint8 batch (N, H, W, 3) augmented as training augments, by a generator seeded `seed`."""
    return augment_batch(torch.from_numpy(batch), torch.Generator().manual_seed(seed)).numpy()


def confident_reads(probabilities, charset, threshold, surest=0.0, moved_probabilities=()):
    """(targets int64 (N, length), used bool (N,)) from class probabilities (views, N, steps, classes): each
    view decoded as prediction decodes; a read is used when every view reads the same text, it fits the
    charset's lengths and each of its characters is at least `threshold` sure (mean over the views). With
    `surest` and the reads of the captchas moved (moved_probabilities: (moves, N, steps, classes)), the plain
    reads among the `surest` share of all (by their least sure character) that fit the charset and read the
    same moved are used too: a model unsure of a site can read its augmented views apart (on pku_elective they
    agreed with the plain read on 6% of it, whose surest fifth was 0.85 right), while the surest alone can be
    often wrong (advrpg_digits' dotted digits: 0.61 right, and self-training on them lost 0.08; those read the
    same moved: 0.83 right; docs/RESULTS.md)."""
    reads = [decoded(view, charset) for view in probabilities]
    texts, plain = reads[0]
    fits = np.array([charset.problem(text) is None for text in texts], dtype=bool)
    used = np.array([fit and all_views_sure(reads, index, threshold) for index, fit in enumerate(fits)], dtype=bool)
    if surest and len(moved_probabilities):
        used |= surest_of(fits, np.array([least_confidence(sure) for sure in plain]), surest) & read_alike(
            texts, moved_probabilities, charset)
    targets = [charset.encode(text) if use else [-1] * charset.length for text, use in zip(texts, used)]
    return torch.tensor(targets, dtype=torch.int64).reshape(-1, charset.length), torch.from_numpy(used)


def all_views_sure(reads, index, threshold):
    """Every view of read `index` has the plain read's text, each character `threshold` sure on their mean."""
    if any(texts[index] != reads[0][0][index] for texts, _ in reads):
        return False
    sure = np.mean([confidences[index] for _, confidences in reads], axis=0)
    return bool(sure.size) and float(sure.min()) >= threshold


def surest_of(fits, sureness, share):
    """bool (N,): of the reads that fit, the `share` of all N whose `sureness` is highest."""
    candidates = np.flatnonzero(fits)
    chosen = np.zeros(len(fits), dtype=bool)
    chosen[candidates[np.argsort(-sureness[candidates], kind="stable")[:math.ceil(share * len(fits))]]] = True
    return chosen


def read_alike(texts, moved_probabilities, charset):
    """bool (N,): each of the N `texts` is what every view in moved_probabilities (moves, N, steps, classes) reads."""
    alike = np.ones(len(texts), dtype=bool)
    for view in moved_probabilities:
        alike &= np.array(decoded(view, charset)[0]) == np.array(texts)
    return alike


def decoded(probabilities, charset):
    """(texts, confidences) of class probabilities (N, steps, classes), decoded as prediction decodes logits."""
    return decode_logits(probabilities.clamp(min=1e-12).log().numpy(), charset)


def kept_reads(targets, used, old_targets, old_used):
    """(targets (N, length), used (N,)): this round's confident reads, and the earlier rounds' reads of the
    captchas this round is unsure of (a read that drops below the threshold for a round stays; one read
    confidently otherwise takes the new text)."""
    kept = old_used & ~used
    return torch.where(kept[:, None], old_targets, targets), used | old_used


def training_label_shares(data, classes):
    """float32 (classes,): each class's share of the characters an epoch of the training set holds."""
    targets = torch.from_numpy(data.train_set.targets[data.order]).flatten()
    targets = targets[targets >= 0]  # no padding
    return torch.bincount(targets, minlength=classes).float() / max(1, targets.numel())


def aligned(probabilities, shares):
    """Class probabilities (..., classes) rescaled so that their mean over all reads matches `shares`
    (distribution alignment). A model trained on generated captchas under-reads some class of the real
    site (its G read as C); self-training can teach it that misreading. Rescaled, the class it under-reads
    gains what the one it over-reads loses, before the confident reads are picked. That holds when the
    site draws its characters as the generator does; where it draws some more often (swust's B), it
    pushes the other way (docs/RESULTS.md), so pseudo_align is off by default."""
    mean = probabilities.reshape(-1, probabilities.shape[-1]).mean(dim=0)  # (classes,)
    scaled = probabilities * (shares / mean.clamp(min=1e-8))
    return scaled / scaled.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def self_training_round(run, progress, log):
    """Read every unlabelled captcha with the current model; those read alike on every view with at least
    pseudo_threshold confidence in each character (views' mean, aligned with pseudo_align), and with
    pseudo_surest the surest plain reads that read the same moved, join training with the text read."""
    unlabelled, config = run.data.unlabelled, run.self_training
    round_index = config.round_index(progress)
    normalise_for_the_site(run)
    probabilities = read_views(run.model, run.device, run.bf16, unlabelled.images, config, round_index)
    if config.surest:  # the reads of the captchas moved after the views': (views + 2, N, length, classes)
        moved_reads = read_moved(run.model, run.device, run.bf16, unlabelled.images, config)
        probabilities = torch.cat([probabilities, moved_reads])
    if config.align:
        probabilities = aligned(probabilities, training_label_shares(run.data, len(run.charset)))
    targets, used = confident_reads(probabilities[:config.views], run.charset, config.threshold, config.surest,
                                    probabilities[config.views:])
    changed = 0
    if progress.pseudo_targets is not None:
        changed = int((used & progress.pseudo_used & (targets != progress.pseudo_targets).any(dim=-1)).sum())
        if config.keep:
            targets, used = kept_reads(targets, used, progress.pseudo_targets, progress.pseudo_used)
    progress.pseudo_targets, progress.pseudo_used = targets, used
    progress.pseudo_round, progress.pseudo_changed = round_index + 1, changed
    log.self_training(progress, len(unlabelled))


def normalise_for_the_site(run):
    """With target_batch_norm, the batch-norm statistics measured on the unlabelled captchas (the model then
    reads them, and is saved, normalising as they need; training's batches measure their own)."""
    if run.self_training.site_batch_norm and run.data.unlabelled is not None:
        measure_batch_norms(run.model, run.device, run.data.unlabelled.images, run.self_training.read_batch)
