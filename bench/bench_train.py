"""Training benchmark: the default model against the original architecture (and the positions heads
against the ctc head), same data, same clock.

    python generate_captcha.py                       # 200,000 train + 10,000 test (once)
    python bench/bench_train.py --time_budget=20     # 20 minutes of training for each model
    python bench/bench_train.py --time_budget=3 --bench_presets=default
    python bench/bench_train.py --time_budget=20 --bench_presets=default --bench_heads=positions,ctc

Each model trains on train_dir for `time_budget` minutes (generation and decoding excluded) with the
schedule fitted to that budget, then is evaluated on all of test_dir. Prints training images/s,
whole-captcha accuracy (case-sensitive and case-insensitive), per-character accuracy, parameter
count, checkpoint size, the 15 most frequent character confusions, and training speed as a share of the
machine's peak (GFLOP per training image x images/s, against the best of a matmul and a convolution in
that precision, timed then).
Runs go to runs/bench_<preset> (runs/bench_<preset>_ctc for the ctc head).
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset import confusions, format_confusions, load_folder, Reading, score  # noqa: E402
from model import file_size, load_checkpoint, model_from_checkpoint, speed_line, training_gflop, use_bf16  # noqa: E402
from bench_settings import BenchParameters  # noqa: E402
from command_line import parse_args  # noqa: E402
from parameters import make_parameters, saved_parameters  # noqa: E402
from predictor import load_model  # noqa: E402
from train import train  # noqa: E402


def run(params, preset, head):
    name = preset if head == "positions" else f"{preset}_{head}"
    run_params = make_parameters({"model_preset": preset, "head": head, "model_dir": f"runs/bench_{name}",
                                  "epochs": 1000}, base=params)
    start = time.perf_counter()
    train(run_params)
    wall = time.perf_counter() - start
    last = os.path.join(run_params.model_dir, "last.pt")
    checkpoint = load_checkpoint(last)
    predictor = load_model(last, run_params)
    test = load_folder(run_params.test_dir, Reading.of(predictor.params), quiet=True)
    metrics, predictions = score(predictor.logits(test.images), test.labels, predictor.charset)
    progress = checkpoint["progress"]
    model = model_from_checkpoint(checkpoint)
    saved = checkpoint["params"]
    return {"preset": name, "speed": progress["step"] * saved["batch_size"] / progress["seconds"],
            "bf16": use_bf16(saved_parameters(saved).amp, torch.device("cpu")),
            "gflop": training_gflop(model), "minutes": progress["seconds"] / 60, "wall": wall / 60,
            "parameters": predictor.parameters,
            "bytes": os.path.getsize(last), "weights": file_size(model),
            "confusions": confusions(predictions, test.labels), "test_count": len(test), **metrics}


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__, kind=BenchParameters)
    if not params.time_budget:
        params.time_budget = 20.0
    # The original preset reads with positions heads only (its global pooling leaves no columns for CTC).
    results = [run(params, preset, head) for preset in params.bench_presets for head in params.bench_heads
               if preset == "default" or head == "positions"]
    print(f"\n{params.time_budget:g} min of training on {params.train_dir}, tested on {results[0]['test_count']} "
          f"captchas of {params.test_dir}, {os.cpu_count()} CPU cores")
    print(f"{'model':12s} {'params':>8s} {'weights':>9s} {'img/s':>7s} {'acc':>7s} {'acc (no case)':>14s} {'per char':>9s}")
    for r in results:
        print(f"{r['preset']:12s} {r['parameters'] / 1e6:7.2f}M {r['weights'] / 1e6:7.1f}MB {r['speed']:7.0f} "
              f"{r['accuracy']:7.4f} {r['accuracy_ignore_case']:14.4f} {r['char_accuracy']:9.4f}")
    for r in results:  # the machine's peak measured now, after training, with nothing else running
        print(f"{r['preset']} training speed: {speed_line(r['speed'], r['gflop'], r['bf16'])}")
    for r in results:
        print(f"confusions of {r['preset']} (truth->prediction): {format_confusions(r['confusions'])}")


if __name__ == "__main__":
    main()
