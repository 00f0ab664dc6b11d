"""Small-folder defaults: README's own-data command with one setting changed at a time, and on generated
folders of 500 to 20,000 images.

    python bench/bench_sweep.py ../shared/datasets                    # ~45 min on 2 cores
    python bench/bench_sweep.py ../shared/datasets --time_budget=1    # every run 1 minute (smoke run)

Part one trains each SWEEP_FOLDERS folder (seeded 80/20 split) once with the defaults and once with each
VARIANTS change; part two draws GENERATED_SIZES folders in GENERATED_STYLE (the first N of one 20,000-image
draw, so each larger folder holds the smaller ones) and reads one generated test set of 2,000. Every run
trains `--time_budget` minutes (default MINUTES) and is scored with its last checkpoint. Runs go to
runs/sweep_*; generated data to data/sweep/.
"""
import os
import shutil
import subprocess
import sys
import time

from bench_real import ROOT, link_folder, own_data_run, readme_flags
from bench_settings import BenchParameters
from command_line import fail, parse_args

MINUTES = 5  # each run's budget: half README's, enough to order the settings (the curves flatten by minute 3)
SWEEP_FOLDERS = ("swust_cas/20191218",)  # the real folder furthest under 0.98 with the defaults
VARIANTS = (("--lr=6e-3",), ("--weight_decay=0.2",), ("--batch_size=32",))
GENERATED_STYLE = "kaptcha"
GENERATED_SIZES = (500, 2000, 5000, 20000)
GENERATED_TEST = 2000
SETTINGS_FILE = ".generator.json"


def generated_folders(work):
    """{N: a folder of the first N images of one draw} and the test folder, drawn once."""
    whole, test = os.path.join(work, "train"), os.path.join(work, "test")
    subprocess.run([sys.executable, os.path.join(ROOT, "generate_captcha.py"), f"--style={GENERATED_STYLE}",
                    f"--train_dir={whole}", f"--test_dir={test}", f"--train_count={max(GENERATED_SIZES)}",
                    f"--test_count={GENERATED_TEST}", f"--preview_file={os.path.join(work, 'preview.png')}"],
                   check=True)
    names = sorted(name for name in os.listdir(whole) if not name.startswith("."))
    folders = {}
    for count in GENERATED_SIZES:
        folder = link_folder(os.path.join(work, f"train_{count}"), [os.path.join(whole, name) for name in names[:count]])
        shutil.copy(os.path.join(whole, SETTINGS_FILE), folder)
        folders[count] = folder
    return folders, test


def summary_line(label, metrics):
    return (f"{label:44s} {metrics['count']:6d} {metrics['accuracy']:9.4f} {metrics['accuracy_ignore_case']:8.4f} "
            f"{metrics['minutes']:6.1f}")


def main(argv=None):
    params, arguments = parse_args(argv, doc=__doc__, script=__file__, kind=BenchParameters, positional=True)
    datasets = arguments[0] if arguments else os.path.join("..", "shared", "datasets")
    if not all(os.path.isdir(os.path.join(datasets, name)) for name in SWEEP_FOLDERS):
        fail(f"{datasets!r} lacks one of {', '.join(SWEEP_FOLDERS)}: pass the datasets folder as the first argument")
    minutes, started, lines = params.time_budget or MINUTES, time.perf_counter(), []
    for name in SWEEP_FOLDERS:
        for flags in ((),) + VARIANTS:
            model_dir = f"runs/sweep_{name.replace('/', '_')}{''.join(flags).replace('--', '_')}"
            metrics = own_data_run(readme_flags(os.path.join(datasets, name)), model_dir, minutes, flags)
            lines.append(summary_line(f"{name} {' '.join(flags) or '(defaults)'}", metrics))
    folders, test = generated_folders(os.path.join("data", "sweep"))
    for count, folder in folders.items():
        metrics = own_data_run((f"--train_dir={folder}", f"--test_dir={test}"), f"runs/sweep_{GENERATED_STYLE}_{count}",
                               minutes)
        lines.append(summary_line(f"{GENERATED_STYLE}, {count} generated images", metrics))
    print(f"\nsmall-folder sweep, {os.cpu_count()} CPU cores, {minutes:g} min a run, "
          f"{(time.perf_counter() - started) / 60:.0f} min in all")
    print(f"{'run':44s} {'test':>6s} {'accuracy':>9s} {'no case':>8s} {'min':>6s}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
