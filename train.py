"""The training loop: data, model, AdamW with a one-cycle schedule, evaluation, checkpoints, logs.

Run it through main.py (`python main.py --help`). One process by default (CPU, or CUDA when present);
several GPUs with torchrun:

    torchrun --standalone --nproc_per_node=4 main.py --batch_size=256   # batch_size is per GPU

Checkpoints (model_dir/last.pt and best.pt) are one dict: model, optimizer, schedule, step, epoch,
position in the epoch, best metric, metrics, torch RNG state and the parameters trained with. They
are written atomically (temporary file + rename); `--resume` continues from last.pt exactly where it
stopped; Ctrl-C saves last.pt first.
"""
import csv
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from collections import Counter

import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm import tqdm

from dataset import (Charset, DataError, GeneratedStream, decode_logits, infer_charset, load_folder,
                     load_training_data)
from model import build_model, load_checkpoint, parameter_count
from parameters import make_parameters

# Settings of the network itself: fine-tuning (--init_from) takes them from the checkpoint it starts from.
ARCHITECTURE_KEYS = ("image_width", "image_height", "model_preset", "stem_channels", "stem_stride", "stage_channels",
                     "stage_blocks", "feature_stride")
# Settings that fix the shape of the model, its heads too: on --resume they come from the checkpoint.
MODEL_SHAPE_KEYS = ("charset", "captcha_length", "ignore_case") + ARCHITECTURE_KEYS
AUGMENT_AUTO_LIMIT = 50000  # augment='auto' augments training sets smaller than this (real data, not generated)
LOSS_EVERY = 20  # steps between loss points in the log, the curves and the dashboard


def with_saved_settings(params, saved, keys=MODEL_SHAPE_KEYS):
    """`params` with the settings `keys` taken from a checkpoint's saved settings dict (those it has)."""
    return make_parameters({key: saved[key] for key in keys if key in saved}, base=params)


def in_main_thread():
    """Signal handlers can only be installed from the main thread (not, e.g., in a test's worker thread)."""
    return threading.current_thread() is threading.main_thread()


def select_device(params):
    """The device, chosen once: CUDA when present (auto), else CPU with one thread per core."""
    if params.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(params.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DataError(f"--device={params.device} but CUDA is not available")
    if device.type == "cpu":
        torch.set_num_threads(params.threads if params.threads > 0 else (os.cpu_count() or 1))
    return device


def autocast(device, params):
    """Mixed precision: bf16 on CPU (fast on AVX-512/AMX cores) and on CUDA."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=params.amp)


def lr_at(progress, params):
    """One-cycle: linear warm-up to lr, then cosine down to lr/100, over progress 0..1."""
    if progress < params.warmup:
        return params.lr * max(progress / params.warmup, 0.01)
    remaining = (progress - params.warmup) / max(1e-9, 1 - params.warmup)
    return params.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, remaining))))


def use_augmentation(params, train_size):
    if params.augment not in ("auto", "on", "off"):
        raise DataError(f"augment must be auto, on or off, got {params.augment!r}")
    return params.augment == "on" or (params.augment == "auto" and params.data_mode == "folder"
                                      and train_size < AUGMENT_AUTO_LIMIT)


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


@torch.no_grad()
def predict_logits(model, images, device, params):
    """Logits (N, length, classes) of a uint8 array or tensor, in batches (the last partial one too).

    The model is moved to `device` first: callers that build it on the CPU (the benchmarks) can pass CUDA."""
    model.to(device).eval()
    outputs = []
    for start in range(0, len(images), params.eval_batch_size):
        batch = torch.as_tensor(images[start:start + params.eval_batch_size]).to(device, non_blocking=True)
        with autocast(device, params):
            outputs.append(model(batch).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, params.captcha_length, 1)


def score(logits, labels, charset):
    """Whole-captcha accuracy (case-sensitive and -insensitive), per-character accuracy, predictions."""
    predictions, _ = decode_logits(logits, charset)
    folded, _ = decode_logits(logits, charset, fold_case=True)
    count = max(1, len(labels))
    exact = sum(p == t for p, t in zip(predictions, labels)) / count
    insensitive = sum(p == t.lower() for p, t in zip(folded, labels)) / count
    characters = sum(a == b for p, t in zip(predictions, labels) for a, b in zip(p, t)) / (count * charset.length)
    return {"accuracy": exact, "accuracy_ignore_case": insensitive, "char_accuracy": characters}, predictions


def confusions(predictions, labels, top=15):
    """The most frequent (truth, prediction) character pairs among wrong characters."""
    counter = Counter((t, p) for pred, label in zip(predictions, labels) for t, p in zip(label, pred) if t != p)
    return counter.most_common(top)


def format_confusions(pairs):
    return ", ".join(f"{t}->{p} x{n}" for (t, p), n in pairs) or "none"


def save_checkpoint(path, state):
    """torch.save to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    torch.save(state, temporary)
    os.replace(temporary, path)


def remap_heads(state, old_chars, new_chars):
    """Head weights trained for `old_chars` rearranged for `new_chars` (shared characters keep theirs)."""
    remapped = {}
    for key, value in state.items():
        if key.startswith("heads.") and value.shape[0] == len(old_chars):
            rows = value.new_zeros((len(new_chars),) + tuple(value.shape[1:]))
            if value.dim() == 2:
                torch.nn.init.normal_(rows, std=0.01)
            for new_index, char in enumerate(new_chars):
                if char in old_chars:
                    rows[new_index] = value[old_chars.index(char)]
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


class CurveLog:
    """log.csv in the run folder, and curves.png drawn from it (PIL: no plotting library needed)."""

    FIELDS = ["step", "epoch", "seconds", "images_per_s", "lr", "train_loss", "accuracy", "accuracy_ignore_case",
              "char_accuracy"]

    def __init__(self, folder, resume):
        self.path = os.path.join(folder, "log.csv")
        self.rows = []
        if resume and os.path.isfile(self.path):
            with open(self.path, newline="") as handle:
                self.rows = list(csv.DictReader(handle))
        else:
            with open(self.path, "w", newline="") as handle:
                csv.DictWriter(handle, self.FIELDS).writeheader()

    def add(self, **row):
        row = {key: row.get(key, "") for key in self.FIELDS}
        self.rows.append(row)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.FIELDS).writerow(row)

    def series(self, key):
        return [(float(r["step"]), float(r[key])) for r in self.rows if r.get(key) not in ("", None)]

    def draw(self, path):
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
            points = [p for key, _ in lines for p in self.series(key)]
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
                series = self.series(key)
                xy = [(box[0] + (x - x0) / (x1 - x0) * (box[2] - box[0]),
                       box[3] - (min(max(y, y0), y1) - y0) / (y1 - y0) * (box[3] - box[1])) for x, y in series]
                if len(xy) > 1:
                    draw.line(xy, fill=color, width=2)
                elif xy:
                    draw.ellipse((xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2), fill=color)
                if len(lines) > 1:
                    draw.text((box[0] + 6, box[1] + 4 + 12 * row), key, fill=color)
        canvas.save(path)


