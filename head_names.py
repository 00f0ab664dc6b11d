"""The reading heads by name, each with whether it answers in CTC form (a blank class first, runs merged when
read): all that the settings and reading a model's outputs need of them, without PyTorch. heads.py registers
its classes here."""

HEAD_FORMS = {"positions": False, "ctc": True}

# head=auto's choice for captchas of one length: on the seed style, 20 minutes each, positions heads read
# 0.9405 case-insensitive and the ctc head 0.9285 (docs/RESULTS.md, "Variable length")
AUTO_FIXED_HEAD = "positions"


def register_head_name(name, ctc):
    """A head `--head=name` may choose (and bench_heads compare); ctc: it answers in CTC form."""
    HEAD_FORMS[name] = ctc


def auto_head(fewest, most):
    """The head head=auto reads captchas of `fewest` to `most` characters with: ctc when lengths vary."""
    return "ctc" if fewest != most else AUTO_FIXED_HEAD


def charset_problem(chars):
    """Why `chars` cannot be a charset (None when it can): each character is one class of the heads."""
    repeated = sorted({char for char in chars if chars.count(char) > 1})
    return f"charset {chars!r} repeats {''.join(repeated)!r}: each character is one class" if repeated else None
