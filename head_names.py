"""What the settings, the model and reading its outputs share about the heads, without PyTorch: the heads by
name, each with whether it answers in CTC form (a blank class first, runs merged when read; heads.py registers
its classes here), the character places captcha_length gives them and the classes a charset gives them."""

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


def length_bounds(value):
    """captcha_length's (fewest, most) from '4', '4-6' or an int (older checkpoints saved an int)."""
    low, _, high = str(value).partition("-")
    return int(low), int(high or low)


def class_chars(charset, ignore_case):
    """The characters a model has a class for, in class order: the charset, or with ignore_case each letter
    lower-cased and the characters kept once."""
    return "".join(dict.fromkeys(char.lower() for char in charset)) if ignore_case else charset


def charset_problem(chars):
    """Why `chars` cannot be a charset (None when it can): each character is one class of the heads."""
    repeated = sorted({char for char in chars if chars.count(char) > 1})
    return f"charset {chars!r} repeats {''.join(repeated)!r}: each character is one class" if repeated else None
