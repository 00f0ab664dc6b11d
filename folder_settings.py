"""What a training folder tells of its own settings, so that `python main.py --data_dir=my_site` needs no
size, charset or length flags.

- A folder that generate_captcha.py wrote keeps the settings it was drawn with in .generator.json: the
  run takes all of them (image size, charset, length, kind, style).
- Any other labelled folder: the image size from its images (their median, scaled down to about
  AUTO_PIXELS pixels and rounded to multiples of 8), the charset and the length range from its labels.

A setting the user gives wins over the folder's, and the one line that lists what was taken says which
folder setting it replaced. Training calls from_folders() once, when a run starts; a resumed run keeps
what its checkpoint saved.
"""
import json
import os
import statistics

from PIL import Image

from dataset import DataError, image_names, labels_charset, list_folder, Reading
from images import AUTO_PIXELS, far_sizes, model_size
from parameters import make_parameters
from styles import STYLES

SETTINGS_FILE = ".generator.json"  # generate_captcha.py's record of how a folder's images were drawn
ODD_SHARE = 0.05  # more odd-sized images than this share of a folder: its sizes are mixed, an error
SIZE_SAMPLE = 2000  # images whose headers are read to find a folder's size (spread evenly over its names)
SIZE_KEYS = ("image_width", "image_height")
LABEL_KEYS = ("charset", "captcha_length")
NOT_FROM_GENERATOR = ("seed",)  # drawn with a seed, trained with the run's own


def chosen_settings(params, given):
    """The settings the user chose. From a command line (`given`, the keys named there): those, and what
    the style named there sets. From a program (given None): every setting that is not at its default."""
    if given is None:
        defaults = type(params)()  # Parameters, or a bench script's BenchParameters
        return {key for key in vars(params) if getattr(params, key) != getattr(defaults, key)}
    chosen = set(given)
    if "style" in chosen:
        chosen |= set(STYLES[params.style])
    return chosen


def from_folders(params, chosen):
    """`params` with what the training folder says for each setting not in `chosen`, and that said in one
    line (None when nothing was taken). data_mode=generate draws its own captchas: nothing is read."""
    if params.data_mode != "folder":
        return params
    if params.infer_charset:  # asked for: the labels' charset and length, whatever else names them
        chosen = chosen - set(LABEL_KEYS)
    folder = params.data_dir or params.train_dir
    if not image_names(folder):
        raise DataError(f"{folder} holds no images (.png, .jpg, .gif, .bmp, .webp or .tif files named by their "
                        f"labels, or listed in a labels.csv)")
    try:
        recorded = generator_settings(folder)
    except DataError as error:
        raise DataError(f"{error}: remove it to read the folder's images and labels") from None
    if recorded is not None:
        return from_generator(params, folder, recorded, chosen)
    return from_images_and_labels(params, folder, chosen)


def generator_settings(folder):
    """The settings in folder/.generator.json, or None when it has none (DataError: it cannot be read)."""
    path = os.path.join(folder, SETTINGS_FILE)
    try:
        with open(path) as handle:
            recorded = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read ({error})") from None
    if not isinstance(recorded, dict):
        raise DataError(f"{path} cannot be read (not a JSON object of settings)")
    return recorded


def from_generator(params, folder, recorded, chosen):
    """`params` with every setting of the folder's .generator.json that the user did not choose."""
    known = {key: value for key, value in recorded.items() if hasattr(params, key) and key not in NOT_FROM_GENERATOR}
    taken = {key: value for key, value in known.items() if key not in chosen}
    kept = {key: getattr(params, key) for key in chosen if key in known}  # re-applied over the style's preset
    updated = make_parameters({**taken, **kept}, base=params)
    if not chosen & set(LABEL_KEYS) and not params.infer_charset:
        check_labels_agree(updated, folder)
    elif params.infer_charset:
        updated = labels_settings(updated, [folder], chosen)[0]
    replaced = {key: known[key] for key in kept if known[key] != getattr(params, key)}
    say_taken(f"{folder}/{SETTINGS_FILE}", updated, replaced, f"style {updated.style}")
    return updated


