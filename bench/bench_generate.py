"""Generation speed: this project's generator against the captcha package's stock ImageCaptcha.

    python bench/bench_generate.py                 # 3 rounds of 20,000 JPG files each, all cores
    python bench/bench_generate.py --train_count=50000 --workers=2

Both draw the stock class's look (this project's `seed_v1` style without render jitter: the captcha
package's drawing at 64x24) and write JPG files of the same size with the same number of processes into a
temporary folder, one after the other, ROUNDS times. Each run reports images/s over the whole run (process start-up and font
loading included) and the user and system CPU seconds of all its processes; the ratio is the median
of the rounds' ratios. One more run times the style given (`--style`, default `seed`, which draws more:
the 2019 renderer's layer rotations and two resamplings a glyph), for reference.
"""
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captcha.image import ImageCaptcha  # noqa: E402

from custom_captcha_image import random_label  # noqa: E402
from generate_captcha import generate_split  # noqa: E402
from command_line import parse_args  # noqa: E402
from parameters import make_parameters, worker_count  # noqa: E402

ROUNDS = 3
STOCK_LOOK = {"style": "seed_v1", "render_jitter": ()}  # what ImageCaptcha draws, drawn by this project
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


def write_stock(params, folder, count):
    os.makedirs(folder)
    tasks = [(folder, params.charset, params.length_range, list(range(i, min(i + 256, count))))
             for i in range(0, count, 256)]
    with multiprocessing.Pool(worker_count(params), initializer=_stock_init,
                              initargs=(params.image_width, params.image_height, params.font_sizes)) as pool:
        sum(pool.imap_unordered(_stock_chunk, tasks))


def cpu_seconds():
    """(user, system) CPU seconds of this process and of its ended worker processes so far."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + workers.ru_utime, own.ru_stime + workers.ru_stime


def timed(write, count):
    """{'rate': images/s, 'user': s, 'system': s} of write(), which writes `count` files."""
    user, system = cpu_seconds()
    start = time.perf_counter()
    write()
    wall = time.perf_counter() - start
    user_after, system_after = cpu_seconds()
    return {"rate": count / wall, "user": user_after - user, "system": system_after - system}


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    count = params.train_count if params.train_count != 200000 else 20000
    params.image_format = "jpg"
    look = make_parameters(STOCK_LOOK, base=params)
    rounds = []
    root = tempfile.mkdtemp(prefix="bench_generate_")
    try:
        for index in range(ROUNDS):
            ours = timed(lambda: generate_split(look, os.path.join(root, f"ours{index}"), "train", count), count)
            stock = timed(lambda: write_stock(params, os.path.join(root, f"stock{index}"), count), count)
            rounds.append((ours, stock))
        style = timed(lambda: generate_split(params, os.path.join(root, "style"), "train", count), count)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{count} JPG files of {params.image_width}x{params.image_height}, {worker_count(params)} processes, "
          f"{os.cpu_count()} CPU cores, {ROUNDS} rounds")
    for index, (ours, stock) in enumerate(rounds, 1):
        print(f"round {index}: this generator {ours['rate']:6.0f} images/s (user {ours['user']:5.1f} s, system "
              f"{ours['system']:5.1f} s), stock ImageCaptcha {stock['rate']:6.0f} images/s (user {stock['user']:5.1f} s, "
              f"system {stock['system']:5.1f} s): {ours['rate'] / stock['rate']:.2f}x")
    ratio = statistics.median(ours["rate"] / stock["rate"] for ours, stock in rounds)
    print(f"median ratio: {ratio:.2f}x the stock ImageCaptcha, drawing its look")
    print(f"the {params.style} style: {style['rate']:.0f} images/s (user {style['user']:.1f} s, system "
          f"{style['system']:.1f} s)")


if __name__ == "__main__":
    main()
