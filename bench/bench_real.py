"""Real captchas: own labelled folders, sim-to-real, fine-tuning, and the captcha package's stock style.

    python bench/bench_real.py ../shared/datasets                       # every experiment (~4.5 hours on 2 cores)
    python bench/bench_real.py ../shared/datasets --bench_real=swust,captcha_images_v2
    python bench/bench_real.py ../shared/datasets --time_budget=1       # every experiment 1 minute (smoke run)

The folder holds `swust_cas/<batch>/` (4-character captchas of a university site, lower-case labels
of mixed-case images) and `captcha_images_v2/` (5-character grey captchas); see its README. Experiments:

- `swust`: all swust batches as one folder, seeded 80/20 split, case-insensitive, from scratch.
- `swust_pretrained`: the same split, starting from the sim_to_real model (a styled generator plus
  the site's own labelled captchas: what a user of this project would do).
- `captcha_images_v2`: seeded 90/10 split.
- `sim_to_real`: trained only on generated `--style=swust` captchas, evaluated on every real swust image.
- `fine_tune`: that model fine-tuned on 200 real swust images (a seeded draw, each repeated 100 times and
  mixed with 5,000 of the generated ones so that so few real images do not make it forget), evaluated on
  the other real ones.
- `captcha_default`: the captcha package's stock 160x60 style, charset 0-9A-Z, generated train/test.
- `stock_ctc`: the same style with 4 to 6 characters a captcha, read with the ctc head.
- `swust_ctc`, `captcha_images_v2_ctc`: `swust` and `captcha_images_v2` with the ctc head.

Each trains for a fixed time budget (generation and decoding excluded) and is scored with its
last checkpoint (not the best one: that would pick the test split's best epoch). Prints whole-captcha
accuracy (case-insensitive for swust), per-batch accuracy for swust, and training minutes; for the
swust 80/20 split (seed 0) also the accuracy without the 13 test images whose labels are wrong (MISLABELLED).
Runs go to runs/real_<experiment>; generated data to data/real_bench/.
"""
import os
import random
import shutil
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dataset import load_folder, load_train_test, Reading, score  # noqa: E402
from generate_captcha import generate_split  # noqa: E402
from model import load_checkpoint  # noqa: E402
from bench_settings import BenchParameters  # noqa: E402
from command_line import fail, parse_args  # noqa: E402
from parameters import DIGITS, UPPER, make_parameters, saved_parameters, with_saved_settings  # noqa: E402
from predictor import load_model  # noqa: E402
from train import train  # noqa: E402

MINUTES = {"swust": 4, "captcha_images_v2": 8, "sim_to_real": 24, "fine_tune": 12, "swust_pretrained": 4,
           "captcha_default": 36, "original_style": 20, "swust_self": 10, "swust_fine_tune_200": 8,
           "swust_self_200": 8, "v2_sim": 10, "v2_self": 5, "swust_ctc": 4, "captcha_images_v2_ctc": 8, "stock_ctc": 100,
           "own_data": 10, "site_zero_label": 60}  # own_data: README's --time_budget, for each of its folders
SMALL_DATA = {"batch_size": 64, "augment": "on", "infer_charset": True}
GENERATED = {"sim_to_real": (80000, 2000), "captcha_default": (150000, 2000), "original_style": (200000, 10000),
             "v2_sim": (60000, 2000), "stock_ctc": (450000, 2000)}  # (train, test) images
FINE_TUNE_IMAGES = 200
FINE_TUNE_REPEATS = 100  # each real image appears this many times: 200 x 100 real beside the generated ones
FINE_TUNE_SYNTHETIC = 5000  # generated images mixed in, so 200 real ones tune the model without it forgetting
# Test images of the seed-0 swust 80/20 split whose file-name label names a character the image does not show
# (looked at one by one: 51ya shows 6X1Y, 3zq1 32Q1, ...). Accuracy without them is printed beside the
# figure as labelled, never instead of it: it is what a reader with the right labels would score.
MISLABELLED = ("51ya_20190121", "3abu_20191218", "3zq1_20191218", "7ee6_20191218", "dxo7_20191218",
               "f7q5_20191218", "glro_20191218", "ht26_20191218", "k0t2_20191218", "k68q_20191218",
               "q77p_20191218", "tzhv_20191218", "y98j_20191218")


