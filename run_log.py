"""What a run reports: log.csv, curves.png, the dashboard, the console's progress bar and its closing lines.
"""
import csv
import io
import os

from PIL import Image, ImageDraw
from tqdm import tqdm

from dataset import confusions, format_confusions
from files import atomic_write
from model import parameter_count
from run_control import resume_command
from schedule import TAIL_FROM, TAIL_TO

MIN_LEARNING_STEPS, LOW_ACCURACY = 300, 0.3  # fewer steps, or a lower test accuracy: the run says it is too short
LOSS_EVERY_STEPS = 20  # a loss row (log, curves, dashboard) at least every this many steps...
LOSS_EVERY_SECONDS = 2.0  # ... and at least every this many seconds of training


class Reporters:
    """The run's reporters: its RunLog, then the callbacks given to train(). The loop tells them what happens
    (the events are RunLog's methods: step(run, progress, lr, loss, images), evaluation(progress, metrics,
    test, predictions), self_training(progress, total), close(), finish(run, progress, predictions)); each
    event goes to every reporter that has a method of its name, in turn."""

    def __init__(self, *reporters):
        self.reporters = reporters

    def __getattr__(self, event):
        # Looked up once per event: the listeners are kept, so a step's report costs no search.
        listeners = [getattr(reporter, event) for reporter in self.reporters if hasattr(reporter, event)]

        def tell(*args):
            for listener in listeners:
                listener(*args)
        setattr(self, event, tell)
        return tell


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
        return round(min(1.0, run.schedule.fraction(progress)) * 100, 2)

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
              + f", {run_length_text(params, run.schedule.total_steps)}", flush=True)

    def step(self, run, progress, lr, loss, images):
        """One training step: its loss (a float) and the images it saw (all ranks)."""
        if not self.active:
            return
        self.bar.update(self.percent(run, progress) - self.bar.n)
        self.window[0] += loss
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
        for note in stop_notes(run, progress) + self_training_notes(run, progress):
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


def self_training_notes(run, progress):
    """A line when self-training used none of the site's captchas: the model then learnt from the generated
    ones alone, and its read of the site is what the style carries (often next to nothing)."""
    unlabelled = run.data.unlabelled
    if unlabelled is None or (progress.pseudo_used is not None and progress.pseudo_used.any()):
        return []
    return [f"warning: self-training read none of the {len(unlabelled)} unlabelled captchas confidently in "
            f"{progress.pseudo_round} rounds, so it trained on the generated ones alone: their style does not "
            f"carry to these captchas. Style them by hand (--style_file), or label the least sure (userTest.py "
            f"--least_sure=50) and train on those"]


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
