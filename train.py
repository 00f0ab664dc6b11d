"""The training loop: data, model, AdamW with a one-cycle schedule, evaluation, checkpoints, logs.

Run it through main.py (`python main.py --help`). One process by default (CPU, or CUDA when present);
several GPUs with torchrun:

    torchrun --standalone --nproc_per_node=4 main.py --batch_size=256   # batch_size is per GPU

Where a run stands is its Progress (step, epoch, batch in the epoch, training seconds, best and last
metrics). A checkpoint (model_dir/last.pt and best.pt) is one dict: model, optimizer, progress, the
settings of the run, charset and torch RNG state, written atomically. `--resume` takes all of them
from last.pt and continues exactly where the run stopped; Ctrl-C or SIGTERM saves last.pt first.
`--resume --extend=MINUTES` trains a run (finished or not) longer on a short cosine tail.

This file is the loop, top to bottom; its parts live beside it: batches.py (what each step trains on),
schedule.py (the learning rate), self_training.py (the site's unlabelled captchas), run_log.py (what a run
reports) and run_control.py (torchrun ranks, Ctrl-C and SIGTERM).
"""
import contextlib
import dataclasses
import functools
import math
import os
import time

import torch

from batches import Data, batch_stream, load_data
from dataset import Charset, DataError, image_names, score
from folder_lock import one_writer
from folder_settings import chosen_settings, from_folders
from heads import Head
from model import (CaptchaResNet, autocast, batch_logits, init_from, load_checkpoint, model_config, save_checkpoint,
                   select_device, use_bf16)
from parameters import (ARCHITECTURE_KEYS, Parameters, ParameterError, saved_parameters, with_saved_settings,
                        worker_count)
from errors import ProjectError
from predictor import Predictor
from run_control import Ranks, StopSignals, checkpoint_of, stop_interrupted
from run_log import Reporters, RunLog
from schedule import Schedule
from self_training import SelfTraining, normalise_for_the_site, self_training_due, self_training_round

SMALL_SET, SMALL_BATCH, LARGE_BATCH = 20000, 64, 256  # batch_size=0: 64 images a step under 20,000, else 256
BUDGET_EVALUATIONS = 20  # a run its time budget alone sets is evaluated about this many times
# Settings a resumed run may take from the command line: where it reports, how it computes, how often it
# evaluates, and --extend. Every other setting comes from last.pt.
RESUME_MAY_CHANGE = ("visdom", "visdom_server", "visdom_port", "visdom_env", "workers", "threads", "eval_every",
                     "eval_batch_size", "device", "strict", "cache_dir", "extend")


class TrainingError(ProjectError):
    """A run that cannot go on (a loss that is no longer a number): one line, and nothing saved over good
    checkpoints."""
    exit_status = 1


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
    pseudo_used: object = None  # self-training: bool tensor (N,), the reads trained on (self_training.confident_reads)
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
    schedule: Schedule  # the learning rate along the run, and when it is over
    bf16: bool  # training and evaluating in bf16 autocast (amp, with auto resolved for this device)
    self_training: SelfTraining  # how the site's unlabelled captchas are read, when the run has them


def train(params, given=None, callbacks=()):
    """Train and evaluate as `params` say; returns the final test metrics.

    With params.resume the run in model_dir continues with the settings saved in its last.pt. `given`
    names the settings the user gave (main.py's command line; None: those that differ from last.pt's):
    each must be one of RESUME_MAY_CHANGE or keep the run's value. `callbacks`: objects told what the run
    does, after its own log (run_log.Reporters names the events; a callback has methods for those it wants).
    """
    ranks = Ranks()
    with one_writer(params.model_dir) if ranks.main else contextlib.nullcontext():  # one run a model_dir
        return train_held(params, given, callbacks, ranks)


def train_held(params, given, callbacks, ranks):
    """train() once this process holds model_dir."""
    params, checkpoint, progress = start_or_resume(params, given)
    try:
        run = set_up(params, ranks, checkpoint)
        log = Reporters(RunLog(run, progress), *callbacks)
        return run_loop(run, progress, log, ranks)
    finally:
        ranks.close()


def run_loop(run, progress, log, ranks):
    """The steps of the run from `progress` on, evaluating and saving as due; the final test metrics."""
    params = run.params
    try:
        batches = batch_stream(run, progress)
        predictions, clock = None, time.perf_counter()
        with StopSignals() as signals:
            while True:
                over, interrupted = ranks.agree(run.schedule.over(progress), signals.caught is not None)
                if over or interrupted:
                    break
                if self_training_due(progress, run):
                    self_training_round(run, progress, log)
                    clock = time.perf_counter()  # reading is not training time
                images, targets = next(batches)
                lr = run.schedule.learning_rate(progress)
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
    finally:
        log.close()  # the progress bar ends its line before an error (or the summary) is printed
    log.finish(run, progress, predictions)
    ranks.close(together=True)
    return progress.metrics


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
    saved = saved_parameters(saved)
    fewest, most = params.length_range
    if params.head == "auto" and (saved.ctc_form or fewest == most):
        params = dataclasses.replace(params, head=saved.reader_head)
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
    if not params.ctc_form and fewest != most:
        raise ParameterError(f"--head={params.reader_head} reads captchas of one length, but captcha_length is "
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
    device = ranks.setup(select_device(params.device, worker_count(params, "threads")))
    torch.manual_seed(params.seed)
    charset = Charset.from_params(params)
    data = load_data(params, ranks.world)
    model = CaptchaResNet(model_config(dataclasses.asdict(params), params.class_chars)).to(device)
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
               Schedule.of(params, data.steps_per_epoch), use_bf16(params.amp, device), SelfTraining.of(params))


def train_step(run, images, targets, lr):
    """One AdamW step at learning rate `lr`; returns the loss (a float)."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    images, targets = images.to(run.device, non_blocking=True), targets.to(run.device, non_blocking=True)
    with autocast(run.device, run.bf16):
        logits = run.trained(images)  # (B, steps, classes)
    loss = run.model.head.loss(logits, targets, run.params.label_smoothing)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    value = loss.item()  # the step's one wait for the device (the log needs the number anyway)
    if not math.isfinite(value):  # the weights took it, but nothing is saved from here on
        raise TrainingError(f"the training loss became {value} at learning rate {lr:.3g}: the run stops "
                            f"and saves nothing more (model_dir's checkpoints are from its last evaluation); "
                            f"a lower --lr (this run's: {run.params.lr:g}) usually trains")
    return value


def check_label_room(model, *image_sets):
    """Every label must be one the model's head can read (a CTC head needs a feature column for every
    character and a blank between doubled ones): one that cannot is a one-line error before training."""
    if type(model.head).label_problem is Head.label_problem:  # a head that can read any label
        return
    for image_set in image_sets:
        for label in dict.fromkeys(label for label in image_set.labels if label):
            problem = model.head.label_problem(label)
            if problem:
                raise DataError(problem)


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


