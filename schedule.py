"""A run's learning-rate schedule: one cycle (warm-up, then cosine down) over the steps its epochs or its time
budget set, and --extend's low cosine tail.
"""
import math

DEFAULT_EPOCHS, MIN_STEPS = 10, 2000  # a run with neither epochs nor time_budget: 10 epochs, at least 2,000 steps
TAIL_FROM, TAIL_TO = 0.1, 0.01  # --extend's cosine tail runs from lr x TAIL_FROM down to lr x TAIL_TO


def schedule_steps(params, steps_per_epoch):
    """Steps of the one-cycle schedule: `epochs` of them when given; none when time_budget alone sets the
    run (0); with neither, DEFAULT_EPOCHS and at least MIN_STEPS."""
    if params.epochs:
        return params.epochs * steps_per_epoch
    if params.time_budget:
        return 0
    return max(DEFAULT_EPOCHS * steps_per_epoch, MIN_STEPS)


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
