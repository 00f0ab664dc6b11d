"""The training loop: data, model, AdamW with a one-cycle schedule, evaluation, checkpoints, logs.

Run it through main.py (`python main.py --help`). One process by default (CPU, or CUDA when present);
several GPUs with torchrun:

    torchrun --standalone --nproc_per_node=4 main.py --batch_size=256   # batch_size is per GPU

Where a run stands is its Progress (step, epoch, batch in the epoch, training seconds, best and last
metrics). A checkpoint (model_dir/last.pt and best.pt) is one dict: model, optimizer, progress, the
settings of the run, charset and torch RNG state, written atomically. `--resume` takes all of them
from last.pt and continues exactly where the run stopped; Ctrl-C or SIGTERM saves last.pt first.
`--resume --extend=MINUTES` trains a run (finished or not) longer on a short cosine tail.
"""
import csv
import dataclasses
import functools
import io
import math
import os
import shlex
import signal
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from dataset import (Charset, DataError, confusions, decode_logits, fold_label, format_confusions, image_names,
                     load_folder, load_training_data, load_unlabelled, score)
from files import atomic_write
from folder_settings import chosen_settings, from_folders
from images import preprocess
from model import (autocast, batch_logits, build_model, load_checkpoint, measure_batch_norms, parameter_count,
                   save_checkpoint, select_device, use_bf16)
from parameters import (ARCHITECTURE_KEYS, Parameters, ParameterError, ProjectError, saved_parameters,
                        with_saved_settings, worker_count)
from predictor import Predictor

AUGMENT_AUTO_LIMIT = 50000  # augment='auto' augments training sets smaller than this (real data, not generated)
SMALL_SET, SMALL_BATCH, LARGE_BATCH = 20000, 64, 256  # batch_size=0: 64 images a step under 20,000, else 256
DEFAULT_EPOCHS, MIN_STEPS = 10, 2000  # a run with neither epochs nor time_budget: 10 epochs, at least 2,000 steps
BUDGET_EVALUATIONS = 20  # a run its time budget alone sets is evaluated about this many times
MIN_LEARNING_STEPS, LOW_ACCURACY = 300, 0.3  # fewer steps, or a lower test accuracy: the run says it is too short
LOSS_EVERY_STEPS = 20  # a loss row (log, curves, dashboard) at least every this many steps...
LOSS_EVERY_SECONDS = 2.0  # ... and at least every this many seconds of training
# Settings a resumed run may take from the command line: where it reports, how it computes, how often it
# evaluates, and --extend. Every other setting comes from last.pt.
RESUME_MAY_CHANGE = ("visdom", "visdom_server", "visdom_port", "visdom_env", "workers", "threads", "eval_every",
                     "eval_batch_size", "device", "strict", "cache_dir", "extend")
TAIL_FROM, TAIL_TO = 0.1, 0.01  # --extend's cosine tail runs from lr x TAIL_FROM down to lr x TAIL_TO
REPEAT_GRACE = 1.0  # seconds in which a second stop signal is the same request (torchrun passes Ctrl-C on)


@dataclasses.dataclass
class Progress:
    """Where a run stands: what a checkpoint stores beside weights, optimizer, settings and RNG state."""
    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches taken in the current epoch
    seconds: float = 0.0  # training time so far (evaluating and saving not counted)
    best: float = -1.0  # best test accuracy_ignore_case so far (that of best.pt)
    evaluated: int = -1  # step of the last evaluation
    evaluated_seconds: float = 0.0  # training seconds at the last evaluation
    metrics: dict = dataclasses.field(default_factory=dict)  # test metrics of the last evaluation
    tail_start: float = -1.0  # training seconds at which an --extend tail began (-1: the one-cycle schedule)
    pseudo_round: int = 0  # self-training: rounds of reading the unlabelled captchas done
    pseudo_targets: object = None  # self-training: int64 tensor (N, length), the last round's read of each one
    pseudo_used: object = None  # self-training: bool tensor (N,), read confidently alike on every view: trained on
    pseudo_changed: int = 0  # self-training: used reads that differ from the round before

    def advance(self, seconds, steps_per_epoch):
        """One step taken in `seconds`."""
        self.step += 1
        self.batch += 1
        self.seconds += seconds
        if self.batch == steps_per_epoch:
            self.epoch += 1
            self.batch = 0


@dataclasses.dataclass
class Data:
    """What a run trains and tests on."""
    train_set: object  # ImageSet, or None when captchas are generated on the fly (data_mode=generate)
    test_set: object  # ImageSet
    order: object  # int64 (M,): the train_set indices an epoch visits (folder mode)
    unlabelled: object  # ImageSet of unlabelled_dir (self-training), or None
    labelled_per_batch: int  # images of each batch from the training set (the rest: self-training's reads)
    size: int  # training images an epoch visits
    steps_per_epoch: int
    augment: bool


@dataclasses.dataclass
class Run:
    """What a run trains with, fixed once it starts (its Progress is what changes)."""
    params: Parameters
    ranks: object  # Ranks
    device: torch.device
    charset: Charset
    data: Data
    model: torch.nn.Module
    trained: torch.nn.Module  # the model, in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    total_steps: int  # of the one-cycle schedule, epochs x steps_per_epoch; 0 when time_budget alone sets it
    bf16: bool  # training and evaluating in bf16 autocast (amp, with auto resolved for this device)