def check_labels_agree(params, folder):
    """A folder whose labels do not fit the charset and length its .generator.json names is not what was
    generated there: a one-line error, not a run that skips every file."""
    entries, problems = list_folder(folder, Reading.of(params))
    if problems:
        name, why = problems[0]
        raise DataError(f"{len(problems)} of {len(entries) + len(problems)} labels in {folder} disagree with its "
                        f"{SETTINGS_FILE} ({name}: {why}): remove {SETTINGS_FILE} to take charset and length from "
                        f"the labels, or give --charset and --captcha_length")


def from_images_and_labels(params, folder, chosen):
    """`params` with the image size of the folder's images and the charset and length of its labels, for
    each of those settings the user did not choose."""
    updated, replaced, notes = params, {}, []
    median = folder_image_size(folder)
    size = model_size(*median)
    updated = make_parameters({key: value for key, value in zip(SIZE_KEYS, size) if key not in chosen}, base=updated)
    replaced.update({key: value for key, value in zip(SIZE_KEYS, size)
                     if key in chosen and value != getattr(params, key)})
    if size != median and not set(SIZE_KEYS) <= chosen:
        notes.append(f"its images' median {median[0]}x{median[1]} scaled to about {AUTO_PIXELS} pixels")
    folders = [params.data_dir] if params.data_dir else [params.train_dir, params.test_dir]
    updated, label_notes = labels_settings(updated, [f for f in folders if os.path.isdir(f)], chosen, replaced)
    say_taken(folder, updated, replaced, "; ".join(notes + label_notes))
    return updated


def labels_settings(params, folders, chosen, replaced=None):
    """(`params` with charset and length from the labels where not chosen, [a note]); the labels' values
    that a chosen setting replaced join `replaced`."""
    chars, length, count = labels_charset(folders, params.ignore_case)
    found = {"charset": chars, "captcha_length": length}
    taken = {key: value for key, value in found.items() if key not in chosen}
    if replaced is not None:
        replaced.update({key: value for key, value in found.items()
                         if key in chosen and str(value) != str(getattr(params, key))})
    return make_parameters(taken, base=params), [f"labels of {count} images"] if taken else []


def folder_image_size(folder):
    """(width, height): the median size of the folder's images (their headers, SIZE_SAMPLE of them at most);
    a folder whose sizes are mixed (images.far_sizes from the median) is a one-line error."""
    names = image_names(folder)
    step = max(1, len(names) // SIZE_SAMPLE)
    sizes = []
    for name in names[::step]:
        try:
            with Image.open(os.path.join(folder, name)) as image:
                sizes.append(image.size)
        except (OSError, ValueError, Image.DecompressionBombError):  # reading it later reports it
            continue
    if not sizes:
        raise DataError(f"no image in {folder} can be read")
    width, height = (round(statistics.median(axis)) for axis in zip(*sizes))
    odd = [size for size in sizes if far_sizes(size, (width, height))]
    if len(odd) > ODD_SHARE * len(sizes):
        example = f"{odd[0][0]}x{odd[0][1]}"
        raise DataError(f"{folder} mixes image sizes ({len(odd)} of {len(sizes)} read are far from the median "
                        f"{width}x{height}, e.g. {example}): give --image_width and --image_height to read them all "
                        f"at one size, or split the folder by size")
    return width, height


def read_size_flags(folder):
    """The --image_width and --image_height a model reads `folder`'s images at: model_size() of their median,
    as a labelled folder gets. A style fitted to a site draws at the site's full size; a model trained on it
    at this size trains as many times faster as it has fewer pixels (advrpg_digits 240x80: 4x)."""
    width, height = model_size(*folder_image_size(folder))
    return [f"--image_width={width}", f"--image_height={height}"]


def say_taken(source, params, replaced, note):
    """The one line of what was taken from the folder, and which folder settings the flags replaced."""
    line = (f"from {source}: {params.image_width}x{params.image_height} images, {params.captcha_length} characters "
            f"of {len(params.charset)} classes {params.charset!r}" + (f" ({note})" if note else ""))
    if replaced:
        line += "; given, replacing the folder's " + ", ".join(
            f"--{key}={getattr(params, key)} (folder: {value})" for key, value in sorted(replaced.items()))
    print(line, flush=True)