def swust_folder(datasets, work):
    """All swust batches as one folder of links named LABEL_BATCH-REST (label first, batch kept)."""
    source = os.path.join(datasets, "swust_cas")
    merged = os.path.join(work, "swust_all")
    os.makedirs(merged, exist_ok=True)
    for batch in sorted(os.listdir(source)):
        folder = os.path.join(source, batch)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            label, _, rest = name.partition("_")
            link = os.path.join(merged, f"{label}_{batch}-{rest or name}")
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(folder, name)), link)
    return merged


def fine_tune_folders(swust, work, seed):
    """(train, test) folders of links: FINE_TUNE_IMAGES real swust images (a seeded draw); every other real
    image is the test set."""
    names = sorted(n for n in os.listdir(swust) if not n.startswith("."))
    random.Random(seed).shuffle(names)
    root = os.path.join(work, "fine_tune")
    shutil.rmtree(root, ignore_errors=True)
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    for folder, chosen in ((train_dir, names[:FINE_TUNE_IMAGES]), (test_dir, names[FINE_TUNE_IMAGES:])):
        os.makedirs(folder)
        for name in chosen:
            os.symlink(os.path.realpath(os.path.join(swust, name)), os.path.join(folder, name))
    return train_dir, test_dir


def evaluate(model_dir, image_set, params, check_labels=False):
    """Metrics of model_dir/last.pt on an ImageSet, overall and per swust batch (from the file names), and
    with check_labels also without the MISLABELLED images."""
    last = os.path.join(model_dir, "last.pt")
    predictor = load_model(last, params)
    charset = predictor.charset
    logits = predictor.logits(image_set.images)  # (N, steps, classes)
    metrics, _ = score(logits, image_set.labels, charset)
    groups = {}
    for index, name in enumerate(image_set.names):
        rest = name.partition("_")[2]
        group = rest.split("-", 1)[0] if "-" in rest else ""
        groups.setdefault(group, []).append(index)
    if len(groups) > 1:
        for group, indices in sorted(groups.items()):
            labels = [image_set.labels[index] for index in indices]
            metrics[f"batch {group}"], _ = score(logits[indices], labels, charset)
    if check_labels:
        wrong = tuple(f"{key}-" for key in MISLABELLED)
        kept = [index for index, name in enumerate(image_set.names) if not name.startswith(wrong)]
        metrics["labels right"], _ = score(logits[kept], [image_set.labels[index] for index in kept], charset)
        metrics["labels right"]["count"] = len(kept)
    metrics["minutes"] = load_checkpoint(last)["progress"]["seconds"] / 60
    metrics["count"] = len(image_set)
    return metrics


def folder_run(params, overrides, test_folder=None, check_labels=False):
    """Train with `overrides`; evaluate on its own test split, or on every image of test_folder."""
    run_params = make_parameters(overrides, base=params)
    train(run_params)
    trained = with_saved_settings(run_params, load_checkpoint(os.path.join(run_params.model_dir, "last.pt"))["params"])
    if test_folder:
        test = load_folder(test_folder, Reading.of(trained, strict=False), quiet=True)
    elif trained.data_dir:
        test = load_train_test(trained)[1]
    else:
        test = load_folder(trained.test_dir, Reading.of(trained), quiet=True)
    return evaluate(run_params.model_dir, test, trained, check_labels)


def generated(params, name, style_overrides):
    """Generate the experiment's train/test folders once; their paths."""
    train_count, test_count = GENERATED[name]
    root = os.path.join("data", "real_bench", name)
    style = make_parameters({**style_overrides, "train_count": train_count, "test_count": test_count}, base=params)
    generate_split(style, os.path.join(root, "train"), "train", train_count)
    generate_split(style, os.path.join(root, "test"), "test", test_count)
    return os.path.join(root, "train"), os.path.join(root, "test")


def synthetic_model(name):
    path = os.path.join("runs", "real_sim_to_real", "last.pt")
    if not os.path.isfile(path):
        fail(f"{name} starts from {path}: run the sim_to_real experiment first")
    return path


def minutes(params, name):
    return params.time_budget if params.time_budget else MINUTES[name]


SWUST_STYLE = {"style": "swust", "ignore_case": True}
ADAPT = {"augment": "on", "lr": 1e-3, "warmup": 0.1}  # training on from a generator-trained model


def link_folder(folder, sources, opaque=False):
    """A fresh folder of links to `sources` (paths); opaque: named u00000.ext..., so no label is in a name."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for index, source in enumerate(sources):
        name = f"u{index:05d}{os.path.splitext(source)[1]}" if opaque else os.path.basename(source)
        os.symlink(os.path.realpath(source), os.path.join(folder, name))
    return folder


def real_split(params, ctx, folder, split, style):
    """(train ImageSet, test ImageSet) of a seeded split of a real folder, read as the style's model reads."""
    return load_train_test(make_parameters({**style, "data_dir": folder, "test_split": split, "strict": False},
                                           base=params))


