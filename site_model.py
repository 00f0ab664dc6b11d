"""One command from a folder of a site's unlabelled captchas to a model that reads them.

    python site_model.py my_site/ --charset=2345678abcdefgmnpwxy --captcha_length=4
    make site SITE=my_site CHARSET=2345678abcdefgmnpwxy LENGTH=4        # the same

Six steps, each a script of this project run as a user would run it, into site_dir (runs/site_<name>):
1. fit_style.py: styles fitted to the site's captchas, and the presets they started from (candidates/);
2. choose_style.py: a short trial model trained on each of site_candidates of them (twice as long where it
   has not learnt its style: choose_learnt); the two whose models read the site's captchas steadiest, mixed,
   are the style (style.json; style.png: the site's and theirs);
3. generate_captcha.py: site_train_count captchas in that style (generated/train, generated/test), a fitted
   style's with a share of their characters (site_font_variety) in other font families and widths, so the
   model learns each character's shape beyond the fit's fonts; a style given keeps its own fonts (where
   they are the site's, the variety costs; figures in docs/RESULTS.md);
4. main.py: a model trained on them for site_minutes, less the minutes the trials trained styles slow to learn
   longer (generated_model/);
5. main.py --unlabelled_dir: that model self-trained on the site's own captchas for site_self_minutes
   (model/): its confident reads of them join training (those its views agree on, and the surest fifth of
   its plain reads that read the same moved 3 pixels), and it normalises as they need (target_batch_norm);
6. userTest.py --least_sure: the site's captchas the model is least sure of, to label first
   (model/report/<name>_least_sure.tsv).

With --site_style_file=F (a style made by eye, or fitted before) steps 1 and 2 are skipped and F is the
style; with --site_candidates=1 the fit is the style, untried.

Ctrl-C stops it; the same command again goes on where it stopped (a finished step is not redone, a
training resumes from its last.pt).
"""
import json
import os
import sys
import time

from folder_settings import read_size_flags
from command_line import fail, parse_args, run_main
from steps import TRIALS_FILE, run_step, training

LEAST_SURE = 50  # captchas listed to label first
# README's recipe for training on from a model, with the batch-norm statistics of the site's captchas
# (AdaBN: measured on pku_elective, the generated model's read of the site went from 0.065 to 0.210 by it alone),
# and the surest fifth of the plain reads that read the same moved (pku_elective 0.561 -> 0.861 where the
# augmented views agreed on almost none; advrpg_digits 0.572 -> 0.589; docs/RESULTS.md)
SELF_TRAINING = ["--augment=on", "--lr=1e-3", "--warmup=0.1", "--target_batch_norm=true", "--pseudo_surest=0.2"]


