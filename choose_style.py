"""Choose, of a few styles, the one whose captchas train a model that reads the site's own captchas best,
without labels.

    python choose_style.py my_site/ a.style.json b.style.json --charset=2345678abcdefgmnpwxy --captcha_length=4
    python choose_style.py my_site/ runs/site_my_site/candidates ...   # a folder: every style file in it

A style's distance (fit_style.py) says how alike its captchas look to the site's, but a lower distance does
not always train a model that reads the site better (docs/RESULTS.md). So each style is tried:
1. choose_count captchas generated in it, and a trial model trained on them for choose_minutes, and as long
   again when it then reads less than choose_learnt of its own test captchas (a style slow to learn);
2. that model's batch-norm statistics measured on the site's captchas (as self-training does), then its
   reads of them, as they are and moved SHIFT pixels to the right: the share read alike is the style's
   steadiness. A model that has learnt glyphs like the site's reads them the same either way; one that
   has not guesses, and its guesses change with the shift. The score is that share times the balance of
   the characters read (a model stuck on one answer is steady too) times the model's accuracy on its own
   captchas (one that learnt nothing guesses steadily too). On pku_elective these ranked five styles in
   the order of their accuracy on its labels, where the distance and the mean confidence did not.
The chosen style file draws each captcha in the best scoring style or in the runner-up when their scores are
close (choose_mix_margin) and the runner-up's is at least a share of the best (choose_mix_share; by default
half): a model of both read pku_elective 0.887 and captcha_images_v2 0.870 without labels where the best
alone read 0.074 and 0.750, their runners-up scoring 0.77 and 0.89 of the best; on swust_cas the runner-up,
the seed look the site does not draw, scored 0.23 of it. A PNG beside the file shows a row of the
site's captchas, then one of each style's, the best first; trials.json in the work folder what each trial
measured. Styles drawing the same settings are tried once; a rerun reuses the trials done (a trial stopped
part way resumes).
"""
import collections
import dataclasses
import functools
import json
import os
import time

import numpy as np
import torch

from dataset import decode_logits
from files import atomic_write
from fit_style import SHOWN, real_images
from folder_settings import read_size_flags
from grid import image_grid
from images import moved
from model import batch_logits, load_checkpoint, measure_batch_norms, model_from_checkpoint
from command_line import fail, parse_args, run_main
from parameters import ParameterError, make_parameters, read_style_file, saved_parameters
from predictor import Predictor, charset_of
from steps import TRIALS_FILE, run_step, training

SHIFT = 3  # pixels the site's captchas are moved for the second read
SITE_IMAGES = 2000  # most of the site's captchas read (a seeded draw)
TEST_COUNT = 500  # generated test captchas of each trial (its training reports its own accuracy on them)


def style_files(paths):
    """The style files named, a folder standing for the .json files in it (by name); those that draw the
    same settings as an earlier one left out."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(path, name) for name in sorted(os.listdir(path)) if name.endswith(".json")]
        elif os.path.isfile(path):
            files.append(path)
        else:
            fail(f"{path} is neither a style file nor a folder of them")
    kept, seen = [], []
    for path in files:
        settings = read_style_file(path)
        if settings not in seen:
            seen.append(settings)
            kept.append(path)
    return kept


def trial(number, style, work, folder, params):
    """Generate the style's captchas into work/ and train its trial model there, reading at the size the
    site's captchas are read at; (the model's path, its minutes of training). A model that reads less than
    choose_learnt of its own test captchas has not learnt the style yet, and its steadiness would be its
    guesses': it trains as long again, on a new schedule from its weights (a style slow to learn, like dotted
    digits at fp32, is judged once learnt: docs/RESULTS.md)."""
    shape = [f"--charset={params.charset}", f"--captcha_length={params.captcha_length}", f"--seed={params.seed}"]
    folders = [f"--train_dir={work}/train", f"--test_dir={work}/test", f"--style_file={style}"]
    title = f"trial of {style}"
    run_step(number, title, ["generate_captcha.py", *folders, *shape, f"--train_count={params.choose_count}",
                             f"--test_count={TEST_COUNT}", f"--preview_file={work}/preview.png"], quiet=True)
    first, longer = os.path.join(work, "model"), os.path.join(work, "longer")
    training_flags = [*folders, "--augment=on", f"--time_budget={params.choose_minutes:g}", *read_size_flags(folder)]
    run_step(number, title, training(first, ["main.py", *training_flags, f"--model_dir={first}"]), quiet=True)
    if own_accuracy(load_checkpoint(os.path.join(first, "last.pt"))) >= params.choose_learnt:
        return os.path.join(first, "last.pt"), params.choose_minutes
    # from its weights on a new one-cycle schedule: on advrpg_digits' preset a 2-minute model read its own test
    # 0.018; --extend's low tail took it to 0.096 in 2 more minutes, a new schedule to 0.682 (4 from scratch: 0.804)
    run_step(number, f"{title}, trained longer", training(longer, ["main.py", *training_flags, f"--model_dir={longer}",
                                                                  f"--init_from={first}/last.pt"]), quiet=True)
    return os.path.join(longer, "last.pt"), 2 * params.choose_minutes


def own_accuracy(checkpoint):
    """A trial model's accuracy on its own generated test captchas, as its training measured it last."""
    return checkpoint["progress"]["metrics"].get("accuracy_ignore_case", 0.0)


