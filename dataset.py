"""Labelled image folders -> uint8 arrays (each image read by images.py), plus the charset, decoding and scoring
that every script shares (training, evaluation, prediction and the API take one path from pixels to text).
Numpy only, no torch: serving with onnxruntime imports this module.

    python dataset.py                                  # check train_dir and test_dir, report bad files
    python dataset.py --train_dir=my_captchas --strict

A folder's labels come from `labels.csv` (`filename,label` rows) when present, else from each file
name: the text before the first `_` (`aB3x_000012.jpg`), or the whole stem (`aB3x.png`), where %XX
stands for a character names cannot hold (`3+8=%3F_000012.png` is 3+8=?). Only the
folder's own files are read: its subfolders are not (they are named in one line). Files whose
label does not fit the charset and length, and images that cannot be read, are listed in one report
and skipped (`--strict` makes them an error). A folder is decoded once and cached under `cache_dir`
as a uint8 array; the cache is rebuilt when the folder's files (a file's size, times or inode), labels or
the input size change, and when it is damaged (it holds a checksum); a folder's older caches are removed.
"""
import contextlib
import csv
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import random
import re
import stat
from collections import Counter

import numpy as np

from files import atomic_write
from images import read_image
from command_line import parse_args, run_main
from head_names import charset_problem, length_bounds
from parameters import DIGITS, LOWER, UPPER, length_text, make_parameters, worker_count
from errors import ProjectError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LABELS_FILE = "labels.csv"
REPORT_LINES = 10  # bad files named in a report; the rest are counted
INFER_LENGTH_SHARE = 0.01  # infer_charset: a label length this rare (a share of all labels) is not in the range
CACHE_ARRAYS = ("images", "targets", "names", "unreadable")  # what a folder's cache holds, beside its checksum


class DataError(ProjectError):
    """A data problem with a message fit to show the user as is."""


class Charset:
    """The classes: characters in index order, the label lengths a model reads, and the one encode/decode
    pair of the project. `ctc`: the model's outputs have a blank class first (index 0), character i is
    class i + 1; otherwise character i is class i of each place's softmax."""

    def __init__(self, chars, length, ctc=False):
        problem = charset_problem(chars)
        if problem:
            raise DataError(problem)
        self.chars = chars
        # length: a count, a (fewest, most) pair, or captcha_length's text ('4-6')
        self.min_length, self.length = tuple(length) if isinstance(length, (tuple, list)) else length_bounds(length)
        self.ctc = ctc
        self.index = {char: position for position, char in enumerate(chars)}
        # For case-insensitive decoding: every class mapped to the class of its lower-case form
        # (when that form is in the charset), so that probabilities of 'o' and 'O' add up.
        self.folded = [self.index.get(char.lower(), position) for position, char in enumerate(chars)]

    @classmethod
    def from_params(cls, params):
        return cls(params.class_chars, params.length_range, ctc=params.ctc_form)

    def __len__(self):
        return len(self.chars)

    @property
    def classes(self):
        """Classes of the model's softmax: the characters, and CTC's blank."""
        return len(self.chars) + self.ctc

    @property
    def lengths(self):
        """'4' or '4-6': the label lengths this charset's model reads."""
        return length_text(self.min_length, self.length)

    def problem(self, label):
        """Why `label` cannot be a target (None when it can)."""
        if not self.min_length <= len(label) <= self.length:
            return f"label {label!r} has {len(label)} characters, expected {self.lengths}"
        unknown = sorted({char for char in label if char not in self.index})
        if unknown:
            return f"label {label!r} has characters outside the charset: {''.join(unknown)!r}"
        return None

    def encode(self, label):
        """'aB3x' -> [10, 37, 3, 33] (character indices), padded with -1 to the longest length."""
        problem = self.problem(label)
        if problem:
            raise DataError(problem)
        return [self.index[char] for char in label] + [-1] * (self.length - len(label))

    def decode(self, indices):
        """[10, 37, 3, 33] -> 'aB3x' (-1, padding, is no character)."""
        return "".join(self.chars[int(i)] for i in indices if i >= 0)


def fold_label(label, ignore_case):
    return label.lower() if ignore_case else label


