"""A run's learning-rate schedule: one cycle (warm-up, then cosine down) over the steps its epochs or its time
budget set, and --extend's low cosine tail; and when the run is over.
"""
import dataclasses
import math

DEFAULT_EPOCHS, MIN_STEPS = 10, 2000  # a run with neither epochs nor time_budget: 10 epochs, at least 2,000 steps
TAIL_FROM, TAIL_TO = 0.1, 0.01  # --extend's cosine tail runs from lr x TAIL_FROM down to lr x TAIL_TO


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The schedule of one run, fixed when it starts; where a run is on it comes from its Progress (step,
    seconds of training, the start of an --extend tail, the last test metrics)."""
    lr: float  # the peak learning rate
    warmup: float  # share of the cycle spent warming up, 0 to 1
    total_steps: int  # steps of the cycle: epochs x steps_per_epoch; 0 when time_budget alone sets the run
    time_budget: float  # minutes of training (0: none)
    extend: float  # minutes of an --extend tail
    target_accuracy: float  # a test accuracy that ends the run before its schedule does (0: none)
    ignore_case: bool  # target_accuracy is the case-insensitive accuracy

    @classmethod
    def of(cls, params, steps_per_epoch):
        """The schedule the settings ask for, with epochs counted in steps of `steps_per_epoch`."""
        return cls(params.lr, params.warmup, schedule_steps(params.epochs, params.time_budget, steps_per_epoch),
                   params.time_budget, params.extend, params.target_accuracy, params.ignore_case)

    def fraction(self, progress):
        """How far the schedule has gone, 0 to 1 (and past it when over): through an --extend tail's minutes,
        else the larger of steps over total_steps and time over time_budget."""
        if progress.tail_start >= 0:
            return (progress.seconds - progress.tail_start) / (self.extend * 60)
        by_time = progress.seconds / (self.time_budget * 60) if self.time_budget > 0 else 0.0
        return max(progress.step / self.total_steps if self.total_steps else 0.0, by_time)

    def learning_rate(self, progress):
        """One-cycle: linear warm-up to lr, then cosine down to lr/100. An --extend tail: cosine from
        lr x TAIL_FROM down to lr x TAIL_TO, no warm-up (the weights are trained already)."""
        lr, fraction = self.lr, min(1.0, self.fraction(progress))
        if progress.tail_start >= 0:
            return lr * (TAIL_TO + (TAIL_FROM - TAIL_TO) * 0.5 * (1 + math.cos(math.pi * fraction)))
        if fraction < self.warmup:
            return lr * max(fraction / self.warmup, 0.01)
        remaining = (fraction - self.warmup) / max(1e-9, 1 - self.warmup)
        return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * remaining)))

    def over(self, progress):
        """The schedule is done, or (before any --extend) the test accuracy reached target_accuracy."""
        metric = progress.metrics.get("accuracy_ignore_case" if self.ignore_case else "accuracy", 0.0)
        reached = self.target_accuracy > 0 and progress.tail_start < 0 and metric >= self.target_accuracy
        return reached or self.fraction(progress) >= 1


def schedule_steps(epochs, time_budget, steps_per_epoch):
    """Steps of the one-cycle schedule: `epochs` of them when given; none when time_budget alone sets the
    run (0); with neither, DEFAULT_EPOCHS and at least MIN_STEPS."""
    if epochs:
        return epochs * steps_per_epoch
    if time_budget:
        return 0
    return max(DEFAULT_EPOCHS * steps_per_epoch, MIN_STEPS)
