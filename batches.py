"""Training batches: a run's data (its folders, or captchas generated on the fly), each epoch's batches in a
seeded order that a resumed run repeats, self-training's reads mixed in, and augmentation.
"""
import dataclasses
import math
import signal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dataset import Charset, DataError, fold_label, load_folder, load_training_data, load_unlabelled, Reading
from images import preprocess
from parameters import worker_count

AUGMENT_AUTO_LIMIT = 50000  # augment='auto' augments training sets smaller than this (real data, not generated)


@dataclasses.dataclass
class Data:
    """What a run trains and tests on."""
    train_set: object  # ImageSet, or None when captchas are generated on the fly (data_mode=generate)
    test_set: object  # ImageSet
    order: object  # int64 (M,): the train_set indices an epoch visits (folder mode)
    unlabelled: object  # ImageSet of unlabelled_dir (self-training), or None
    labelled_per_batch: int  # images of each batch from the training set (the rest: self-training's reads)
    batch_size: int  # images of each batch in all: labelled_per_batch and self-training's reads
    size: int  # training images an epoch visits
    steps_per_epoch: int
    augment: bool
    seed: int  # of each epoch's order and each batch's draws


def load_data(params, world):
    """The Data of a run with `world` processes."""
    if params.data_mode == "generate":
        if params.mix_dir or params.train_repeat != 1 or params.unlabelled_dir:
            raise DataError("mix_dir, train_repeat and unlabelled_dir apply to folders of images (data_mode=folder), "
                            "not to data_mode=generate: generate a folder of captchas to mix with them")
        train_set, order, test_set = None, None, load_folder(params.test_dir, Reading.of(params))
        size = params.train_count
    else:
        train_set, test_set, order = load_training_data(params)
        size = len(order)
    unlabelled = load_unlabelled(params.unlabelled_dir, Reading.of(params)) if params.unlabelled_dir else None
    labelled_per_batch = params.batch_size - pseudo_per_batch(params)
    steps_per_epoch = size // (labelled_per_batch * world)
    if steps_per_epoch < 1:
        raise DataError(f"{size} training images are fewer than one batch of {labelled_per_batch * world}; "
                        f"lower --batch_size")
    if len(test_set) == 0:
        raise DataError("the test set is empty")
    return Data(train_set, test_set, order, unlabelled, labelled_per_batch, params.batch_size, size, steps_per_epoch,
                use_augmentation(params, size), params.seed)


def pseudo_per_batch(params):
    """Images of each training batch taken from self-training's reads of unlabelled_dir (0 without it)."""
    if not params.unlabelled_dir:
        return 0
    checks = ((0 < params.unlabelled_fraction < 1, "unlabelled_fraction must be between 0 and 1"),
              (0 <= params.pseudo_threshold <= 1, "pseudo_threshold must be between 0 and 1"),
              (params.pseudo_views >= 1, "pseudo_views must be at least 1"),
              (params.pseudo_every >= 0, "pseudo_every must be 0 (every epoch) or a number of steps"),
              (not (params.pseudo_align and params.ctc_form),
               "pseudo_align rescales the class shares of character places: use it with --head=positions"))
    for good, message in checks:
        if not good:
            raise DataError(message)
    return max(1, min(params.batch_size - 1, round(params.batch_size * params.unlabelled_fraction)))


def use_augmentation(params, train_size):
    return params.augment == "on" or (params.augment == "auto" and params.data_mode == "folder"
                                      and train_size < AUGMENT_AUTO_LIMIT)


def batch_stream(run, progress):
    """This rank's (images uint8 (B, H, W, 3), targets int64 (B, length)) from the progress's position on,
    epoch after epoch: exactly steps_per_epoch batches an epoch."""
    epoch, first = progress.epoch, progress.batch
    while True:
        if run.data.train_set is None:
            yield from generated_batches(run.params, run.ranks, run.data.steps_per_epoch, epoch, first)
        else:
            yield from folder_batches(run.data, run.ranks, progress, epoch, first)
        epoch, first = epoch + 1, 0