class Distributed:
    """torchrun (DistributedDataParallel) when WORLD_SIZE > 1, else a single process."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world > 1

    def setup(self, device):
        if not self.active:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    @property
    def main(self):
        return self.rank == 0

    def agree_to_stop(self, stop):
        """All ranks stop together (a time budget may run out on one rank a step earlier)."""
        if not self.active:
            return stop
        flag = torch.tensor([1.0 if stop else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def close(self):
        if self.active:
            dist.destroy_process_group()


def prepare_params(params):
    """The settings a run trains with, and last.pt's dict when resuming.

    On --resume the model-shape settings come from last.pt so the weights fit. Otherwise
    --infer_charset takes charset and length from the labels, and --init_from takes the network's
    shape (and input size) from the checkpoint being fine-tuned.
    """
    last = os.path.join(params.model_dir, "last.pt")
    if not params.resume:
        if params.infer_charset:
            params = infer_charset(params)
        if params.init_from:
            params = with_saved_settings(params, load_checkpoint(params.init_from)["params"], ARCHITECTURE_KEYS)
        return params, None
    if not os.path.isfile(last):
        raise DataError(f"--resume: no checkpoint at {last}; start without --resume")
    checkpoint = load_checkpoint(last)
    params = with_saved_settings(params, checkpoint["params"])
    return params, checkpoint


def train(params):
    """Train and evaluate as `params` say; returns the final test metrics."""
    params, resume_state = prepare_params(params)
    distributed = Distributed()
    device = distributed.setup(select_device(params))
    main_process = distributed.main
    charset = Charset.from_params(params)
    torch.manual_seed(params.seed)

    if params.data_mode == "generate":
        if params.mix_dir or params.train_repeat != 1:
            raise DataError("mix_dir and train_repeat apply to folders of images (data_mode=folder), not to "
                            "data_mode=generate")
        train_set = None
        test_set = load_folder(params.test_dir, params)
        train_size = params.train_count
    elif params.data_mode == "folder":
        train_set, test_set, epoch_order = load_training_data(params)
        train_size = len(epoch_order)
    else:
        raise DataError(f"data_mode must be folder or generate, got {params.data_mode!r}")
    global_batch = params.batch_size * distributed.world
    steps_per_epoch = train_size // global_batch
    if steps_per_epoch < 1:
        raise DataError(f"{train_size} training images are fewer than one batch of {global_batch}; "
                        f"lower --batch_size")
    if len(test_set) == 0:
        raise DataError("the test set is empty")
    augment = use_augmentation(params, train_size)

    model = build_model(params).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    if params.init_from and resume_state is None:
        init_from(model, params.init_from, charset)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    state = {"step": 0, "epoch": 0, "batch": 0, "seconds": 0.0, "best": -1.0, "metrics": {}}
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        state.update({key: resume_state[key] for key in ("step", "epoch", "batch", "best", "metrics")})
        state["seconds"] = resume_state["schedule"]["seconds"]
        torch.set_rng_state(resume_state["torch_rng"])
        if main_process:
            print(f"resuming {params.model_dir}/last.pt at step {state['step']} (epoch {state['epoch'] + 1}, "
                  f"batch {state['batch']})")
    trained = torch.nn.parallel.DistributedDataParallel(model) if distributed.active else model
    total_steps = params.epochs * steps_per_epoch
    os.makedirs(params.model_dir, exist_ok=True)
    log = CurveLog(params.model_dir, resume_state is not None) if main_process else None
    dashboard = None
    if main_process:
        from Visdom import Dashboard  # visdom is imported only by the process that plots
        dashboard = Dashboard(params)
        print(f"device {device}, {parameter_count(model) / 1e6:.2f}M parameters, {len(charset)} classes x "
              f"{charset.length} characters, {train_size} training and {len(test_set)} test images, "
              f"{steps_per_epoch} steps an epoch" + (", augmented" if augment else "")
              + (f", {params.time_budget:g} min budget" if params.time_budget else ""))

    def progress():
        by_steps = state["step"] / max(1, total_steps)
        by_time = state["seconds"] / (params.time_budget * 60) if params.time_budget > 0 else 0.0
        return max(by_steps, by_time)

    def checkpoint_state():
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": {"kind": "one-cycle", "total_steps": total_steps, "seconds": state["seconds"],
                             "time_budget_min": params.time_budget},
                "step": state["step"], "epoch": state["epoch"], "batch": state["batch"], "best": state["best"],
                "metrics": state["metrics"], "torch_rng": torch.get_rng_state(),
                "params": dataclasses.asdict(params), "charset": charset.chars}

    def evaluate_and_save():
        logits = predict_logits(model, test_set.images, device, params)
        metrics, predictions = score(logits, test_set.labels, charset)
        state["metrics"] = metrics
        log.add(step=state["step"], epoch=state["epoch"], seconds=f"{state['seconds']:.1f}",
                **{k: f"{v:.5f}" for k, v in metrics.items()})
        log.draw(os.path.join(params.model_dir, "curves.png"))
        dashboard.plot_accuracy(state["step"], metrics["accuracy"], metrics["accuracy_ignore_case"],
                                metrics["char_accuracy"])
        shown = min(24, len(test_set))
        dashboard.show_predictions(test_set.images[:shown], test_set.labels[:shown], predictions[:shown])
        tqdm.write(f"step {state['step']}: test accuracy {metrics['accuracy']:.4f}, ignoring case "
                   f"{metrics['accuracy_ignore_case']:.4f}, per character {metrics['char_accuracy']:.4f}")
        metric = metrics["accuracy_ignore_case"]
        if metric > state["best"]:
            state["best"] = metric
            save_checkpoint(os.path.join(params.model_dir, "best.pt"), checkpoint_state())
        save_checkpoint(os.path.join(params.model_dir, "last.pt"), checkpoint_state())
        return metrics, predictions

    def batches(epoch, first_batch):
        """(images uint8 (B, H, W, 3), targets (B, length)) of this rank, from batch `first_batch` on."""
        if train_set is None:
            stream = GeneratedStream(params, epoch)
            loader = torch.utils.data.DataLoader(stream, batch_size=params.batch_size,
                                                 num_workers=max(1, params.workers), drop_last=True)
            for index, batch in enumerate(loader):
                if index >= first_batch and index % distributed.world == distributed.rank:
                    yield batch
            return
        order = torch.from_numpy(epoch_order)[
            torch.randperm(train_size, generator=torch.Generator().manual_seed(params.seed * 100003 + epoch))]
        images, targets = torch.from_numpy(train_set.images), torch.from_numpy(train_set.targets)
        for index in range(first_batch, steps_per_epoch):
            start = index * global_batch + distributed.rank * params.batch_size
            chosen = order[start:start + params.batch_size]
            batch = images[chosen]
            if augment:  # seeded by position, so a resumed run draws what the uninterrupted one would
                batch = augment_batch(batch, torch.Generator().manual_seed((params.seed * 1000003 + epoch) * 1000003
                                                                          + index))
            yield batch, targets[chosen]

    stop = False
    metrics, predictions = state["metrics"], None
    # Ctrl-C only raises a flag: the step in flight finishes, so last.pt always holds a consistent
    # (weights, optimizer, position) triple. A second Ctrl-C stops at once.
    interrupted = []

    def on_interrupt(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)

    previous_handler = signal.signal(signal.SIGINT, on_interrupt) if in_main_thread() else None
    try:
        while state["epoch"] < params.epochs and not stop:
            epoch = state["epoch"]
            trained.train()
            bar = tqdm(total=steps_per_epoch, initial=state["batch"], desc=f"epoch {epoch + 1}/{params.epochs}",
                       unit="step", disable=not main_process, dynamic_ncols=True, mininterval=2.0)
            loss_sum, loss_count, images_seen, clock = 0.0, 0, 0, time.perf_counter()
            window_start = state["seconds"]
            for images, targets in batches(epoch, state["batch"]):
                lr = lr_at(progress(), params)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
                with autocast(device, params):
                    logits = trained(images)
                loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                                       label_smoothing=params.label_smoothing) * charset.length
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                now = time.perf_counter()
                state["seconds"] += now - clock
                clock = now
                state["step"] += 1
                state["batch"] += 1
                loss_sum += loss.item()
                loss_count += 1
                images_seen += len(images) * distributed.world
                bar.update(1)
                if main_process and state["step"] % LOSS_EVERY == 0:
                    mean_loss = loss_sum / loss_count
                    speed = images_seen / max(1e-9, state["seconds"] - window_start)
                    bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}", img_s=f"{speed:.0f}")
                    log.add(step=state["step"], epoch=epoch, seconds=f"{state['seconds']:.1f}", lr=f"{lr:.6f}",
                            train_loss=f"{mean_loss:.4f}", images_per_s=f"{speed:.0f}")
                    dashboard.plot_loss(state["step"], mean_loss)
                    dashboard.plot_lr(state["step"], lr)
                    loss_sum, loss_count, images_seen, window_start = 0.0, 0, 0, state["seconds"]
                if interrupted:
                    break
                stop = distributed.agree_to_stop(progress() >= 1.0)
                if main_process and params.eval_every and state["step"] % params.eval_every == 0 and not stop:
                    metrics, predictions = evaluate_and_save()
                    trained.train()
                    clock = time.perf_counter()
                    images_seen, window_start = 0, state["seconds"]
                if stop:
                    break
            bar.close()
            if interrupted:
                break
            if not stop:
                state["epoch"] += 1
                state["batch"] = 0
            last_epoch = stop or state["epoch"] >= params.epochs
            if main_process and (last_epoch or state["epoch"] % max(1, params.eval_epochs) == 0):
                metrics, predictions = evaluate_and_save()
                target = params.target_accuracy
                if target and metrics["accuracy_ignore_case" if params.ignore_case else "accuracy"] >= target:
                    print(f"reached target accuracy {target}: stopping early")
                    stop = True
            stop = distributed.agree_to_stop(stop)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        distributed.close()
    if interrupted:
        if main_process:
            save_checkpoint(os.path.join(params.model_dir, "last.pt"), checkpoint_state())
            print(f"\ninterrupted: saved {params.model_dir}/last.pt at step {state['step']}; "
                  f"continue with: python main.py --resume --model_dir={params.model_dir}")
        raise SystemExit(130)
    if main_process and predictions is not None:
        summary(params, state, metrics, predictions, test_set.labels, train_size)
    return metrics


def summary(params, state, metrics, predictions, labels, train_size):
    seconds = state["seconds"]
    speed = state["step"] * params.batch_size / max(1e-9, seconds)
    print(f"\ntrained {state['step']} steps in {seconds / 60:.1f} min ({speed:.0f} images/s) on {train_size} images")
    print(f"test accuracy: {metrics['accuracy']:.4f} case-sensitive, {metrics['accuracy_ignore_case']:.4f} "
          f"case-insensitive, {metrics['char_accuracy']:.4f} per character ({len(labels)} captchas)")
    print(f"most frequent confusions (truth->prediction): {format_confusions(confusions(predictions, labels))}")
    print(f"checkpoints: {params.model_dir}/best.pt, {params.model_dir}/last.pt; curves: "
          f"{params.model_dir}/curves.png; log: {params.model_dir}/log.csv")
    sys.stdout.flush()

