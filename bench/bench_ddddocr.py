"""Our exported model inside ddddocr, against ddddocr's own zero-shot model, on a labelled folder.

    make bench-ddddocr                 # installs ddddocr into .venv-ddddocr and runs this on swust
    .venv-ddddocr/bin/python bench/bench_ddddocr.py runs/real_sim_to_real/last.ddddocr.onnx ../shared/datasets/swust_cas/20191218

Runs in an environment with ddddocr installed (it is not a dependency of this project; this script
imports neither torch nor the project's modules). The .ddddocr.onnx and .ddddocr.json files come from
`python export_onnx.py`. Labels are the file-name text before the first `_` (or the stem); accuracy
is case-insensitive, as for sites that ignore case. Prints both accuracies and ms per image.
"""
import os
import sys
import time


def label_of(name):
    stem = os.path.splitext(name)[0]
    return stem.split("_", 1)[0]


def accuracy(ocr, folder, names):
    correct, start = 0, time.perf_counter()
    for name in names:
        with open(os.path.join(folder, name), "rb") as handle:
            text = ocr.classification(handle.read())
        correct += text.lower() == label_of(name).lower()
    return correct / len(names), (time.perf_counter() - start) * 1000 / len(names)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].endswith(".ddddocr.onnx"):
        print(__doc__.strip(), file=sys.stderr)
        raise SystemExit(2)
    import ddddocr
    model, folders = argv[0], argv[1:]
    charsets = model[:-len(".onnx")] + ".json"
    ours = ddddocr.DdddOcr(det=False, ocr=False, show_ad=False, import_onnx_path=model, charsets_path=charsets)
    stock = ddddocr.DdddOcr(show_ad=False)
    print(f"ddddocr {getattr(ddddocr, '__version__', '?')}, our model {model}")
    print(f"{'folder':40s} {'images':>7s} {'ours in ddddocr':>16s} {'ddddocr zero-shot':>18s}")
    for folder in folders:
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        ours_accuracy, ours_ms = accuracy(ours, folder, names)
        stock_accuracy, stock_ms = accuracy(stock, folder, names)
        print(f"{folder[-40:]:40s} {len(names):7d} {ours_accuracy:9.4f} {ours_ms:4.1f}ms "
              f"{stock_accuracy:11.4f} {stock_ms:4.1f}ms", flush=True)


if __name__ == "__main__":
    main()