def train(params, given=None):
    """Train and evaluate as `params` say; returns the final test metrics.

    With params.resume the run in model_dir continues with the settings saved in its last.pt. `given`
    names the settings the user gave (main.py's command line; None: those that differ from last.pt's):
    each must be one of RESUME_MAY_CHANGE or keep the run's value.
    """
    params, checkpoint, progress = start_or_resume(params, given)
    ranks = Ranks()
    try:
        run = set_up(params, ranks, checkpoint)
        log = RunLog(run, progress)
        batches = batch_stream(run, progress)
        predictions, clock = None, time.perf_counter()
        with StopSignals() as signals:
            while True:
                over, interrupted = ranks.agree(run_over(progress, run), signals.caught is not None)
                if over or interrupted:
                    break
                if self_training_due(progress, run):
                    self_training_round(run, progress, log)
                    clock = time.perf_counter()  # reading is not training time
                images, targets = next(batches)
                lr = learning_rate(progress, run)
                loss = train_step(run, images, targets, lr)
                now = time.perf_counter()
                progress.advance(now - clock, run.data.steps_per_epoch)
                log.step(run, progress, lr, loss, len(images) * ranks.world)
                if ranks.main and evaluation_due(progress, params):
                    predictions = evaluate_and_save(run, progress, log)
                    now = time.perf_counter()  # evaluating is not training time
                clock = now
            if interrupted:
                stop_interrupted(run, progress, log, signals.caught)
            if ranks.main and progress.evaluated != progress.step:
                predictions = evaluate_and_save(run, progress, log)
        log.finish(run, progress, predictions)
        ranks.close(together=True)
        return progress.metrics
    finally:
        ranks.close()


def start_or_resume(params, given=None):
    """(settings of the run, last.pt's dict or None, Progress): a new run, or the run in model_dir."""
    if params.extend < 0:
        raise ParameterError(f"--extend must be 0 (off) or minutes to train on, got {params.extend:g}")
    if not params.resume:
        if params.extend:
            raise ParameterError("--extend trains a run longer: use it with --resume --model_dir=RUN")
        Charset.from_params(params)  # a bad charset given is refused before any folder is read
        chosen = chosen_settings(params, given)
        saved = load_checkpoint(params.init_from)["params"] if params.init_from else None
        if saved is not None:  # fine-tuning: the network, its input size too, is the checkpoint's
            params = with_saved_settings(params, saved, [key for key in ARCHITECTURE_KEYS if key != "head"])
            chosen |= set(ARCHITECTURE_KEYS)
        params = settled_batch(from_folders(params, chosen))
        if saved is not None:
            params = fine_tuned_head(params, saved)
        return settled_head(params), None, Progress()
    checkpoint = load_run(params.model_dir)
    saved = saved_parameters(checkpoint["params"])
    if given is None:  # a program's call: what it set away from the defaults and from the run's own settings
        given = [key for key in chosen_settings(params, None) if getattr(params, key) != getattr(saved, key)]
    given = [key for key in given if key not in ("resume", "model_dir")]
    refused = [key for key in given if key not in RESUME_MAY_CHANGE and getattr(params, key) != getattr(saved, key)]
    if refused:
        key = refused[0]
        longer = "; to train longer, add --extend=MINUTES" if key in ("epochs", "time_budget") else ""
        raise ParameterError(f"--{key} cannot change on --resume (the run has {key}={shown(getattr(saved, key))}); "
                             f"a resumed run keeps its settings but {', '.join(RESUME_MAY_CHANGE)}{longer}")
    changes = {key: getattr(params, key) for key in given if key in RESUME_MAY_CHANGE}
    if changes.get("extend") == 0:
        del changes["extend"]  # --extend=0 starts no tail (and an interrupted one goes on)
    params = dataclasses.replace(saved, resume=True, model_dir=params.model_dir, **changes)
    progress = Progress(**checkpoint["progress"])
    if "extend" in changes:
        progress.tail_start = progress.seconds  # a new tail starts here
    return params, checkpoint, progress


def fine_tuned_head(params, saved):
    """`params` with the head of the checkpoint a run fine-tunes from (its saved settings `saved`), unless
    --head names one or the checkpoint's positions heads cannot read this run's lengths; a new head starts
    fresh on the checkpoint's backbone."""
    saved_head = saved_parameters(saved).reader_head
    fewest, most = params.length_range
    if params.head == "auto" and (saved_head == "ctc" or fewest == most):
        params = dataclasses.replace(params, head=saved_head)
    return params


def settled_batch(params):
    """`params` with batch_size=0 (auto) resolved from the size of the training set: SMALL_BATCH images a
    step under SMALL_SET images (a small folder needs many steps more than large batches), else LARGE_BATCH."""
    if params.batch_size:
        return params
    if params.data_mode == "generate":
        size = params.train_count
    else:
        own = len(image_names(params.data_dir or params.train_dir)) * (1 - params.test_split if params.data_dir else 1)
        mixed = (params.mix_count or len(image_names(params.mix_dir))) if params.mix_dir else 0
        size = own * params.train_repeat + mixed
    return dataclasses.replace(params, batch_size=SMALL_BATCH if size < SMALL_SET else LARGE_BATCH)


