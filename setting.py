"""A setting: a dataclass field that carries its meaning and the range of values it takes.

    lr: float = setting(3e-3, "peak learning rate of the one-cycle schedule", above=0, high=10)
    amp: str = setting("auto", "bf16 mixed precision: on, off, auto", choices=("auto", "on", "off"))

The help is what --help shows; the choices and the range are checked whenever a value is read (command line,
preset, style file), so a bad number is refused in one line before any work starts. A group of settings is a dataclass
whose docstring is the group's title and whose GROUP names it (parameters.py, looks.py).
"""
import dataclasses
import math

BOUNDS = ("low", "above", "high", "below")  # low/high: inclusive; above/below: exclusive


def setting(default, help, *, choices=None, low=None, above=None, high=None, below=None):
    """A dataclass field: its default, its one-line meaning with the unit, the values it may take (each item
    of a list setting; a function giving them, for a list that grows, such as the registered heads) and the
    range its value lies in. A float setting must also be finite, whatever its range."""
    bounds = {name: value for name, value in zip(BOUNDS, (low, above, high, below)) if value is not None}
    return dataclasses.field(default=default, metadata={"help": help, "range": bounds, "choices": choices})


def choices_of(field):
    """The values setting `field` may take (each item of a list setting), or None when any value of its type."""
    choices = field.metadata.get("choices")
    return choices() if callable(choices) else choices


def range_text(bounds):
    """'from 0 to 1', 'above 0 and at most 10', ... for a field's bounds ('' when it has none)."""
    words = {"low": "at least", "above": "above", "high": "at most", "below": "below"}
    shown = {name: f"{value:g}" if isinstance(value, float) else str(value) for name, value in bounds.items()}
    if "low" in bounds and "high" in bounds:
        return f"from {shown['low']} to {shown['high']}"
    return " and ".join(f"{words[name]} {shown[name]}" for name in BOUNDS if name in bounds)


def _inside(number, bounds):
    return (number >= bounds.get("low", -math.inf) and number > bounds.get("above", -math.inf)
            and number <= bounds.get("high", math.inf) and number < bounds.get("below", math.inf))


def range_problem(field, value):
    """Why `value` does not fit setting `field` (a one-line reason naming it), or None."""
    bounds = field.metadata.get("range", {})
    items = value if isinstance(value, tuple) else (value,)
    what = f"--{field.name} items" if isinstance(value, tuple) else f"--{field.name}"
    shown = ",".join(map(str, items))
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            return f"{what} must be finite numbers, got {shown}" if isinstance(value, tuple) else \
                f"{what} must be a finite number, got {shown}"
        if not _inside(item, bounds):
            return f"{what} must be {range_text(bounds)}, got {shown}"
    return None