def softmax(logits):
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def decode_logits(logits, charset, fold_case=False):
    """Logits (N, steps, classes) -> (texts, per-character confidences: a float32 array per text), in numpy.

    Positions heads: a step is a character place; its most probable class is the character. CTC: a step is
    a feature column; the most probable class of each column, runs of one class merged and blanks dropped,
    is the text (greedy decoding), and a character's confidence is its highest probability in its run.
    With fold_case, the probabilities of the two cases of a letter are added before the argmax and the text
    comes out in lower case: the right decision when answers ignore case.
    """
    probabilities = softmax(np.asarray(logits, dtype=np.float32))  # (N, steps, classes)
    if fold_case:
        offset = int(charset.ctc)  # CTC's blank stays blank
        target = [0] * offset + [index + offset for index in charset.folded]
        folding = np.zeros((charset.classes, charset.classes), np.float32)  # class -> class of its lower case
        folding[np.arange(charset.classes), target] = 1
        probabilities = probabilities @ folding
    indices, best = probabilities.argmax(axis=-1), probabilities.max(axis=-1)  # (N, steps) each
    if charset.ctc:
        reads = [ctc_collapse(row, confidence) for row, confidence in zip(indices, best)]
    else:
        reads = list(zip(indices, best))
    texts = [charset.decode(row) for row, _ in reads]
    if fold_case:
        texts = [text.lower() for text in texts]
    return texts, [np.asarray(confidence, np.float32) for _, confidence in reads]


def least_confidence(confidences):
    """A read's least sure character's confidence (0 for a read of no characters)."""
    return float(np.min(confidences)) if len(confidences) else 0.0


def ctc_collapse(classes, confidence):
    """One row of CTC's per-column best classes (steps,) and their probabilities -> (character indices,
    confidences): runs of a class merged (keeping the run's highest probability), blanks (0) dropped."""
    indices, confidences = [], []
    previous = 0
    for cls, probability in zip(classes.tolist(), confidence.tolist()):
        if cls != 0 and cls == previous:
            confidences[-1] = max(confidences[-1], probability)
        elif cls != 0:
            indices.append(cls - 1)
            confidences.append(probability)
        previous = cls
    return indices, confidences


def edit_operations(truth, read):
    """The fewest edits turning `truth` into `read`, as (truth char or '', read char or '') pairs: a
    substitution (a, b), a missing character (a, ''), an extra one ('', b). Levenshtein, backtraced."""
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(len(read) + 1)] for i in range(len(truth) + 1)]
    for i in range(1, len(truth) + 1):
        for j in range(1, len(read) + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (truth[i - 1] != read[j - 1]))
    operations, i, j = [], len(truth), len(read)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (truth[i - 1] != read[j - 1]):
            if truth[i - 1] != read[j - 1]:
                operations.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            operations.append((truth[i - 1], ""))
            i -= 1
        else:
            operations.append(("", read[j - 1]))
            j -= 1
    return operations[::-1]


def score(logits, labels, charset, grammar=None):
    """Whole-captcha accuracy (case-sensitive and -insensitive), per-character accuracy (1 - edits over the
    labels' characters, by edit distance: a missing or extra character counts one), with an arithmetic
    model's `grammar` also answer_accuracy (the read answers as its label does); and the predictions."""
    predictions, _ = decode_logits(logits, charset)
    folded, _ = decode_logits(logits, charset, fold_case=True)
    count = max(1, len(labels))
    exact = sum(p == t for p, t in zip(predictions, labels)) / count
    insensitive = sum(p == t.lower() for p, t in zip(folded, labels)) / count
    edits = sum(len(edit_operations(t, p)) for p, t in zip(predictions, labels) if p != t)
    characters = max(0.0, 1 - edits / max(1, sum(len(t) for t in labels)))
    metrics = {"accuracy": exact, "accuracy_ignore_case": insensitive, "char_accuracy": characters}
    if grammar is not None:
        metrics["answer_accuracy"] = grammar.accuracy(predictions, labels)
    return metrics, predictions


def confusions(predictions, labels, top=15):
    """The most frequent (truth, prediction) character pairs among the edits of wrong reads ('' for a
    missing or an extra character)."""
    counter = Counter(pair for pred, label in zip(predictions, labels) if pred != label
                      for pair in edit_operations(label, pred))
    return counter.most_common(top)


def format_confusions(pairs):
    return ", ".join(f"{t or '(none)'}->{p or '(none)'} x{n}" for (t, p), n in pairs) or "none"


