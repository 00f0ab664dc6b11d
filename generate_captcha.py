"""Write labelled captcha folders for training and testing, styled by parameters.py.

    python generate_captcha.py                                  # 200,000 train + 10,000 test, 64x24
    python generate_captcha.py --train_count=20000 --test_count=2000 --workers=2
    python generate_captcha.py --preview                        # only the preview grid, to style quickly
    python generate_captcha.py --style=captcha_default          # a named style preset

Files are named LABEL_INDEX.png or LABEL_INDEX.jpg (image_format; INDEX zero-padded), so no image is
lost when labels repeat and no two names collide on case-insensitive file systems. A label character no
file name may hold is written as %XX (3+8=? as 3+8=%3F_000012.png; dataset.name_of_label). Image INDEX of a split is drawn from its own
random.Random seeded by (seed, split, INDEX): the same seed gives the same labels and bytes with any
number of workers, and re-running skips the images already on disk (an interrupted run resumes).
A killed run leaves no half-written image that a later run takes for a whole one: each chunk of images is
written inside a marker file naming its indices, and a later run rewrites the images of a marked chunk.
Each folder keeps the settings its images were drawn with (.generator.json): writing into it with other
settings (a restyled generator, another seed) is refused, since skipping the images already there would
mix two looks in one data set.
"""
import io
import json
import multiprocessing
import os
import random
import re

from PIL import Image
from tqdm import tqdm

from custom_captcha_image import StyleError, make_generator
from dataset import DataError, name_of_label
from files import atomic_write
from folder_lock import one_writer
from folder_settings import SETTINGS_FILE, generator_settings  # SETTINGS_FILE: how a folder's images were drawn
from grid import image_grid
from command_line import fail, parse_args, run_main
from parameters import ParameterError, Parameters, convert, layout, worker_count

NAME_PATTERN = re.compile(r"^(?P<label>.+)_(?P<index>\d+)\.(?P<ext>jpg|png)$")
CHUNK = 256  # images per task handed to a worker
CHUNK_MARKER = ".writing-"  # a chunk being written: its indices (see _write_chunk)
# Besides the style group, the settings that change a generated file's bytes.
DRAWING_KEYS = ("charset", "captcha_length", "captcha_kind", "arithmetic_operands", "arithmetic_operators",
                "arithmetic_endings", "arithmetic_negative", "image_width", "image_height", "seed", "image_format",
                "jpeg_quality")

_worker_generator = None  # one generator per worker process, fonts loaded once


def image_rng(seed, split, index):
    """The random source of one image; a string seed is hashed (sha512) the same in every process."""
    return random.Random(f"{seed}:{split}:{index}")


def make_sample(generator, params, split, index):
    """(label, PIL image) of image `index` of `split`: a pure function of the settings."""
    return generator.sample(image_rng(params.seed, split, index))


def encode(image, params):
    buffer = io.BytesIO()
    if params.image_format == "jpg":
        image.save(buffer, format="JPEG", quality=params.jpeg_quality)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def as_saved(image, params):
    """The image as its file reads back: a JPG's compression artefacts are part of what a model trained on
    fresh captchas (data_mode=generate) must see, as they are in the folders this script writes."""
    return Image.open(io.BytesIO(encode(image, params))) if params.image_format == "jpg" else image


def file_name(label, index, params):
    return f"{name_of_label(label)}_{index:06d}.{params.image_format}"


def _init_worker(params):
    global _worker_generator
    _worker_generator = make_generator(params)


def _write_chunk(task):
    """Write a chunk's images under their final names, inside a marker: a file a killed run may have left
    half-written belongs to a chunk whose marker is still there (see existing_indices). Three system calls an
    image (open, write, close), where a temporary name and a rename took seven."""
    params, folder, split, indices = task
    marker = os.path.join(folder, f"{CHUNK_MARKER}{indices[0]}")
    with open(marker, "w") as handle:  # complete before any image of the chunk is opened
        handle.write(" ".join(map(str, indices)))
    for index in indices:
        label, image = make_sample(_worker_generator, params, split, index)
        write_file(os.path.join(folder, file_name(label, index, params)), encode(image, params))
    os.remove(marker)
    return len(indices)


