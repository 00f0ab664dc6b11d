"""Generation speed: this project's generator against the captcha package's stock ImageCaptcha.

    python bench/bench_generate.py                 # 20,000 JPG files each, all cores
    python bench/bench_generate.py --train_count=50000 --workers=2

Both write JPG files of the same size with the same number of processes into a temporary folder
and report images/s over the whole run (process start-up and font loading included).
"""
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captcha.image import ImageCaptcha  # noqa: E402

from custom_captcha_image import random_label  # noqa: E402
from generate_captcha import generate_split  # noqa: E402
from parameters import parse_args, worker_count  # noqa: E402

_stock = None


def _stock_init(width, height, font_sizes):
    global _stock
    _stock = ImageCaptcha(width=width, height=height, font_sizes=font_sizes)


def _stock_chunk(task):
    folder, charset, lengths, indices = task
    rng = random.Random(indices[0])
    for index in indices:
        label = random_label(rng, charset, lengths)
        _stock.write(label, os.path.join(folder, f"{label}_{index:06d}.jpg"), format="JPEG")
    return len(indices)


def bench_stock(params, folder, count):
    tasks = [(folder, params.charset, params.length_range, list(range(i, min(i + 256, count))))
             for i in range(0, count, 256)]
    start = time.perf_counter()
    with multiprocessing.Pool(worker_count(params), initializer=_stock_init,
                              initargs=(params.image_width, params.image_height, params.font_sizes)) as pool:
        written = sum(pool.imap_unordered(_stock_chunk, tasks))
    return written / (time.perf_counter() - start)


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    count = params.train_count if params.train_count != 200000 else 20000
    params.image_format = "jpg"
    root = tempfile.mkdtemp(prefix="bench_generate_")
    try:
        start = time.perf_counter()
        generate_split(params, os.path.join(root, "ours"), "train", count)
        ours = count / (time.perf_counter() - start)
        os.makedirs(os.path.join(root, "stock"))
        stock = bench_stock(params, os.path.join(root, "stock"), count)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{count} JPG files of {params.image_width}x{params.image_height}, {worker_count(params)} processes, "
          f"{os.cpu_count()} CPU cores")
    print(f"this generator        : {ours:8.0f} images/s")
    print(f"stock ImageCaptcha    : {stock:8.0f} images/s")
    print(f"ratio                 : {ours / stock:8.2f}x")


if __name__ == "__main__":
    main()