def settled_head(params):
    """`params` with head=auto resolved (a checkpoint names the head it was trained with), checked against
    the lengths to read."""
    fewest, most = params.length_range
    if params.reader_head == "positions" and fewest != most:
        raise ParameterError(f"--head=positions reads captchas of one length, but captcha_length is "
                             f"{params.captcha_length}: use --head=ctc (or auto)")
    return dataclasses.replace(params, head=params.reader_head)


def shown(value):
    return ",".join(str(item) for item in value) if isinstance(value, tuple) else str(value)


def load_run(model_dir):
    """last.pt of the run in model_dir, with what resuming needs (optimizer, progress, RNG state)."""
    last = os.path.join(model_dir, "last.pt")
    if not os.path.isfile(last):
        raise DataError(f"--resume: no checkpoint at {last}; start without --resume")
    checkpoint = load_checkpoint(last)
    missing = [key for key in ("optimizer", "progress", "torch_rng") if key not in checkpoint]
    if missing:
        raise ProjectError(f"--resume: {last} has no {' or '.join(missing)} to resume from (written by an older "
                           f"version?); start a new run from its weights with --init_from={last}")
    return checkpoint


def set_up(params, ranks, checkpoint):
    """The Run: device, data, model and optimizer (fresh, fine-tuned from init_from, or from last.pt)."""
    device = ranks.setup(select_device(params))
    torch.manual_seed(params.seed)
    charset = Charset.from_params(params)
    data = load_data(params, ranks.world)
    model = build_model(params).to(device)
    check_label_room(model, *[image_set for image_set in (data.train_set, data.test_set) if image_set is not None])
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["torch_rng"])  # after building the model, whose initialisation draws
    elif params.init_from:
        init_from(model, params.init_from, charset)
    trained = torch.nn.parallel.DistributedDataParallel(model) if ranks.world > 1 else model
    return Run(params, ranks, device, charset, data, model, trained, optimizer,
               schedule_steps(params, data.steps_per_epoch), use_bf16(params.amp, device))


def schedule_steps(params, steps_per_epoch):
    """Steps of the one-cycle schedule: `epochs` of them when given; none when time_budget alone sets the
    run (0); with neither, DEFAULT_EPOCHS and at least MIN_STEPS."""
    if params.epochs:
        return params.epochs * steps_per_epoch
    if params.time_budget:
        return 0
    return max(DEFAULT_EPOCHS * steps_per_epoch, MIN_STEPS)


def load_data(params, world):
    """The Data of a run with `world` processes."""
    if params.data_mode == "generate":
        if params.mix_dir or params.train_repeat != 1 or params.unlabelled_dir:
            raise DataError("mix_dir, train_repeat and unlabelled_dir apply to folders of images (data_mode=folder), "
                            "not to data_mode=generate: generate a folder of captchas to mix with them")
        train_set, order, test_set = None, None, load_folder(params.test_dir, params)
        size = params.train_count
    else:
        train_set, test_set, order = load_training_data(params)
        size = len(order)
    unlabelled = load_unlabelled(params.unlabelled_dir, params) if params.unlabelled_dir else None
    labelled_per_batch = params.batch_size - pseudo_per_batch(params)
    steps_per_epoch = size // (labelled_per_batch * world)
    if steps_per_epoch < 1:
        raise DataError(f"{size} training images are fewer than one batch of {labelled_per_batch * world}; "
                        f"lower --batch_size")
    if len(test_set) == 0:
        raise DataError("the test set is empty")
    return Data(train_set, test_set, order, unlabelled, labelled_per_batch, size, steps_per_epoch,
                use_augmentation(params, size))