def write_file(path, data):
    """`data` into a new file at `path`: open, write, close (Python's open() adds an fstat, an ioctl and an
    lseek a file, a third of the system calls of a 64x24 captcha)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
    finally:
        os.close(handle)


def unfinished_indices(folder, names):
    """Indices of the chunks a killed run left unfinished (their markers, removed here with any image of them)."""
    unfinished = set()
    for name in names:
        if name.startswith(CHUNK_MARKER):
            with open(os.path.join(folder, name)) as handle:
                unfinished.update(int(word) for word in handle.read().split() if word.isdigit())
            os.remove(os.path.join(folder, name))
    return unfinished


def existing_indices(folder, params):
    """Indices already written to `folder` in this format. An image of a chunk left unfinished may be
    half-written: it is removed (and written again), as are temporary files of older versions."""
    names = os.listdir(folder)
    unfinished = unfinished_indices(folder, names)
    done = set()
    for name in names:
        match = NAME_PATTERN.match(name)
        if name.endswith(".tmp") or (match and int(match.group("index")) in unfinished):
            os.remove(os.path.join(folder, name))
        elif match and match.group("ext") == params.image_format:
            done.add(int(match.group("index")))
    return done


def drawing_settings(params):
    """{setting: value as JSON reads it back} of every setting a generated image depends on."""
    keys = DRAWING_KEYS + tuple(layout()[0]["style"][1]) + tuple(layout()[0]["looks"][1])
    return json.loads(json.dumps({key: getattr(params, key) for key in keys}))


def as_written(key, value):
    """A setting read back from a folder's SETTINGS_FILE in today's form (a count written by an older version
    is today's text '4'); a value no longer valid stays as it was, and so differs."""
    try:
        return json.loads(json.dumps(convert(key, value)))
    except ParameterError:
        return value


def settings_conflict(folder, params):
    """A one-line reason when `folder` holds images drawn with other settings than `params` (else None)."""
    try:
        theirs = generator_settings(folder)
    except DataError as error:
        return f"{error}: empty the folder or write to another"
    if theirs is None:
        return None
    ours = drawing_settings(params)
    # A setting added since the folder was written is absent there: its default draws as before it existed.
    theirs = {**drawing_settings(Parameters()), **{key: as_written(key, value) for key, value in theirs.items()}}
    changed = sorted(key for key in set(ours) | set(theirs) if ours.get(key) != theirs.get(key))
    if not changed:
        return None
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return (f"{folder} holds captchas drawn with other settings ({shown} differ): write to another folder, "
            f"or empty this one")


def claim_folder(folder, params):
    """Refuse a folder of images drawn with other settings; record ours in a folder that has none yet."""
    conflict = settings_conflict(folder, params)
    if conflict:
        raise StyleError(conflict)
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.exists(path):
        atomic_write(path, json.dumps(drawing_settings(params), indent=1, sort_keys=True).encode())


def splits(params):
    """[(folder, split, count)] of the data set's splits to write: none for --preview, and a split of no
    images leaves its folder alone (another style's captchas may be there)."""
    if params.preview:
        return []
    return [(folder, split, count) for folder, split, count in ((params.train_dir, "train", params.train_count),
                                                                (params.test_dir, "test", params.test_count)) if count]


def check_settings(params):
    """Every setting generation depends on, checked before any work: a clear one-line error."""
    make_generator(params)  # fonts, sizes, colours, width (of every style in a mix)
    folders = [os.path.dirname(params.preview_file) or "."]
    folders += [folder for folder, _, _ in splits(params)]
    for folder in folders:
        ensure_writable(folder)
    for folder in folders[1:]:  # the data set's folders: drawn with these settings, or new
        conflict = settings_conflict(folder, params)
        if conflict:
            raise StyleError(conflict)


def ensure_writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise StyleError(f"cannot create folder {folder!r}: {error.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StyleError(f"folder {folder!r} is not writable")


def generate_split(params, folder, split, count):
    """Write images 0..count-1 of `split` into `folder`, skipping those already there; another generation
    writing the same folder is refused (FolderInUse) before anything is touched."""
    with one_writer(folder):
        return write_split(params, folder, split, count)


def write_split(params, folder, split, count):
    """generate_split() once this process holds `folder`."""
    claim_folder(folder, params)
    done = existing_indices(folder, params)
    todo = [index for index in range(count) if index not in done]
    if not todo:
        print(f"{folder}: all {count} images already there")
        return 0
    if done:
        print(f"{folder}: {count - len(todo)} of {count} images already there, writing the other {len(todo)}")
    tasks = [(params, folder, split, todo[i:i + CHUNK]) for i in range(0, len(todo), CHUNK)]
    workers = min(worker_count(params), len(tasks))
    with tqdm(total=len(todo), desc=f"{split:5s}", unit="img", smoothing=0.1) as bar:
        if workers == 1:
            _init_worker(params)
            for task in tasks:
                bar.update(_write_chunk(task))
        else:
            with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(params,)) as pool:
                for written in pool.imap_unordered(_write_chunk, tasks):
                    bar.update(written)
    return len(todo)


def write_preview(params, columns=5, scale=3):
    """A PNG grid of sample captchas (enlarged, label under each) for judging a style at a glance."""
    generator = make_generator(params)
    samples = [make_sample(generator, params, "preview", index) for index in range(max(1, params.preview_count))]
    image_grid([image for _, image in samples], [label for label, _ in samples], scale=scale,
               columns=columns).save(params.preview_file)
    return params.preview_file


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    try:
        check_settings(params)
    except StyleError as error:
        fail(str(error))
    for folder, split, count in splits(params):
        generate_split(params, folder, split, count)
    print(f"preview grid: {write_preview(params)}")


if __name__ == "__main__":
    run_main(main)