def run_on(params, overrides, test, check_labels=False):
    """Train with `overrides`, then score last.pt on the ImageSet `test`."""
    run_params = make_parameters(overrides, base=params)
    train(run_params)
    return evaluate(run_params.model_dir, test, run_params, check_labels)


def exp_swust(params, ctx):
    return folder_run(params, {**SMALL_DATA, **ctx.budget, "data_dir": ctx.swust, "test_split": 0.2,
                               "ignore_case": True, "image_width": 96, "image_height": 32},
                      check_labels=params.seed == 0)


def exp_swust_ctc(params, ctx):
    """`swust` read with the ctc head."""
    return exp_swust(make_parameters({"head": "ctc"}, base=params), ctx)


def exp_captcha_images_v2(params, ctx):
    # 200x50 read at 128x32 (160x40 measured no better: 0.9712 after 5 minutes; 128x32 0.9808 after 4).
    return folder_run(params, {**SMALL_DATA, **ctx.budget, "test_split": 0.1, "image_width": 128, "image_height": 32,
                               "data_dir": os.path.join(ctx.datasets, "captcha_images_v2")})


def exp_captcha_images_v2_ctc(params, ctx):
    """`captcha_images_v2` read with the ctc head."""
    return exp_captcha_images_v2(make_parameters({"head": "ctc"}, base=params), ctx)


def exp_sim_to_real(params, ctx):
    train_dir, test_dir = generated(params, "sim_to_real", SWUST_STYLE)
    # Augmented although the set is large: shifts, blur and noise are what carry a synthetic
    # style over to the real one (the synthetic test set alone is read at 0.999 without them).
    return folder_run(params, {**SWUST_STYLE, **ctx.budget, "train_dir": train_dir, "test_dir": test_dir,
                               "augment": "on"}, test_folder=ctx.swust)


def exp_swust_pretrained(params, ctx):
    return folder_run(params, {**SMALL_DATA, **ctx.budget, "infer_charset": False, **SWUST_STYLE,
                               "data_dir": ctx.swust, "test_split": 0.2, "lr": 1e-3,
                               "init_from": synthetic_model("swust_pretrained")}, check_labels=params.seed == 0)


def exp_fine_tune(params, ctx):
    start_from = synthetic_model("fine_tune")
    synthetic_train, _ = generated(params, "sim_to_real", SWUST_STYLE)  # already there after sim_to_real
    train_dir, test_dir = fine_tune_folders(ctx.swust, ctx.work, params.seed)
    return folder_run(params, {**SWUST_STYLE, **ctx.budget, "train_dir": train_dir, "test_dir": test_dir,
                               "train_repeat": FINE_TUNE_REPEATS, "mix_dir": synthetic_train,
                               "mix_count": FINE_TUNE_SYNTHETIC, "init_from": start_from,
                               "augment": "on", "lr": 1e-3, "warmup": 0.1})


def exp_captcha_default(params, ctx):
    style = {"style": "captcha_default", "charset": DIGITS + UPPER}
    train_dir, test_dir = generated(params, "captcha_default", style)
    # Read at the native 160x60 with 1/16 feature columns (the cost of 120x45 at 1/8): at 80x30
    # the stock font's 0 and O, stretched to one box, became the same blob (on a GPU: 0.948 after 5
    # epochs, 71 of its 108 wrong characters 0/O); at 160x60 they part (0.9915 after 7).
    return folder_run(params, {**style, **ctx.budget, "train_dir": train_dir, "test_dir": test_dir,
                               "feature_stride": 16})


def exp_stock_ctc(params, ctx):
    """The captcha package's stock 160x60 style, 0-9A-Z, 4 to 6 characters a captcha: the ctc head."""
    style = {"style": "captcha_default", "charset": DIGITS + UPPER, "captcha_length": "4-6"}
    train_dir, test_dir = generated(params, "stock_ctc", style)
    # 20 feature columns (feature_stride 8) for up to 6 characters. 150,000 captchas, 40 minutes: 0.9800, read
    # its own training captchas at 0.9970 (learnt by heart); 300,000: 0.9890 in 60, 0.9895 in 70; 450,000 (13 GB
    # of pixels in memory) in 100: 0.9945. Most errors are O/0 (with render jitter, as this style drew before it
    # stated none: 0.9455; 10 columns: 0.9235).
    return folder_run(params, {**style, **ctx.budget, "train_dir": train_dir, "test_dir": test_dir, "head": "ctc",
                               "feature_stride": 8})