def steps(folder, params, work):
    """[(title, minutes it should take, command, done)] of the six steps."""
    style, generated = params.site_style_file or os.path.join(work, "style.json"), os.path.join(work, "generated")
    first, second = os.path.join(work, "generated_model"), os.path.join(work, "model")
    fitted = os.path.join(work, "candidates", "fit.json") if params.site_candidates > 1 else style
    shape = [f"--charset={params.charset}", f"--captcha_length={params.captcha_length}", f"--seed={params.seed}"]
    folders = [f"--train_dir={generated}/train", f"--test_dir={generated}/test", f"--style_file={style}"]
    size = read_size_flags(folder)  # the size the site's captchas are read at, whatever the style draws
    given = bool(params.site_style_file)
    minutes = training_minutes(params, os.path.join(work, "trials"))
    return [
        ("fit styles to the site's captchas" if not given else "the style given (--site_style_file): no fit",
         params.fit_minutes,
         ["fit_style.py", folder, *shape, f"--fit_file={fitted}", f"--fit_minutes={params.fit_minutes:g}",
          f"--fit_images={params.fit_images}", f"--fit_rounds={params.fit_rounds}",
          f"--fit_candidates={params.site_candidates}",
          *([f"--fit_presets={','.join(params.fit_presets)}"] if params.fit_presets else [])],
         given or os.path.isfile(fitted)),
        ("try them: the styles whose trial models read the site steadiest" if fitted != style else
         "no trial (the style is given, or site_candidates=1)", params.site_candidates * (params.choose_minutes + 0.5),
         ["choose_style.py", folder, os.path.dirname(fitted), *shape,
          f"--choose_file={style}", f"--choose_dir={work}/trials", f"--choose_minutes={params.choose_minutes:g}",
          f"--choose_count={params.choose_count}", f"--choose_learnt={params.choose_learnt:g}",
          f"--choose_mix_margin={params.choose_mix_margin:g}",
          f"--choose_mix_share={params.choose_mix_share:g}"],
         fitted == style or os.path.isfile(style)),
        ("generate captchas in that style", params.site_train_count / 60000,
         ["generate_captcha.py", *folders, f"--train_count={params.site_train_count}", "--test_count=2000",
          *([f"--font_variety={params.site_font_variety:g}"] if params.site_font_variety and not given else []),
          f"--preview_file={work}/preview.png"], False),
        ("train on them", minutes,
         training(first, ["main.py", *folders, *size, "--augment=on", f"--time_budget={minutes:g}",
                          f"--model_dir={first}"]), False),
        ("self-train on the site's own captchas", params.site_self_minutes,
         training(second, ["main.py", *folders, *size, f"--unlabelled_dir={folder}", f"--init_from={first}/last.pt",
                           *SELF_TRAINING, f"--time_budget={params.site_self_minutes:g}", f"--model_dir={second}"]),
         False),
        ("list the captchas to label first", 0.2,
         ["userTest.py", f"--golden_dir={folder}", f"--least_sure={LEAST_SURE}", f"--model_dir={second}"], False),
    ]


def training_minutes(params, trials):
    """site_minutes less the minutes the trials (in folder `trials`) spent training styles slow to learn, so the
    command keeps its planned total; at least half of site_minutes."""
    path = os.path.join(trials, TRIALS_FILE)
    if not os.path.isfile(path):
        return params.site_minutes
    with open(path) as file:
        record = json.load(file)  # the minutes the trials were given then, whatever this command says now
    longer = sum(tried["minutes"] - record["choose_minutes"] for tried in record["trials"])
    return max(params.site_minutes - longer, params.site_minutes / 2)


def run_steps(folder, params, work):
    """Run the steps not done yet, saying each with the minutes left in all."""
    started = time.monotonic()
    for number in range(1, len(steps(folder, params, work)) + 1):
        plan = steps(folder, params, work)  # again each step: the training's minutes follow the trials'
        title, minutes, command, done = plan[number - 1]
        left = sum(step[1] for step in plan[number - 1:] if not step[3])
        if done:
            print(f"[{number}/{len(plan)}] {title}: done already", flush=True)
            continue
        print(f"\n[{number}/{len(plan)}] {title} (about {minutes:.0f} min; {left:.0f} min left in all): "
              f"python {' '.join(command)}", flush=True)
        run_step(number, title, command)
    print(f"\nsite model: {work}/model/last.pt in {(time.monotonic() - started) / 60:.0f} min; label first: "
          f"{work}/model/report/{os.path.basename(folder)}_least_sure.tsv", flush=True)


def main(argv=None):
    params, folders = parse_args(argv, doc=__doc__, positional=True, script=__file__)
    if len(folders) != 1 or not os.path.isdir(folders[0]):
        fail("give the folder of the site's captchas: python site_model.py my_site/ --charset=... --captcha_length=N")
    folder = os.path.normpath(folders[0])
    work = params.site_dir or os.path.join("runs", f"site_{os.path.basename(folder)}")
    os.makedirs(work, exist_ok=True)
    try:
        run_steps(folder, params, work)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to go on where it stopped", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run_main(main)