def balance(reads, classes):
    """How evenly the reads use the charset's `classes` characters: their entropy over its largest possible,
    1 when every character is read as often, 0 when one alone is (a model stuck on one answer reads it
    the same when moved, and would seem steady)."""
    counts = collections.Counter("".join(reads))
    shares = np.array([counts[name] for name in classes], np.float64) / max(1, sum(counts[name] for name in classes))
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum() / np.log(len(classes))) if len(classes) > 1 else 1.0


@dataclasses.dataclass
class Trial:
    """What one style's trial measured."""
    style: str  # its style file
    work: str  # its folder: generated captchas (train/, test/) and trial model (model/)
    alike: float  # share of the site's captchas read alike as they are and moved SHIFT pixels
    even: float  # balance() of those reads
    own: float  # the trial model's accuracy on its own generated test captchas
    minutes: float  # its minutes of training (choose_minutes, or twice that for a style slow to learn)

    @property
    def score(self):
        # times own: a trial model that has not learnt its own style reads any site steadily by guessing alike
        # both times (on a slow CPU, 400 steps in 2 minutes, the seed look's model read its own test 0.098 and
        # swust_cas 0.025 alike, above the looks that had learnt theirs: docs/RESULTS.md)
        return self.alike * self.even * self.own


def steadiness(style, work, model_path, minutes, folder, params):
    """The Trial of a trial model trained `minutes`, its batch norms measured on the site's captchas first."""
    checkpoint = load_checkpoint(model_path)
    model, trained = model_from_checkpoint(checkpoint), saved_parameters(checkpoint["params"])
    charset = charset_of(checkpoint["charset"], trained)
    images = real_images(folder, (trained.image_width, trained.image_height), SITE_IMAGES, params.seed)
    device = torch.device("cpu")
    measure_batch_norms(model, device, images, params.eval_batch_size)
    model.eval()
    predictor = Predictor(functools.partial(batch_logits, model, device, False), charset, params, trained, device)
    views = (images, moved(images, SHIFT))
    reads = [decode_logits(predictor.logits(view), charset, fold_case=True)[0] for view in views]
    alike = float(np.mean([first == second for first, second in zip(*reads)]))
    even = balance(reads[0], sorted(set(trained.charset.lower())))
    return Trial(style, work, alike, even, own_accuracy(checkpoint), minutes)


