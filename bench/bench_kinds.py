"""Captcha kinds users ask for: arithmetic answers and colour-targeted reading. Each kind's style is
generated (KINDS: train and test images), a model trains on it for a fixed time, and reads the test set.

    python bench/bench_kinds.py                              # both kinds, the minutes KINDS gives each
    python bench/bench_kinds.py --bench_kinds=arithmetic --time_budget=5

Prints, with the training minutes on this CPU: whole-captcha accuracy, per-character accuracy and, for
arithmetic, answer accuracy (the read's answer is the label's). Data goes to data/kinds/KIND, runs to
runs/kinds_KIND.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset import confusions, format_confusions, load_folder, Reading, score  # noqa: E402
from generate_captcha import generate_split  # noqa: E402
from model import load_checkpoint  # noqa: E402
from bench_settings import BenchParameters  # noqa: E402
from command_line import parse_args  # noqa: E402
from parameters import make_parameters  # noqa: E402
from predictor import load_model  # noqa: E402
from train import train  # noqa: E402

# kind: (settings, train images, test images, minutes of training)
KINDS = {
    "arithmetic": ({"style": "arithmetic"}, 100000, 2000, 12),
    "color_target": ({"style": "color_target"}, 100000, 2000, 15),
}


def run(params, kind):
    """Generate the kind's folders (once), train for its minutes, read its test folder: the metrics."""
    settings, train_count, test_count, minutes = KINDS[kind]
    folders = {"train_dir": f"data/kinds/{kind}/train", "test_dir": f"data/kinds/{kind}/test"}
    style = make_parameters({**settings, **folders}, base=params)
    generate_split(style, style.train_dir, "train", train_count)
    generate_split(style, style.test_dir, "test", test_count)
    run_params = make_parameters({**settings, **folders, "model_dir": f"runs/kinds_{kind}", "epochs": 1000,
                                  "time_budget": params.time_budget or minutes}, base=params)
    train(run_params)
    last = os.path.join(run_params.model_dir, "last.pt")
    predictor = load_model(last, run_params)
    test = load_folder(run_params.test_dir, Reading.of(predictor.params), quiet=True)
    metrics, predictions = score(predictor.logits(test.images), test.labels, predictor.charset, predictor.grammar)
    metrics["confusions"] = confusions(predictions, test.labels)
    metrics["minutes"] = load_checkpoint(last)["progress"]["seconds"] / 60
    metrics["count"], metrics["head"] = len(test), predictor.trained.reader_head
    return metrics


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__, kind=BenchParameters)
    params = make_parameters({"visdom": False}, base=params)
    results = {kind: run(params, kind) for kind in params.bench_kinds}
    print(f"\ncaptcha kinds, {os.cpu_count()} CPU cores")
    print(f"{'kind':14s} {'head':9s} {'test':>5s} {'train min':>9s} {'accuracy':>9s} {'per char':>9s} {'answers':>8s}")
    for kind, m in results.items():
        answers = f"{m['answer_accuracy']:8.4f}" if "answer_accuracy" in m else f"{'-':>8s}"
        print(f"{kind:14s} {m['head']:9s} {m['count']:5d} {m['minutes']:9.1f} {m['accuracy']:9.4f} "
              f"{m['char_accuracy']:9.4f} {answers}")
    for kind, m in results.items():
        print(f"confusions of {kind} (truth->prediction): {format_confusions(m['confusions'])}")


if __name__ == "__main__":
    main()