def pseudo_per_batch(params):
    """Images of each training batch taken from self-training's reads of unlabelled_dir (0 without it)."""
    if not params.unlabelled_dir:
        return 0
    checks = ((0 < params.unlabelled_fraction < 1, "unlabelled_fraction must be between 0 and 1"),
              (0 <= params.pseudo_threshold <= 1, "pseudo_threshold must be between 0 and 1"),
              (params.pseudo_views >= 1, "pseudo_views must be at least 1"),
              (params.pseudo_every >= 0, "pseudo_every must be 0 (every epoch) or a number of steps"),
              (not (params.pseudo_align and params.reader_head == "ctc"),
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
            yield from generated_batches(run, epoch, first)
        else:
            yield from folder_batches(run, progress, epoch, first)
        epoch, first = epoch + 1, 0


def folder_batches(run, progress, epoch, first):
    """Batches `first`.. of an epoch over the training folder, in an order seeded by (seed, epoch); with
    self-training, each topped up with captchas of unlabelled_dir and the text last read in them."""
    params, ranks, data = run.params, run.ranks, run.data
    shuffle = torch.randperm(data.size, generator=torch.Generator().manual_seed(params.seed * 100003 + epoch))
    order = torch.from_numpy(data.order)[shuffle]
    images, targets = torch.from_numpy(data.train_set.images), torch.from_numpy(data.train_set.targets)
    for index in range(first, data.steps_per_epoch):
        start = (index * ranks.world + ranks.rank) * data.labelled_per_batch
        chosen = order[start:start + data.labelled_per_batch]
        # Seeded by position, so a resumed run draws what the uninterrupted one would.
        generator = torch.Generator().manual_seed((params.seed * 1000003 + epoch) * 1000003 + index)
        batch, batch_targets = add_pseudo_labelled(run, progress, images[chosen], targets[chosen], generator)
        if data.augment:
            batch = augment_batch(batch, generator)
        yield batch, batch_targets


def add_pseudo_labelled(run, progress, images, targets, generator):
    """The batch with batch_size - len(images) captchas drawn from those self-training uses (when any)."""
    if run.data.unlabelled is None or progress.pseudo_used is None or not progress.pseudo_used.any():
        return images, targets
    pool = torch.nonzero(progress.pseudo_used).flatten()
    drawn = pool[torch.randint(len(pool), (run.params.batch_size - len(images),), generator=generator)]
    unlabelled = torch.from_numpy(run.data.unlabelled.images[drawn.numpy()])
    return torch.cat([images, unlabelled]), torch.cat([targets, progress.pseudo_targets[drawn]])


def generated_batches(run, epoch, first):
    """Batches `first`.. of an epoch of fresh captchas, drawn in DataLoader workers."""
    params, ranks = run.params, run.ranks
    numbers = range(first * ranks.world + ranks.rank, run.data.steps_per_epoch * ranks.world, ranks.world)
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


def schedule_fraction(progress, run):
    """How far the schedule has gone, 0 to 1 (and past it when over): through an --extend tail's minutes,
    else the larger of steps over epochs x steps_per_epoch and time over time_budget."""
    params = run.params
    if progress.tail_start >= 0:
        return (progress.seconds - progress.tail_start) / (params.extend * 60)
    by_time = progress.seconds / (params.time_budget * 60) if params.time_budget > 0 else 0.0
    return max(progress.step / run.total_steps if run.total_steps else 0.0, by_time)


def learning_rate(progress, run):
    """One-cycle: linear warm-up to lr, then cosine down to lr/100. An --extend tail: cosine from
    lr x TAIL_FROM down to lr x TAIL_TO, no warm-up (the weights are trained already)."""
    lr, fraction = run.params.lr, min(1.0, schedule_fraction(progress, run))
    if progress.tail_start >= 0:
        return lr * (TAIL_TO + (TAIL_FROM - TAIL_TO) * 0.5 * (1 + math.cos(math.pi * fraction)))
    if fraction < run.params.warmup:
        return lr * max(fraction / run.params.warmup, 0.01)
    remaining = (fraction - run.params.warmup) / max(1e-9, 1 - run.params.warmup)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * remaining)))


def run_over(progress, run):
    """The schedule is done, or (before any --extend) the test accuracy reached target_accuracy."""
    params = run.params
    metric = progress.metrics.get("accuracy_ignore_case" if params.ignore_case else "accuracy", 0.0)
    reached = params.target_accuracy > 0 and progress.tail_start < 0 and metric >= params.target_accuracy
    return reached or schedule_fraction(progress, run) >= 1


def train_step(run, images, targets, lr):
    """One AdamW step at learning rate `lr`; returns the loss (a 0-d tensor)."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    images, targets = images.to(run.device, non_blocking=True), targets.to(run.device, non_blocking=True)
    with autocast(run.device, run.bf16):
        logits = run.trained(images)  # (B, steps, classes)
    if run.charset.ctc:
        loss = ctc_loss(logits, targets)
    else:
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                               label_smoothing=run.params.label_smoothing) * run.charset.length
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss.detach()


def ctc_loss(logits, targets):
    """CTC loss of column logits (B, columns, 1 + classes) against character indices (B, length), -1 after
    a label's end; summed over a captcha's characters like the positions loss, averaged over captchas."""
    log_probabilities = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (columns, B, 1 + classes)
    present = targets >= 0
    columns = torch.full((len(targets),), log_probabilities.shape[0], dtype=torch.long)
    # Class 0 is the blank: character i is class i + 1. zero_infinity: a label the columns cannot hold
    # (refused before training, see check_label_room) would otherwise poison the whole batch.
    return F.ctc_loss(log_probabilities, targets[present] + 1, columns, present.sum(dim=1), blank=0,
                      reduction="sum", zero_infinity=True) / len(targets)


def columns_needed(label):
    """Feature columns CTC needs to emit `label`: one a character, and a blank between doubled ones."""
    return len(label) + sum(a == b for a, b in zip(label, label[1:]))


def check_label_room(model, *image_sets):
    """A CTC model must have a feature column for every character of a label and a blank between doubled
    ones: a label that needs more is a one-line error before training."""
    if model.head != "ctc":
        return
    for image_set in image_sets:
        label = max((label for label in image_set.labels if label), key=columns_needed, default="")
        if columns_needed(label) > model.columns:
            raise DataError(f"label {label!r} needs {columns_needed(label)} feature columns (a character each and a "
                            f"blank between doubled ones); the model has {model.columns} (image width "
                            f"{model.input_size[1]} / feature_stride): lower --feature_stride")


def evaluation_due(progress, params):
    """After this step: every eval_every steps, and at the end of every eval_epochs-th epoch; in a run that
    its time budget alone sets, at an epoch's end once 1/BUDGET_EVALUATIONS of the budget has passed since
    the last evaluation (a small folder's epochs take seconds: evaluating each would cost a quarter of
    the run)."""
    if params.eval_every and progress.step % params.eval_every == 0:
        return True
    if progress.batch != 0:
        return False
    if params.time_budget and not params.epochs:
        return progress.seconds - progress.evaluated_seconds >= params.time_budget * 60 / BUDGET_EVALUATIONS
    return progress.epoch % max(1, params.eval_epochs) == 0


def self_training_due(progress, run):
    """A self-training round is due: at the start of every epoch (pseudo_every 0), else every pseudo_every
    steps, and once at the very start."""
    return run.data.unlabelled is not None and progress.pseudo_round <= self_training_round_index(progress, run.params)


def self_training_round_index(progress, params):
    """The round the run is in: its epoch (pseudo_every 0), else its step // pseudo_every."""
    return progress.step // params.pseudo_every if params.pseudo_every else progress.epoch


