"""Reading heads: what turns the body's feature columns into logits, and what each head owns with that.

A head takes the features (N, C, W') left after the model averages the image's height away (W' feature
columns; 1 for the original preset's global pooling) and answers logits (N, steps, classes). It owns its
loss, the form its outputs are read in (`ctc`: dataset.decode_logits merges runs and drops the blank, class
0; else each step is a character place), what a label needs of it (`label_problem`), ddddocr's CTC form of
its probabilities for the ONNX export, and which of its weights have a row per class (`class_rows`: the
checkpoint checks and fine-tuning's charset remapping use them).

Heads are registered by name (`--head=NAME`): a new head is a class in its own file and one
`register_head(TheHead)` line. The state-dict prefix of every head is `head.` (the model's attribute).
"""
import torch
import torch.nn.functional as F
from torch import nn

from head_names import register_head_name

HEADS = {}  # name -> Head subclass


def register_head(cls):
    """Make `cls` the head `--head=cls.name` builds (and a choice of that setting)."""
    HEADS[cls.name] = cls
    register_head_name(cls.name, cls.ctc)
    return cls


def head_class(name):
    return HEADS[name]


class Head(nn.Module):
    """The interface: build from the feature shape, forward, loss, label check, ONNX form, class rows."""
    name = ""
    ctc = False  # outputs are CTC columns over [blank] + characters; else a softmax over characters per place

    def __init__(self, channels, columns, length, classes):
        """channels x columns: the features; length: the most characters a captcha has; classes: characters."""
        super().__init__()
        self.length, self.classes = length, classes

    def forward(self, features):
        raise NotImplementedError

    def loss(self, logits, targets, label_smoothing):
        """Cross-entropy of each place's logits (B, length, classes) against character indices (B, length),
        summed over a captcha's places, averaged over captchas."""
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                               label_smoothing=label_smoothing) * targets.shape[1]

    def label_problem(self, label):
        """Why this head cannot read `label` (None when it can)."""
        return None

    def ctc_form(self, probabilities):
        """ddddocr's form of per-place probabilities (N, length, K): CTC over [blank] + charset, each character
        step followed by a blank step (N, 2 * length, 1 + K), so that doubled letters ("aa") survive."""
        count, length, classes = probabilities.shape
        characters = torch.cat([probabilities.new_zeros(count, length, 1), probabilities], dim=-1)  # blank never wins
        blanks = torch.zeros_like(characters)
        blanks[..., 0] = 1  # ... and always wins the step after it
        return torch.stack([characters, blanks], dim=2).reshape(count, 2 * length, classes + 1)

    @classmethod
    def class_rows(cls, length):
        """State-dict keys (under `head.`) of the weights with a row per output class."""
        raise NotImplementedError

    @classmethod
    def state_problem(cls, state, length, chars):
        """Why a checkpoint's model state does not hold this head for `length` characters of `chars` (None
        when it does): a charset longer or shorter than the heads would load and read the wrong characters."""
        rows = cls.class_rows(length)
        missing = [key for key in rows if key not in state]
        if missing:
            return f"its settings say head={cls.name} but its weights have no {missing[0]}"
        sizes = sorted({state[key].shape[0] for key in rows})
        if sizes != [len(chars) + cls.ctc]:
            blank = " and CTC's blank" if cls.ctc else ""
            return (f"its heads read {'/'.join(map(str, sizes))} classes but its charset {chars!r}{blank} has "
                    f"{len(chars) + cls.ctc}")
        return None


@register_head
class PositionHeads(Head):
    """A linear softmax per character place over all feature columns: (N, C, W') -> (N, length, classes)."""
    name = "positions"

    def __init__(self, channels, columns, length, classes):
        super().__init__(channels, columns, length, classes)
        self.places = nn.ModuleList(nn.Linear(channels * columns, classes) for _ in range(length))

    def forward(self, features):
        flat = features.flatten(1)  # (N, C * W')
        return torch.stack([place(flat) for place in self.places], dim=1)

    @classmethod
    def class_rows(cls, length):
        return [f"head.places.{index}.{part}" for index in range(length) for part in ("weight", "bias")]

    @classmethod
    def state_problem(cls, state, length, chars):
        places = {key.split(".")[2] for key in state if key.startswith("head.places.")}
        if places and len(places) != length:
            return f"it has {len(places)} character heads but its captcha_length is {length}"
        return super().state_problem(state, length, chars)


@register_head
class CtcHead(Head):
    """One linear softmax on every feature column over CTC's blank (class 0) and the characters (class i + 1),
    trained with CTC loss: captchas of any length up to the columns. (N, C, W') -> (N, W', 1 + classes)."""
    name = "ctc"
    ctc = True

    def __init__(self, channels, columns, length, classes):
        super().__init__(channels, columns, length, classes)
        self.columns = columns
        self.linear = nn.Linear(channels, 1 + classes)

    def forward(self, features):
        return self.linear(features.transpose(1, 2))

    def loss(self, logits, targets, label_smoothing):
        """CTC loss of column logits (B, columns, 1 + classes) against character indices (B, length), -1
        after a label's end; summed over a captcha's characters like the positions loss, averaged over
        captchas (CTC has no label smoothing)."""
        log_probabilities = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (columns, B, 1 + classes)
        present = targets >= 0
        columns = torch.full((len(targets),), log_probabilities.shape[0], dtype=torch.long)
        # Character i is class i + 1. zero_infinity: a label the columns cannot hold (refused before
        # training, see label_problem) would otherwise poison the whole batch.
        return F.ctc_loss(log_probabilities, targets[present] + 1, columns, present.sum(dim=1), blank=0,
                          reduction="sum", zero_infinity=True) / len(targets)

    def label_problem(self, label):
        """A label needs a column per character and a blank between doubled ones."""
        needed = len(label) + sum(a == b for a, b in zip(label, label[1:]))
        if needed > self.columns:
            return (f"label {label!r} needs {needed} feature columns (a character each and a blank between "
                    f"doubled ones); the model has {self.columns}: lower --feature_stride")
        return None

    def ctc_form(self, probabilities):
        return probabilities  # CTC already, blank first: ddddocr's own form

    @classmethod
    def class_rows(cls, length):
        return ["head.linear.weight", "head.linear.bias"]