def folder_batches(data, ranks, progress, epoch, first):
    """This rank's batches `first`.. of an epoch over the training folder, in an order seeded by (seed, epoch);
    with self-training, each topped up with captchas of unlabelled_dir and the text last read in them."""
    shuffle = torch.randperm(data.size, generator=torch.Generator().manual_seed(data.seed * 100003 + epoch))
    order = torch.from_numpy(data.order)[shuffle]
    images, targets = torch.from_numpy(data.train_set.images), torch.from_numpy(data.train_set.targets)
    for index in range(first, data.steps_per_epoch):
        start = (index * ranks.world + ranks.rank) * data.labelled_per_batch
        chosen = order[start:start + data.labelled_per_batch]
        # Seeded by position, so a resumed run draws what the uninterrupted one would.
        generator = torch.Generator().manual_seed((data.seed * 1000003 + epoch) * 1000003 + index)
        batch, batch_targets = add_pseudo_labelled(data, progress, images[chosen], targets[chosen], generator)
        if data.augment:
            batch = augment_batch(batch, generator)
        yield batch, batch_targets


def add_pseudo_labelled(data, progress, images, targets, generator):
    """The batch with batch_size - len(images) captchas drawn from those self-training uses (when any)."""
    if data.unlabelled is None or progress.pseudo_used is None or not progress.pseudo_used.any():
        return images, targets
    pool = torch.nonzero(progress.pseudo_used).flatten()
    drawn = pool[torch.randint(len(pool), (data.batch_size - len(images),), generator=generator)]
    unlabelled = torch.from_numpy(data.unlabelled.images[drawn.numpy()])
    return torch.cat([images, unlabelled]), torch.cat([targets, progress.pseudo_targets[drawn]])


def generated_batches(params, ranks, steps_per_epoch, epoch, first):
    """This rank's batches `first`.. of an epoch of fresh captchas as `params` draw them (the generator's
    settings, batch_size, workers), drawn in DataLoader workers."""
    numbers = range(first * ranks.world + ranks.rank, steps_per_epoch * ranks.world, ranks.world)
    stream = GeneratedStream(params, epoch, numbers)
    # batch_size=None: the stream yields whole batches, which the loader hands on in the order of `numbers`.
    yield from DataLoader(stream, batch_size=None, num_workers=min(worker_count(params), len(numbers)),
                          worker_init_fn=ignore_stop_signals)


class GeneratedStream(IterableDataset):
    """Batches of fresh captchas drawn by the generator, each as its file would read back (as_saved):
    (images uint8 (B, H, W, 3), targets (B, length)).

    Batch n of epoch e holds images n*B .. n*B+B-1, image i seeded by (seed, 'stream{e}', i): the same
    data whatever the number of workers or processes, and no two epochs repeat an image. The batch
    numbers `numbers` are shared between the DataLoader's workers in turn.
    """

    def __init__(self, params, epoch, numbers):
        self.params, self.epoch, self.numbers = params, epoch, numbers

    def __iter__(self):
        from custom_captcha_image import make_generator  # the generator is only needed in this mode
        from generate_captcha import as_saved, make_sample
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        params, size = self.params, self.params.batch_size
        generator, charset = make_generator(params), Charset.from_params(params)
        for number in self.numbers[worker::workers]:
            images, targets = [], []
            for index in range(number * size, (number + 1) * size):
                label, image = make_sample(generator, params, f"stream{self.epoch}", index)
                images.append(preprocess(as_saved(image, params), params.image_width, params.image_height))
                targets.append(charset.encode(fold_label(label, params.ignore_case)))
            yield torch.from_numpy(np.stack(images)), torch.tensor(targets)


def ignore_stop_signals(worker_id):
    """DataLoader workers leave Ctrl-C and SIGTERM to the training process, which stops them itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def augment_batch(images, generator):
    """Random small affine jitter (shift, scale, rotation), blur and pixel noise of a uint8 (N, H, W, 3) batch."""
    count = images.shape[0]
    x = images.permute(0, 3, 1, 2).float()
    angle = (torch.rand(count, generator=generator) - 0.5) * math.radians(8)
    scale = 1 + (torch.rand(count, generator=generator) - 0.5) * 0.16
    shift = (torch.rand(count, 2, generator=generator) - 0.5) * 0.12
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Pad with white-ish paper: subtract, sample with zero padding, add back.
    x = F.grid_sample(x - 255, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 255
    # Blur: blend each image with its 3x3 mean by a random weight (0 = sharp, 0.7 = soft).
    weight = torch.rand(count, 1, 1, 1, generator=generator) * 0.7
    x = x + weight * (F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) - x)
    x = x + torch.randn(x.shape, generator=generator) * 6
    return x.clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