def exp_original_style(params, ctx):
    """The seed style against the original project's own generator (original_style/): trained on generated
    captchas only, read on both; `transfer` is original_style's case-insensitive accuracy over the own test's."""
    train_dir, test_dir = generated(params, "original_style", {"style": "seed"})
    # A stride-1 stem: at 64x24 the default stride-2 stem halves strokes a pixel or two wide before the first
    # block sees them. 20 minutes each, with render jitter: own test 0.9339 / original_style 0.8610 (948
    # images/s) against 0.8956 / 0.8280 (~2,400 images/s), case-insensitive; the seed style has none now.
    run_params = make_parameters({"style": "seed", **ctx.budget, "train_dir": train_dir, "test_dir": test_dir,
                                  "stem_stride": 1}, base=params)
    train(run_params)
    own = evaluate(run_params.model_dir, load_folder(test_dir, Reading.of(run_params), quiet=True), run_params)
    original = evaluate(run_params.model_dir, load_folder(os.path.join(ctx.datasets, "original_style"),
                                                          Reading.of(run_params, strict=False), quiet=True), run_params)
    original["own test"] = own
    original["transfer"] = original["accuracy_ignore_case"] / max(1e-9, own["accuracy_ignore_case"])
    return original


OWN_DATA_FOLDERS = ("pku_elective", "advrpg_digits", "captcha_images_v2", "swust_cas/20190121", "swust_cas/20191218",
                    "swust_cas/20200226")  # own_data: each trained with README's own-data command alone


def with_worst(results):
    """{"folder NAME": metrics} with the worst folder's figures as the experiment's own (print_results' row)."""
    worst = min(results.values(), key=lambda metrics: metrics["accuracy_ignore_case"])
    return {**{key: worst[key] for key in ("count", "accuracy", "accuracy_ignore_case", "minutes")}, **results}


def own_data_run(data_flags, model_dir, minutes, flags=()):
    """`python main.py` on labelled folders (`data_flags`: README's `--data_dir=F --test_split=0.2`, or a
    train_dir and test_dir) for `minutes`, plus a model_dir and any extra `flags`; metrics of its test
    images read by last.pt, with its training and wall minutes."""
    command = [sys.executable, os.path.join(ROOT, "main.py"), *data_flags, f"--time_budget={minutes:g}",
               f"--model_dir={model_dir}", *flags]
    print(f"--- {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    trained = saved_parameters(load_checkpoint(os.path.join(model_dir, "last.pt"))["params"])
    metrics = evaluate(model_dir, load_train_test(make_parameters({"strict": False}, base=trained))[1], trained)
    metrics["wall minutes"] = (time.perf_counter() - started) / 60
    print(f"{' '.join(data_flags + tuple(flags))}: {metrics['accuracy']:.4f} case-sensitive, "
          f"{metrics['accuracy_ignore_case']:.4f} case-insensitive on {metrics['count']} held-out captchas; "
          f"{metrics['minutes']:.1f} min of training, {metrics['wall minutes']:.1f} min in all", flush=True)
    return metrics


def exp_own_data(params, ctx):
    """README's own-data command, exactly (`python main.py --data_dir=F --test_split=0.2 --time_budget=10`,
    plus a model_dir of its own), on each OWN_DATA_FOLDERS folder. The folders' size, charset and length
    come from the folders themselves, as for a user."""
    return with_worst({f"folder {name}": own_data_run(readme_flags(os.path.join(ctx.datasets, name)),
                                                      f"runs/own_{name.replace('/', '_')}", ctx.budget["time_budget"])
                       for name in OWN_DATA_FOLDERS})


def readme_flags(folder):
    """The data flags of README's own-data command."""
    return (f"--data_dir={folder}", "--test_split=0.2")


# site_zero_label: (folder, charset, length, ddddocr 1.6.1 zero-shot, the hand-made style's zero-label figure or None)
SITES = (("pku_elective", "2345678abcdefgmnpwxy", 4, 0.880, 0.847), ("advrpg_digits", DIGITS, 4, 0.530, 0.931),
         ("swust_cas", DIGITS + UPPER, 4, 0.849, 0.9766), ("captcha_images_v2", "2345678bcdefgmnpwxy", 5, 0.841, 1.0))


def exp_site_zero_label(params, ctx):
    """README's one command for a new site (site_model.py: fit, generate, train, self-train) given only the
    seeded 80% of each SITES folder as unlabelled captchas (opaque names), the charset and the length;
    its model read on the other 20% (case-insensitive: swust's labels are lower case)."""
    unknown = sorted(set(params.bench_sites) - {site[0] for site in SITES})
    if unknown:
        fail(f"--bench_sites names no site of site_zero_label: {', '.join(unknown)} (sites: "
             f"{', '.join(site[0] for site in SITES)})")
    results = {}
    for name, charset, length, ddddocr, hand_made in SITES:
        if params.bench_sites and name not in params.bench_sites:
            continue
        folder = ctx.swust if name == "swust_cas" else os.path.join(ctx.datasets, name)
        both_cases = "".join(dict.fromkeys(charset.lower() + charset.upper()))  # swust's labels are lower case
        split = make_parameters({"data_dir": folder, "test_split": 0.2, "charset": both_cases,
                                 "captcha_length": length, "strict": False}, base=params)
        train_set, test_set = load_train_test(split)
        unlabelled = link_folder(os.path.join(ctx.work, f"site_{name}"),
                                 [os.path.join(folder, image) for image in train_set.names], opaque=True)
        work = f"runs/site_{name}"
        started = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(ROOT, "site_model.py"), unlabelled, f"--charset={charset}",
                        f"--captcha_length={length}", f"--site_dir={work}"], check=True)
        model = os.path.join(work, "model")
        trained = saved_parameters(load_checkpoint(os.path.join(model, "last.pt"))["params"])
        metrics = evaluate(model, load_train_test(make_parameters({"image_width": trained.image_width,
                                                                   "image_height": trained.image_height},
                                                                  base=split))[1], trained)
        metrics["minutes"] = (time.perf_counter() - started) / 60
        results[f"folder {name}"] = metrics
        print(f"{name}: zero labels {metrics['accuracy_ignore_case']:.4f} case-insensitive on {len(test_set)} held-out "
              f"captchas in {metrics['minutes']:.0f} min (ddddocr zero-shot {ddddocr:.3f}"
              + (f", hand-made style {hand_made:.4f}" if hand_made else "") + ")", flush=True)
    return with_worst(results)