def read_views(run, images, round_index):
    """Class probabilities float32 (views, N, length, classes) of uint8 images (N, H, W, 3): the images as
    they are, and pseudo_views - 1 augmented copies seeded by (seed, round, view)."""
    params, model = run.params, run.model
    model.eval()
    views = []
    for view in range(params.pseudo_views):
        chunks = []
        for start in range(0, len(images), params.eval_batch_size):
            batch = images[start:start + params.eval_batch_size]
            if view:
                seed = (params.seed * 1000003 + round_index) * 1009 + view
                batch = augment_batch(torch.from_numpy(batch), torch.Generator().manual_seed(seed)).numpy()
            chunks.append(batch_logits(model, run.device, run.bf16, batch))
        views.append(torch.softmax(torch.from_numpy(np.concatenate(chunks)).float(), dim=-1))
    model.train()
    return torch.stack(views)


def confident_reads(probabilities, charset, threshold):
    """(targets int64 (N, length), used bool (N,)) from class probabilities (views, N, steps, classes): each
    view decoded as prediction decodes; a read is used when every view reads the same text, it fits the
    charset's lengths and each of its characters is at least `threshold` sure (mean over the views)."""
    reads = [decode_logits(view.clamp(min=1e-12).log().numpy(), charset) for view in probabilities]
    texts = reads[0][0]
    used, targets = [], []
    for index, text in enumerate(texts):
        use = all(view_texts[index] == text for view_texts, _ in reads) and charset.problem(text) is None
        sure = np.mean([confidences[index] for _, confidences in reads], axis=0) if use else np.zeros(0)
        use = use and bool(sure.size) and float(sure.min()) >= threshold
        used.append(use)
        targets.append(charset.encode(text) if use else [-1] * charset.length)
    return torch.tensor(targets, dtype=torch.int64).reshape(-1, charset.length), torch.tensor(used, dtype=torch.bool)