def choose(folder, styles, params):
    """The Trial of every style, the best score first."""
    root = params.choose_dir or os.path.join("runs", f"choose_{os.path.basename(folder)}")
    trials = []
    for number, style in enumerate(styles, 1):
        print(f"[{number}/{len(styles)}] {style}: {params.choose_count} captchas, {params.choose_minutes:g} min of "
              f"training", flush=True)
        work = os.path.join(root, f"trial{number}")
        tried = steadiness(style, work, *trial(number, style, work, folder, params), folder, params)
        print(f"  score {tried.score:.3f}: reads {tried.alike:.3f} of the site's captchas alike when moved {SHIFT} px, "
              f"their characters' balance {tried.even:.3f} (its own test: {tried.own:.3f} after {tried.minutes:g} min)",
              flush=True)
        trials.append(tried)
    trials.sort(key=lambda tried: -tried.score)
    record = {"choose_minutes": params.choose_minutes,
              "trials": [{**dataclasses.asdict(tried), "score": tried.score} for tried in trials]}
    atomic_write(os.path.join(root, TRIALS_FILE), json.dumps(record, indent=1))
    return trials


def mixed_in(trials, margin, share):
    """The runner-up Trial when its score is within `margin` of the best and at least `share` of it (trials can
    rank styles that close either way: a model of both hedges), else None."""
    if margin <= 0 or len(trials) < 2 or trials[0].score - trials[1].score > margin:
        return None
    return trials[1] if trials[1].score >= share * trials[0].score else None


def mix_of(best, second, target):
    """The settings of a style file (to be written at `target`) drawing each captcha in style file `best` or
    `second`, at best's size."""
    folder = os.path.dirname(os.path.abspath(target))
    return {**read_style_file(best), "style_mix": [os.path.relpath(os.path.abspath(path), folder)
                                                   for path in (best, second)]}


def side_by_side(folder, trials, size, path, seed):
    """A PNG: a row of the site's captchas, then a row of each style's, the best first."""
    rows = [real_images(folder, size, SHOWN, seed)] + [real_images(f"{tried.work}/train", size, SHOWN, seed)
                                                        for tried in trials]
    names = ["site"] + [f"{os.path.basename(tried.style)} {tried.score:.3f}" for tried in trials]
    image_grid([image for row in rows for image in row], [name for name, row in zip(names, rows) for _ in row],
               scale=2, columns=SHOWN).save(path)


def main(argv=None):
    params, paths = parse_args(argv, doc=__doc__, positional=True, script=__file__)
    if len(paths) < 2 or not os.path.isdir(paths[0]):
        fail("give the folder of the site's captchas, then the style files to try: "
             "python choose_style.py my_site/ a.json b.json --charset=... --captcha_length=N")
    if params.choose_count < 100 or params.choose_minutes <= 0:
        fail("choose_count must be at least 100 and choose_minutes above 0")
    folder = os.path.normpath(paths[0])
    styles = style_files(paths[1:])
    for style in styles:  # a style that cannot be drawn is said before any trial trains
        try:
            make_parameters({"style_file": style, "charset": params.charset, "captcha_length": params.captcha_length})
        except ParameterError as error:
            fail(f"{style}: {error}")
    started = time.monotonic()
    results = choose(folder, styles, params)
    best = results[0]
    target = params.choose_file or f"{folder}.style.json"
    mixed = mixed_in(results, params.choose_mix_margin, params.choose_mix_share)
    if mixed:
        print(f"mixing in {mixed.style}: its score is within {params.choose_mix_margin:g} of the best and at least "
              f"{params.choose_mix_share:g} of it")
        atomic_write(target, json.dumps(mix_of(best.style, mixed.style, target), indent=1, sort_keys=True))
    else:
        if len(results) > 1:
            print(f"not mixing in {results[1].style}: its score is not within {params.choose_mix_margin:g} of the "
                  f"best and at least {params.choose_mix_share:g} of it")
        if os.path.abspath(target) != os.path.abspath(best.style):
            atomic_write(target, json.dumps(read_style_file(best.style), indent=1, sort_keys=True))
    chosen = make_parameters({"style_file": target})
    picture = os.path.splitext(target)[0] + ".png"
    side_by_side(folder, results, (chosen.image_width, chosen.image_height), picture, params.seed)
    others = ", ".join(f"{os.path.basename(tried.style)} {tried.score:.3f}" for tried in results[1:])
    print(f"chose {best.style} in {(time.monotonic() - started) / 60:.1f} min: score {best.score:.3f} ("
          + (others or "no other style") + f"); style file {target}, side by side {picture}")


if __name__ == "__main__":
    run_main(main)