def swust_self_folders(params, ctx, labelled):
    """(labelled folder or None, unlabelled folder, test ImageSet) from the seeded 80/20 split of all swust
    (the `swust` experiment's): `labelled` images of the 80% keep their labels, the rest of it loses them."""
    train_part, test = real_split(params, ctx, ctx.swust, 0.2, SWUST_STYLE)
    names = list(train_part.names)
    random.Random(params.seed).shuffle(names)
    paths = [os.path.join(ctx.swust, name) for name in names]
    root = os.path.join(ctx.work, "swust_self")
    labelled_dir = link_folder(os.path.join(root, "labelled"), paths[:labelled]) if labelled else None
    return labelled_dir, link_folder(os.path.join(root, "unlabelled"), paths[labelled:], opaque=True), test


def exp_swust_self(params, ctx):
    """Zero labels: the sim_to_real model self-trained on 80% of the real swust captchas without their labels,
    read on the other 20%."""
    _, unlabelled, test = swust_self_folders(params, ctx, 0)
    train_dir, test_dir = generated(params, "sim_to_real", SWUST_STYLE)
    return run_on(params, {**SWUST_STYLE, **ctx.budget, **ADAPT, "train_dir": train_dir, "test_dir": test_dir,
                           "unlabelled_dir": unlabelled, "init_from": synthetic_model("swust_self")}, test,
                  check_labels=params.seed == 0)


def two_hundred_labels(params, ctx, name, with_unlabelled):
    """The fine_tune recipe on 200 labelled images of the 80% (each x100, 5,000 generated mixed in), with or
    without the rest of the 80% unlabelled; read on the same 20% as swust_self."""
    labelled, unlabelled, test = swust_self_folders(params, ctx, FINE_TUNE_IMAGES)
    synthetic_train, synthetic_test = generated(params, "sim_to_real", SWUST_STYLE)
    overrides = {**SWUST_STYLE, **ctx.budget, **ADAPT, "train_dir": labelled, "test_dir": synthetic_test,
                 "train_repeat": FINE_TUNE_REPEATS, "mix_dir": synthetic_train, "mix_count": FINE_TUNE_SYNTHETIC,
                 "init_from": synthetic_model(name), "unlabelled_dir": unlabelled if with_unlabelled else ""}
    return run_on(params, overrides, test, check_labels=params.seed == 0)