# Label characters a file name cannot hold on some system, or that would end the label: a name holds each as
# %XX, its code in hex (the label 3+8=? is the name 3+8=%3F_000012.png), and '%' itself as %25.
ESCAPED_IN_NAMES = '%_/\\:*?"<>|.\0'
UNESCAPED = {f"%{ord(c):02X}": c for c in ESCAPED_IN_NAMES}  # '%3F' -> '?'; any other %XX is read as written


def name_of_label(label):
    """The start of a file name that holds `label` (label_from_name reads it back)."""
    return "".join(f"%{ord(c):02X}" if c in ESCAPED_IN_NAMES else c for c in label)


def label_from_name(name):
    """The label a file name holds: the text before its first '_' (or its whole stem), %XX escapes read back."""
    stem = os.path.splitext(name)[0]
    label = stem.split("_", 1)[0] if "_" in stem else stem
    return re.sub("%[0-9A-F]{2}", lambda m: UNESCAPED.get(m.group(0), m.group(0)), label)


def read_labels_file(folder):
    """({file name: label}, [(file name, problem)]) from folder/labels.csv, or (None, []) when there is none.

    A UTF-8 byte-order mark is allowed; a row that is not `filename,label` and a file listed twice with
    two labels are problems (neither label is guessed)."""
    path = os.path.join(folder, LABELS_FILE)
    if not os.path.isfile(path):
        return None, []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text (byte {error.start}): save it as UTF-8") from None
    labels, problems = {}, []
    for row_number, row in enumerate(rows, 1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (row_number == 1 and [cell.lower() for cell in cells[:2]] == ["filename", "label"]):
            continue
        if len(cells) < 2 or any(cells[2:]):
            problems.append((f"{LABELS_FILE} line {row_number}", f"expected 'filename,label', got {','.join(row)!r}"))
        elif labels.setdefault(cells[0], cells[1]) != cells[1]:
            problems.append((cells[0], f"listed twice in {LABELS_FILE}, as {labels[cells[0]]!r} and {cells[1]!r}"))
    conflicting = {name for name, why in problems if why.startswith("listed twice")}
    return {name: label for name, label in labels.items() if name not in conflicting}, problems


def folder_labels(folder):
    """[(file name, label as written)] of a labelled folder, and [(file name, problem)] for unlabelled files."""
    labels, problems = read_labels_file(folder)
    names, special = scan_images(folder)
    if labels is None:
        return [(name, label_from_name(name)) for name in names], special
    listed_twice = {name for name, _ in problems}
    absent = set(labels) - set(names) - {name for name, _ in special}
    problems += [(name, "listed in labels.csv but not in the folder") for name in sorted(absent)]
    problems += [(name, "not listed in labels.csv") for name in names if name not in labels and name not in listed_twice]
    problems += special
    return [(name, labels[name]) for name in names if name in labels], problems


@dataclasses.dataclass(frozen=True)
class Reading:
    """How a folder's images are read into arrays: the settings every loader below takes."""
    charset: Charset  # the labels a folder may hold (others are reported and skipped)
    width: int  # pixels: every image is resized to width x height
    height: int
    ignore_case: bool = False  # labels folded to lower case where the charset has that form
    cache_dir: str = ""  # where decoded folders are kept ('' = decode every time)
    workers: int = 1  # processes decoding a folder
    strict: bool = False  # a file that cannot be used is an error, not a skip
    report_dir: str = "."  # where a problem list too long for the console is written

    @classmethod
    def of(cls, params, **changes):
        """The reading the settings ask for (model size, charset, cache, workers...), with `changes`."""
        reading = cls(Charset.from_params(params), params.image_width, params.image_height, params.ignore_case,
                      params.cache_dir, worker_count(params), params.strict, params.model_dir)
        return dataclasses.replace(reading, **changes)


def list_folder(folder, reading):
    """[(file name, label)] of a labelled folder, and [(file name, problem)] for files whose label does not fit
    the reading's charset and lengths (and other unusable files)."""
    labelled, problems = folder_labels(folder)
    entries = []
    for name, label in labelled:
        label = fold_label(label, reading.ignore_case)
        problem = reading.charset.problem(label)
        if problem:
            problems.append((name, problem))
        else:
            entries.append((name, label))
    return entries, problems


def infer_charset(params):
    """`params` with charset and captcha_length taken from the labels of the data folders (labels_charset)."""
    folders = [params.data_dir] if params.data_dir else [params.train_dir, params.test_dir]
    chars, length, count = labels_charset(folders, params.ignore_case)
    print(f"inferred from {count} labels: {length} characters from {len(chars)} classes {chars!r}")
    return make_parameters({"charset": chars, "captcha_length": length}, base=params)


def labels_charset(folders, ignore_case):
    """(charset, captcha_length's text, how many labels) of the labels in `folders`.

    The length is a range over the label lengths that are not rare (each at least INFER_LENGTH_SHARE of
    the labels and more than one label: a typo's length does not widen it); labels of other lengths are
    then reported and skipped like any bad label. The charset is every character of the labels within
    it, digits first, then lower and upper case, then the rest in code-point order.
    """
    labels = [fold_label(label, ignore_case) for folder in folders for _, label in folder_labels(folder)[0]]
    if not labels:
        raise DataError(f"no labelled images in {' or '.join(folders)} to infer the charset from")
    counts = Counter(len(label) for label in labels if label)
    if not counts:
        raise DataError("every label is empty: name files LABEL_anything.png or add a labels.csv")
    lengths = [n for n, count in counts.items() if count > 1 and count >= INFER_LENGTH_SHARE * len(labels)]
    lengths = lengths or [counts.most_common(1)[0][0]]
    low, high = min(lengths), max(lengths)
    found = {char for label in labels if low <= len(label) <= high for char in label}
    known = DIGITS + LOWER + UPPER
    chars = "".join(char for char in known if char in found) + "".join(sorted(found - set(known)))
    return chars, length_text(low, high), len(labels)


def report(folder, problems, total, reading):
    """One clear report of the files skipped in `folder` (or an error with --strict); a list too long for
    the console is written in full to model_dir/problems_<folder's name>.txt, which the report names."""
    if not problems:
        return
    every = [f"{name}: {why}" for name, why in problems]
    lines = every[:REPORT_LINES]
    if len(problems) > REPORT_LINES:
        path = os.path.join(reading.report_dir, f"problems_{os.path.basename(os.path.normpath(folder))}.txt")
        atomic_write(path, "\n".join(every) + "\n")
        lines.append(f"... and {len(problems) - REPORT_LINES} more (all {len(problems)}: {path})")
    head = f"{len(problems)} of {total} files in {folder} cannot be used"
    if reading.strict:
        raise DataError(head + ":\n  " + "\n  ".join(lines))
    print(head + " and are skipped:\n  " + "\n  ".join(lines))


def _cache_name(folder, entries, reading, labelled):
    """`<reading>-<content>.npz`: which folder read how (its path, labelled or not, image size, charset),
    then what it holds (every file's stamp, the entries and their labels). Files of one reading with
    other contents are stale copies of the same folder's cache."""
    charset = reading.charset
    how = [os.path.abspath(folder), labelled, reading.width, reading.height, charset.chars,
           length_text(charset.min_length, charset.length), reading.ignore_case]
    listing = sorted((entry.name, *file_stamp(entry)) for entry in os.scandir(folder))
    return f"{_short_hash(how, 12)}-{_short_hash([listing, entries], 20)}.npz"


def _short_hash(value, digits):
    return hashlib.sha1(json.dumps(value).encode()).hexdigest()[:digits]


def file_stamp(entry):
    """(size, modification time, change time, inode) of a folder entry; -1s for a broken link or a loop.

    Size and mtime alone miss a file rewritten with both put back (cp -p, rsync -t, touch -d): its
    ctime, which no call can set, still moves, and a replaced file has a new inode. That costs one
    stat per file, as before; hashing every file's bytes instead reads the whole folder on every run
    (10,000 captchas, 27 MB, from the page cache: 0.12 s against 0.03 s for the stats; from disk, a
    full read of the folder). A chmod or a new hard link moves ctime too: the folder is decoded again."""
    try:
        stat = entry.stat()
    except OSError:
        return -1, -1, -1, -1
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _read_chunk(task):
    paths, width, height = task
    return [read_image(path, width, height) for path in paths]


class ImageSet:
    """A decoded labelled folder: images uint8 (N, H, W, 3), targets int64 (N, length), names, labels."""

    def __init__(self, images, targets, names, labels):
        self.images, self.targets, self.names, self.labels = images, targets, names, labels

    def __len__(self):
        return len(self.names)

    def subset(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(self.images[indices], self.targets[indices], [self.names[i] for i in indices],
                        [self.labels[i] for i in indices])


def load_folder(folder, reading, quiet=False):
    """The folder as an ImageSet, decoded once and cached; bad files reported and skipped."""
    entries, problems = list_folder(folder, reading)
    image_set, unreadable = _cached_set(folder, entries, reading, labelled=True)
    if not quiet:
        report(folder, problems + unreadable, len(entries) + len(problems), reading)
        say_subfolders(folder)
    return image_set


def image_names(folder):
    """The image files of a folder, sorted (labels.csv and other files are not images; images in its
    subfolders are not read, see say_subfolders)."""
    return scan_images(folder)[0]


def scan_images(folder):
    """(image_names, [(name, problem)] of the files with an image's name that are FIFOs, sockets or devices:
    skipped, as opening one to read it could wait forever), in one pass over the folder."""
    if not os.path.isdir(folder):
        raise DataError(f"folder {folder!r} does not exist")
    names, special = [], []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if not entry.name.lower().endswith(IMAGE_EXTENSIONS) or is_folder(entry):
            continue
        if is_special(entry):
            special.append((entry.name, "not a regular file (a FIFO, socket or device): skipped"))
        else:  # a broken link or a link loop stays listed: reading it fails and is reported
            names.append(entry.name)
    return names, special


def is_special(entry):
    """Neither a regular file nor a folder (followed through links); a broken link is not special."""
    try:
        mode = entry.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def say_subfolders(folder):
    """Name the subfolders of `folder` in one line: their images are not read (a folder is one set; to
    read a subfolder, name it as the folder)."""
    names = sorted(entry.name for entry in os.scandir(folder) if is_folder(entry))
    if names:
        more = f" and {len(names) - REPORT_LINES} more" if len(names) > REPORT_LINES else ""
        shown = ", ".join(names[:REPORT_LINES]) + more
        print(f"{folder}: {len(names)} subfolder{'s' if len(names) > 1 else ''} not read ({shown}): only the "
              f"folder's own images are; name a subfolder as the folder to read it")


def is_folder(entry):
    try:
        return entry.is_dir()
    except OSError:  # a link loop
        return False


def load_unlabelled(folder, reading, quiet=False):
    """Every image of a folder of captchas without labels (file names and labels.csv are ignored), as an
    ImageSet whose labels are '' and targets -1: what self-training reads. Decoded once and cached."""
    names, skipped = scan_images(folder)
    entries = [(name, "") for name in names]
    image_set, unreadable = _cached_set(folder, entries, reading, labelled=False)
    if not quiet:
        report(folder, skipped + unreadable, len(entries) + len(skipped), reading)
        say_subfolders(folder)
    if len(image_set) == 0:
        raise DataError(f"the unlabelled folder {folder!r} has no readable images")
    return image_set


def _cached_set(folder, entries, reading, labelled):
    """(ImageSet of `entries` [(name, label)], [(name, why unreadable)]), from the cache when it has them
    (a damaged cache is said in one line and rebuilt); with no cache_dir, decoded every time."""
    if not reading.cache_dir:
        return _decode_folder(folder, entries, reading)
    cache_file = os.path.join(reading.cache_dir, _cache_name(folder, entries, reading, labelled))
    arrays = _read_cache(cache_file, folder)
    if arrays is not None:
        names, by_name = arrays["names"].tolist(), dict(entries)
        unreadable = [tuple(pair) for pair in arrays["unreadable"].tolist()]
        return ImageSet(arrays["images"], arrays["targets"], names, [by_name[name] for name in names]), unreadable
    image_set, unreadable = _decode_folder(folder, entries, reading)
    _write_cache(cache_file, {"images": image_set.images, "targets": image_set.targets,
                              "names": np.array(image_set.names, dtype=str),
                              "unreadable": np.array([list(pair) for pair in unreadable], dtype=str).reshape(-1, 2)})
    return image_set, unreadable


def _read_cache(cache_file, folder):
    """The arrays of a cache file; None when there is none, or (said in one line) when it is damaged."""
    try:
        with np.load(cache_file) as cached:
            arrays = {name: cached[name] for name in CACHE_ARRAYS}
            stored = str(cached["checksum"])
    except FileNotFoundError:
        return None
    except Exception as error:  # truncated, empty, not a zip, a bad CRC...: numpy and zipfile raise many kinds
        problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'unreadable'}"
    else:
        if stored == _checksum(arrays):
            return arrays
        problem = "its checksum does not match its contents"
    print(f"the cache of {folder} is damaged ({problem}): decoding the folder again")
    return None


def _write_cache(cache_file, arrays):
    """Save the arrays with their checksum, then remove this folder's older caches (same reading, other
    contents) and what killed writes of this cache left."""
    arrays = {**arrays, "checksum": np.array(_checksum(arrays))}
    atomic_write(cache_file, lambda handle: np.savez(handle, **arrays))
    folder, name = os.path.split(cache_file)
    reading = name.split("-")[0] + "-"
    for other in os.listdir(folder):
        # (a name of 20 hex digits is a cache of the earlier naming, which nothing reads any more)
        if other != name and ((other.startswith(reading) and other.endswith(".npz"))
                              or re.fullmatch(r"[0-9a-f]{20}\.npz", other)):
            try:
                os.remove(os.path.join(folder, other))
            except OSError:  # removed by another process meanwhile: tidying is best effort
                pass


def _checksum(arrays):
    """sha256 of a cache's arrays, their kinds and shapes (about 1 GB/s: 0.05 s for 10,000 64x24 images)."""
    digest = hashlib.sha256()
    for name in CACHE_ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name} {array.dtype.str} {array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8) if array.size else b"")
    return digest.hexdigest()