def training_label_shares(run):
    """float32 (classes,): each class's share of the characters an epoch of the training set holds."""
    targets = torch.from_numpy(run.data.train_set.targets[run.data.order]).flatten()
    targets = targets[targets >= 0]  # no padding
    return torch.bincount(targets, minlength=len(run.charset)).float() / max(1, targets.numel())


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
    pseudo_threshold confidence in each character (views' mean, aligned with pseudo_align) join training
    with the text read."""
    unlabelled, params = run.data.unlabelled, run.params
    round_index = self_training_round_index(progress, params)
    normalise_for_the_site(run)
    probabilities = read_views(run, unlabelled.images, round_index)  # (views, N, length, classes)
    if params.pseudo_align:
        probabilities = aligned(probabilities, training_label_shares(run))
    targets, used = confident_reads(probabilities, run.charset, params.pseudo_threshold)
    changed = 0
    if progress.pseudo_targets is not None:
        changed = int((used & (targets != progress.pseudo_targets).any(dim=-1)).sum())
    progress.pseudo_targets, progress.pseudo_used = targets, used
    progress.pseudo_round, progress.pseudo_changed = round_index + 1, changed
    log.self_training(progress, len(unlabelled))


def normalise_for_the_site(run):
    """With target_batch_norm, the batch-norm statistics measured on the unlabelled captchas (the model then
    reads them, and is saved, normalising as they need; training's batches measure their own)."""
    if run.params.target_batch_norm and run.data.unlabelled is not None:
        measure_batch_norms(run.model, run.device, run.data.unlabelled.images, run.params.eval_batch_size)


def evaluate_and_save(run, progress, log):
    """Test the model (through predictor.py's Predictor, as prediction reads), log the metrics, save last.pt
    and, when the best so far, best.pt; returns the test predictions."""
    normalise_for_the_site(run)
    run.model.eval()
    predictor = Predictor(functools.partial(batch_logits, run.model, run.device, run.bf16), run.charset,
                          run.params, run.params, run.device)
    test = run.data.test_set
    metrics, predictions = score(predictor.logits(test.images), test.labels, run.charset)
    run.model.train()
    improved = metrics["accuracy_ignore_case"] > progress.best
    progress.metrics, progress.evaluated, progress.evaluated_seconds = metrics, progress.step, progress.seconds
    progress.best = max(progress.best, metrics["accuracy_ignore_case"])
    log.evaluation(progress, metrics, test, predictions)
    checkpoint = checkpoint_of(run, progress)
    if improved:
        save_checkpoint(os.path.join(run.params.model_dir, "best.pt"), checkpoint)
    save_checkpoint(os.path.join(run.params.model_dir, "last.pt"), checkpoint)
    return predictions


def checkpoint_of(run, progress):
    """The one dict a checkpoint is."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "progress": dataclasses.asdict(progress), "params": dataclasses.asdict(run.params),
            "charset": run.charset.chars, "torch_rng": torch.get_rng_state()}


def stop_interrupted(run, progress, log, number):
    """Save last.pt (rank 0), say how to continue, and exit with 128 + the signal's number."""
    log.close()
    if run.ranks.main:
        last = os.path.join(run.params.model_dir, "last.pt")
        save_checkpoint(last, checkpoint_of(run, progress))
        print(f"\ninterrupted: saved {last} at step {progress.step}; continue with: "
              f"{resume_command(run)}", flush=True)
    run.ranks.close(together=True)
    raise SystemExit(128 + number)


def resume_command(run):
    """The command that continues this run, as it can be pasted into the shell it was started from."""
    def short(path):
        return min(path, os.path.relpath(path), key=len)

    script = short(os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py"))
    if run.ranks.world > 1:
        torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
        launcher = f"{shlex.quote(short(torchrun) if os.path.isfile(torchrun) else 'torchrun')} --standalone " \
                   f"--nproc_per_node={run.ranks.world}"
    else:
        launcher = shlex.quote(short(sys.executable))
    return f"{launcher} {shlex.quote(script)} --resume --model_dir={shlex.quote(run.params.model_dir)}"


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM only set `caught`: the step in flight finishes, so last.pt always holds a
    consistent (weights, optimizer, progress). A second signal stops at once (KeyboardInterrupt)."""

    NUMBERS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.caught, self.at, self.previous = None, 0.0, {}

    def __enter__(self):
        # Handlers can only be installed from the main thread (not, e.g., in a test's worker thread).
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self.handle) for number in self.NUMBERS}
        return self

    def __exit__(self, *exception):
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def handle(self, number, frame):
        if self.caught is None:
            self.caught, self.at = number, time.monotonic()
        elif time.monotonic() - self.at > REPEAT_GRACE:
            raise KeyboardInterrupt


class Ranks:
    """torchrun's processes (DistributedDataParallel) when WORLD_SIZE > 1, else one process, rank 0 of 1."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device("cpu")

    def setup(self, device):
        if self.world > 1:
            if device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.device = device
        return device

    @property
    def main(self):
        return self.rank == 0

    def agree(self, *flags):
        """Each flag, true when it is true on any rank: all ranks stop at the same step (a time budget may
        run out on one rank a step earlier, a signal reach one rank first)."""
        if self.world == 1:
            return flags
        values = torch.tensor([float(flag) for flag in flags], device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(bool(value) for value in values.tolist())

    def close(self, together=False):
        """Leave the process group. `together` (a normal end): first wait until every rank is here, so that
        no rank tears its connections down while another still uses them (gloo then aborts the process)."""
        if self.world > 1 and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


def remap_heads(state, old_chars, new_chars):
    """Head weights trained for `old_chars` rearranged for `new_chars` (shared characters keep theirs; a CTC
    head's blank, its class 0, keeps its own)."""
    remapped = {}
    for key, value in state.items():
        old, new = (("",) + tuple(old_chars), ("",) + tuple(new_chars)) if key.startswith("ctc_head.") \
            else (tuple(old_chars), tuple(new_chars))
        if key.startswith(("heads.", "ctc_head.")) and value.shape[0] == len(old):
            rows = value.new_zeros((len(new),) + tuple(value.shape[1:]))
            if value.dim() == 2:
                torch.nn.init.normal_(rows, std=0.01)
            for new_index, char in enumerate(new):
                if char in old:
                    rows[new_index] = value[old.index(char)]
            value = rows
        remapped[key] = value
    return remapped


def init_from(model, path, charset):
    """Load a checkpoint's weights for fine-tuning; heads follow the characters when charsets differ."""
    checkpoint = load_checkpoint(path)
    state = remap_heads(checkpoint["model"], checkpoint["charset"], charset.chars)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(usable))
    model.load_state_dict(usable, strict=False)
    note = f" (not loaded, shapes differ: {', '.join(skipped[:4])}{' ...' if len(skipped) > 4 else ''})" if skipped else ""
    print(f"initialised from {path}: {len(usable)} of {len(own)} tensors{note}")


class RunLog:
    """Everything a run reports, from rank 0 only (elsewhere every method does nothing): the console,
    model_dir/log.csv, curves.png drawn from it, and the visdom dashboard.

    A loss row (the mean since the last one) every LOSS_EVERY_SECONDS of training or LOSS_EVERY_STEPS
    steps, whichever comes first; a test row for every evaluated step.
    """

    FIELDS = ["step", "epoch", "seconds", "images_per_s", "lr", "train_loss", "accuracy", "accuracy_ignore_case",
              "char_accuracy", "pseudo_used", "pseudo_changed"]

    def __init__(self, run, progress):
        self.active = run.ranks.main
        if not self.active:
            return
        from Visdom import Dashboard  # visdom is imported only by the process that plots
        params = run.params
        self.path = os.path.join(params.model_dir, "log.csv")
        self.curves = os.path.join(params.model_dir, "curves.png")
        # A resumed run drops the rows a killed process wrote after its last.pt: one row per step and kind.
        self.rows = [row for row in self.read() if int(row["step"]) <= progress.step] if params.resume else []
        atomic_write(self.path, self.csv_text(self.rows))  # and removes a killed run's half-written log.csv
        self.dashboard = Dashboard(params)
        self.window = [0.0, 0, 0, progress.seconds]  # loss sum, steps, images, training seconds at its start
        self.describe(run, progress)
        # The bar follows the schedule, in per cent: steps or minutes, whichever ends the run (a time-budgeted
        # run's step count is only an upper bound).
        self.bar = tqdm(total=100.0, initial=self.percent(run, progress), dynamic_ncols=True, mininterval=2.0,
                        bar_format="{percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")

    @staticmethod
    def percent(run, progress):
        return round(min(1.0, schedule_fraction(progress, run)) * 100, 2)

    def read(self):
        if not os.path.isfile(self.path):
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def csv_text(self, rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, self.FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return text.getvalue()

    def add(self, **row):
        row = {key: row.get(key, "") for key in self.FIELDS}
        self.rows.append(row)
        with open(self.path, "a", newline="") as handle:
            handle.write(self.csv_text([row]).split("\n", 1)[1])

    def describe(self, run, progress):
        params, data = run.params, run.data
        if params.resume:
            print(f"resuming {params.model_dir}/last.pt at step {progress.step} (epoch {progress.epoch + 1}, "
                  f"batch {progress.batch})")
        if progress.tail_start >= 0:
            print(f"extending the run by {params.extend:g} min from {progress.seconds / 60:.1f}: learning rate "
                  f"{params.lr * TAIL_FROM:.1e} down to {params.lr * TAIL_TO:.1e}, no warm-up")
        print(f"device {run.device} ({precision_text(params.amp, run.bf16)}), {parameter_count(run.model) / 1e6:.2f}M "
              f"parameters, {params.head} head, {len(run.charset)} classes x {run.charset.lengths} characters at "
              f"{params.image_width}x{params.image_height}, {data.size} training and {len(data.test_set)} test images, "
              f"batch {params.batch_size}, {data.steps_per_epoch} steps an epoch"
              + (", augmented" if data.augment else "")
              + f", {run_length_text(params, run.total_steps)}", flush=True)

    def step(self, run, progress, lr, loss, images):
        """One training step: the loss (a 0-d tensor) and images it saw (all ranks)."""
        if not self.active:
            return
        self.bar.update(self.percent(run, progress) - self.bar.n)
        self.window[0] += loss.item()
        self.window[1] += 1
        self.window[2] += images
        elapsed = progress.seconds - self.window[3]
        if self.window[1] < LOSS_EVERY_STEPS and elapsed < LOSS_EVERY_SECONDS:
            return
        mean, speed = self.window[0] / self.window[1], self.window[2] / max(1e-9, elapsed)
        self.bar.set_postfix(step=progress.step, loss=f"{mean:.3f}", lr=f"{lr:.2e}", img_s=f"{speed:.0f}")
        self.add(step=progress.step, epoch=progress.epoch, seconds=f"{progress.seconds:.1f}", lr=f"{lr:.6f}",
                 train_loss=f"{mean:.4f}", images_per_s=f"{speed:.0f}")
        self.dashboard.plot_loss(progress.step, mean)
        self.dashboard.plot_lr(progress.step, lr)
        self.window = [0.0, 0, 0, progress.seconds]

    def evaluation(self, progress, metrics, test, predictions):
        if not self.active:
            return
        self.add(step=progress.step, epoch=progress.epoch, seconds=f"{progress.seconds:.1f}",
                 **{key: f"{value:.5f}" for key, value in metrics.items()})
        draw_curves(self.rows, self.curves)
        self.dashboard.plot_accuracy(progress.step, metrics["accuracy"], metrics["accuracy_ignore_case"],
                                     metrics["char_accuracy"])
        shown = min(24, len(test))
        self.dashboard.show_predictions(test.images[:shown], test.labels[:shown], predictions[:shown])
        tqdm.write(f"step {progress.step}: test accuracy {metrics['accuracy']:.4f}, ignoring case "
                   f"{metrics['accuracy_ignore_case']:.4f}, per character {metrics['char_accuracy']:.4f}")

    def self_training(self, progress, total):
        """A self-training round: how many unlabelled captchas training now uses, how many reads changed."""
        if not self.active:
            return
        used = int(progress.pseudo_used.sum())
        self.add(step=progress.step, epoch=progress.epoch, seconds=f"{progress.seconds:.1f}", pseudo_used=used,
                 pseudo_changed=progress.pseudo_changed)
        self.dashboard.plot_self_training(progress.step, used, progress.pseudo_changed)
        tqdm.write(f"step {progress.step}: self-training round {progress.pseudo_round}: {used} of {total} unlabelled "
                   f"captchas read confidently and used, {progress.pseudo_changed} of their reads changed")

    def close(self):
        if self.active:
            self.bar.close()

    def finish(self, run, progress, predictions):
        """The closing summary (or, for a run that was over before it resumed, how to extend it)."""
        self.close()
        if not self.active:
            return
        params, labels = run.params, run.data.test_set.labels
        if predictions is None:
            print(f"the run in {params.model_dir} is over (step {progress.step}); train it longer with: "
                  f"{resume_command(run)} --extend=MINUTES")
            return
        metrics, seconds = progress.metrics, progress.seconds
        print(f"\ntrained {progress.step} steps in {seconds / 60:.1f} min "
              f"({progress.step * params.batch_size * run.ranks.world / max(1e-9, seconds):.0f} images/s) "
              f"on {run.data.size} images")
        print(f"test accuracy: {metrics['accuracy']:.4f} case-sensitive, {metrics['accuracy_ignore_case']:.4f} "
              f"case-insensitive, {metrics['char_accuracy']:.4f} per character ({len(labels)} captchas)")
        print(f"most frequent confusions (truth->prediction): {format_confusions(confusions(predictions, labels))}")
        print(f"checkpoints: {params.model_dir}/best.pt, {params.model_dir}/last.pt; curves: "
              f"{self.curves}; log: {self.path}", flush=True)
        for note in stop_notes(run, progress):
            print(note, flush=True)


def precision_text(amp, bf16):
    """'bf16' or 'fp32', and why when amp=auto chose it."""
    name = "bf16" if bf16 else "fp32"
    return f"{name}: amp=auto, measured faster here" if amp == "auto" else f"{name}: amp={amp}"


def run_length_text(params, total_steps):
    """What ends the run: '10 min budget', '10 min budget or 5 epochs, whichever comes first', '4,000 steps'."""
    if params.time_budget and total_steps:
        return f"{params.time_budget:g} min budget or {params.epochs} epochs, whichever comes first"
    if params.time_budget:
        return f"{params.time_budget:g} min budget, schedule fitted to it"
    return f"{total_steps:,} steps" + (f" ({params.epochs} epochs)" if params.epochs else "")


def stop_notes(run, progress):
    """Lines on how the run ended when that was not what the user might expect: stopped before its time
    budget (epochs reached, target accuracy reached), or too little training to learn its data."""
    params, notes = run.params, []
    metric = progress.metrics.get("accuracy_ignore_case" if params.ignore_case else "accuracy", 0.0)
    left = params.time_budget - progress.seconds / 60
    if params.time_budget and progress.tail_start < 0 and left > 0.05 * params.time_budget:
        if params.target_accuracy and metric >= params.target_accuracy:
            why = f"test accuracy {metric:.4f} reached --target_accuracy={params.target_accuracy:g}"
        else:
            why = f"its {params.epochs} epochs (--epochs) were done; without --epochs the budget sets the run"
        notes.append(f"stopped early: {why}, with {left:.1f} of {params.time_budget:g} minutes left")
    speed = progress.step * params.batch_size * run.ranks.world / max(1e-9, progress.seconds)
    if progress.step < MIN_LEARNING_STEPS or metric < LOW_ACCURACY:
        why = f"only {progress.step} steps" if progress.step < MIN_LEARNING_STEPS else f"test accuracy {metric:.4f}"
        notes.append(f"warning: {why}: too little training to learn this data ({speed:.0f} images/s here); train "
                     f"longer: run again with a larger --time_budget (or --epochs), or continue this run with "
                     f"{resume_command(run)} --extend=10")
    return notes


def draw_curves(rows, path):
    """curves.png from log.csv's rows: training loss, and test accuracy (PIL: no plotting library needed)."""
    def series(key):
        return [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]

    panels = [("train loss", [("train_loss", (200, 60, 40))]),
              ("test accuracy", [("accuracy", (40, 90, 200)), ("accuracy_ignore_case", (30, 150, 60)),
                                 ("char_accuracy", (150, 150, 150))])]
    width, height, margin = 520, 300, 46
    canvas = Image.new("RGB", (width * len(panels), height), "white")
    draw = ImageDraw.Draw(canvas)
    for number, (title, lines) in enumerate(panels):
        left = number * width + margin
        box = (left, 24, left + width - margin - 16, height - 30)
        draw.rectangle(box, outline="black")
        draw.text((left, 6), title, fill="black")
        points = [p for key, _ in lines for p in series(key)]
        if not points:
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs) + 1e-9
        y0, y1 = (0.0, 1.0) if title.startswith("test") else (0.0, max(ys) * 1.05 + 1e-9)
        for fraction in (0, 0.5, 1):
            y = box[3] - fraction * (box[3] - box[1])
            draw.text((left - 40, y - 6), f"{y0 + fraction * (y1 - y0):.2f}", fill="black")
        draw.text((box[2] - 60, box[3] + 4), f"step {int(x1)}", fill="black")
        for row, (key, color) in enumerate(lines):
            xy = [(box[0] + (x - x0) / (x1 - x0) * (box[2] - box[0]),
                   box[3] - (min(max(y, y0), y1) - y0) / (y1 - y0) * (box[3] - box[1])) for x, y in series(key)]
            if len(xy) > 1:
                draw.line(xy, fill=color, width=2)
            elif xy:
                draw.ellipse((xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2), fill=color)
            if len(lines) > 1:
                draw.text((box[0] + 6, box[1] + 4 + 12 * row), key, fill=color)
    atomic_write(path, lambda handle: canvas.save(handle, format="PNG"))
