"""Single-image prediction latency of a checkpoint, in-process (no HTTP).

    python bench/bench_predict.py                               # model_dir/best.pt, predict_threads threads
    python bench/bench_predict.py --checkpoint=runs/big/best.pt --bench_rounds=5000 --predict_threads=2
    python bench/bench_predict.py --backend=onnx                # onnxruntime on best.onnx (python export_onnx.py)

Times bench_rounds calls of each: the model alone on one preprocessed uint8 image (Predictor.logits()
of the chosen backend), predict() from a PIL image
(preprocess + model + decoding), and predict() from JPEG bytes (the API's path: decode as well);
prints p50 and p95. Also the images/s of predict() on a batch of eval_batch_size images. The image is
a captcha drawn by this project's generator in the checkpoint's style.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from custom_captcha_image import make_generator  # noqa: E402
from generate_captcha import encode, make_sample  # noqa: E402
from images import preprocess  # noqa: E402
from bench_settings import BenchParameters  # noqa: E402
from command_line import parse_args  # noqa: E402
from predictor import load_model_or_exit, predict, use_predict_threads  # noqa: E402

WARM_UP = 50  # untimed calls before each measurement: caches, allocator and branch predictors settle


def sample_captcha(trained, index=0):
    """(label, PIL image, file bytes) of a captcha in the style a checkpoint was trained on, encoded as
    generate_captcha.py writes it (a transparent style's: a PNG with alpha)."""
    label, image = make_sample(make_generator(trained), trained, "bench", index)
    return label, image, encode(image, trained)


def percentiles(seconds):
    milliseconds = np.asarray(seconds) * 1000
    return np.percentile(milliseconds, 50), np.percentile(milliseconds, 95)


def time_calls(function, rounds, warm_up=WARM_UP):
    for _ in range(warm_up):
        function()
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        spent.append(time.perf_counter() - start)
    return spent


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__, kind=BenchParameters)
    predictor = load_model_or_exit(params)
    use_predict_threads(params)
    label, image, jpeg = sample_captcha(predictor.trained)
    array = np.stack([preprocess(image, predictor.width, predictor.height)])

    def bare_model():
        predictor.logits(array)

    rounds = max(1, params.bench_rounds)
    print(f"checkpoint {predictor.checkpoint}: {predictor.parameters / 1e6:.2f}M parameters, "
          f"{predictor.width}x{predictor.height} input, backend {params.backend}, device {predictor.device}, "
          f"{params.predict_threads} thread(s), {os.cpu_count()} CPU cores; {rounds} calls each")
    for name, function in (("model only, 1 image", bare_model),
                           ("predict(), PIL image", lambda: predict(predictor, [image])),
                           ("predict(), JPEG bytes", lambda: predict(predictor, [jpeg]))):
        p50, p95 = percentiles(time_calls(function, rounds))
        print(f"{name:24s}: p50 {p50:7.3f} ms   p95 {p95:7.3f} ms")
    batch = [image] * params.eval_batch_size
    spent = time_calls(lambda: predict(predictor, batch), max(3, rounds // 200), warm_up=1)
    print(f"predict(), batch of {params.eval_batch_size:4d}: {params.eval_batch_size / np.median(spent):7.0f} images/s")
    print(f"reads the sample {label!r} as {predict(predictor, [jpeg])[0]['text']!r}")


if __name__ == "__main__":
    main()