def _decode_folder(folder, entries, reading):
    """Decode every listed image in parallel: (ImageSet, [(name, why unreadable)])."""
    charset = reading.charset
    paths = [os.path.join(folder, name) for name, _ in entries]
    chunks = [(paths[i:i + 512], reading.width, reading.height) for i in range(0, len(paths), 512)]
    workers = min(reading.workers, max(1, len(chunks)))
    # Each chunk is copied into one array as it arrives and then freed: a list of every image stacked at the
    # end held the folder twice (18 GB of memory for 300,000 160x60 captchas, 8.6 GB of pixels).
    images = np.empty((len(paths), reading.height, reading.width, 3), np.uint8)
    kept, unreadable = [], []
    with multiprocessing.Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        decoded = itertools.chain.from_iterable(pool.imap(_read_chunk, chunks) if pool else map(_read_chunk, chunks))
        for (name, label), (array, problem) in zip(entries, decoded):
            if problem:
                unreadable.append((name, problem))
            else:
                images[len(kept)] = array
                kept.append((name, label))
    images = images[:len(kept)]
    # An unlabelled image ('') has no target: -1 in every position.
    targets = np.array([charset.encode(label) if label else [-1] * charset.length for _, label in kept],
                       dtype=np.int64).reshape(-1, charset.length)
    return ImageSet(images, targets, [name for name, _ in kept], [label for _, label in kept]), unreadable