def exp_swust_fine_tune_200(params, ctx):
    return two_hundred_labels(params, ctx, "swust_fine_tune_200", with_unlabelled=False)


def exp_swust_self_200(params, ctx):
    return two_hundred_labels(params, ctx, "swust_self_200", with_unlabelled=True)


V2_STYLE = {"style": "captcha_images_v2", "image_width": 128, "image_height": 32}  # drawn at 200x50, read at 128x32


def exp_v2_sim(params, ctx):
    """Trained only on the captcha_images_v2 style, read on every real captcha_images_v2 image."""
    train_dir, test_dir = generated(params, "v2_sim", {"style": "captcha_images_v2"})
    real = os.path.join(ctx.datasets, "captcha_images_v2")
    return folder_run(params, {**V2_STYLE, **ctx.budget, "train_dir": train_dir, "test_dir": test_dir,
                               "augment": "on"}, test_folder=real)


def exp_v2_self(params, ctx):
    """Zero labels: the v2_sim model self-trained on a seeded 90% of captcha_images_v2 without labels, read on
    the other 10%."""
    real = os.path.join(ctx.datasets, "captcha_images_v2")
    train_part, test = real_split(params, ctx, real, 0.1, V2_STYLE)
    unlabelled = link_folder(os.path.join(ctx.work, "v2_self", "unlabelled"),
                             [os.path.join(real, name) for name in train_part.names], opaque=True)
    train_dir, test_dir = generated(params, "v2_sim", {"style": "captcha_images_v2"})
    start = os.path.join("runs", "real_v2_sim", "last.pt")
    if not os.path.isfile(start):
        fail(f"v2_self starts from {start}: run the v2_sim experiment first")
    return run_on(params, {**V2_STYLE, **ctx.budget, **ADAPT, "train_dir": train_dir, "test_dir": test_dir,
                           "unlabelled_dir": unlabelled, "init_from": start}, test)


EXPERIMENTS = {name[4:]: function for name, function in list(globals().items()) if name.startswith("exp_")}


def print_results(results, started):
    print(f"\nreal-captcha benchmark, {os.cpu_count()} CPU cores, {(time.perf_counter() - started) / 60:.0f} min in all")
    print(f"{'experiment':22s} {'test images':>11s} {'accuracy':>9s} {'no case':>8s} {'train min':>9s}")
    for name, metrics in results.items():
        print(f"{name:22s} {metrics['count']:11d} {metrics['accuracy']:9.4f} {metrics['accuracy_ignore_case']:8.4f} "
              f"{metrics['minutes']:9.1f}")
        for key, value in metrics.items():
            if key.startswith(("batch ", "folder ")) or key == "own test":
                print(f"  {key:20s} {value.get('count', 0) or '':>11} {value['accuracy']:9.4f} "
                      f"{value['accuracy_ignore_case']:8.4f}")
        if "transfer" in metrics:
            print(f"  {'transfer':20s} {'':11s} {metrics['transfer']:9.4f}  (case-insensitive, original_style / own test)")
        if "labels right" in metrics:
            right = metrics["labels right"]
            print(f"  {'labels right':20s} {right['count']:11d} {right['accuracy']:9.4f} "
                  f"{right['accuracy_ignore_case']:8.4f}  (without the {metrics['count'] - right['count']} "
                  f"test images whose labels are wrong: MISLABELLED)")


def main(argv=None):
    params, arguments = parse_args(argv, doc=__doc__, script=__file__, kind=BenchParameters, positional=True)
    datasets = arguments[0] if arguments else os.path.join("..", "shared", "datasets")
    if not os.path.isdir(os.path.join(datasets, "swust_cas")):
        fail(f"{datasets!r} has no swust_cas folder: pass the datasets folder as the first argument")
    params = make_parameters({"visdom": False, "epochs": 100000}, base=params)
    work = os.path.join("data", "real_bench")
    os.makedirs(work, exist_ok=True)
    ctx = types.SimpleNamespace(datasets=datasets, work=work, swust=swust_folder(datasets, work), budget=None)
    results, started = {}, time.perf_counter()
    for name in params.bench_real:
        ctx.budget = {"time_budget": minutes(params, name), "model_dir": f"runs/real_{name}"}
        print(f"\n=== {name} ({ctx.budget['time_budget']:g} min of training) ===", flush=True)
        results[name] = EXPERIMENTS[name](params, ctx)
    print_results(results, started)


if __name__ == "__main__":
    main()