def load_train_test(params):
    """(train ImageSet, test ImageSet): train_dir and test_dir, or data_dir split by test_split (seeded by
    seed), each read as Reading.of(params) says."""
    reading = Reading.of(params)
    if params.data_dir:
        everything = load_folder(params.data_dir, reading)
        order = list(range(len(everything)))
        random.Random(params.seed).shuffle(order)
        cut = int(round(len(order) * params.test_split))
        return everything.subset(sorted(order[cut:])), everything.subset(sorted(order[:cut]))
    return load_folder(params.train_dir, reading), load_folder(params.test_dir, reading)


def load_training_data(params):
    """(train ImageSet, test ImageSet, epoch_order): load_train_test's sets with the first mix_count images of
    mix_dir appended to train, and epoch_order (int64 (M,)) the train indices one epoch visits: each own
    image train_repeat times, each mix image once. Repeating indices, not images, keeps memory flat."""
    train_set, test_set = load_train_test(params)
    order = np.tile(np.arange(len(train_set), dtype=np.int64), params.train_repeat)
    if params.mix_dir:
        mix = load_folder(params.mix_dir, Reading.of(params))
        if params.mix_count:
            mix = mix.subset(range(min(params.mix_count, len(mix))))
        order = np.concatenate([order, np.arange(len(train_set), len(train_set) + len(mix), dtype=np.int64)])
        train_set = ImageSet(np.concatenate([train_set.images, mix.images]),
                             np.concatenate([train_set.targets, mix.targets]),
                             train_set.names + mix.names, train_set.labels + mix.labels)
    return train_set, test_set, order


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    if params.infer_charset:
        params = infer_charset(params)
    for name, image_set in zip(("train", "test"), load_train_test(params)):  # a DataError: one line (run_main)
        print(f"{name}: {len(image_set)} images {tuple(image_set.images.shape[1:])}")


if __name__ == "__main__":
    run_main(main)
