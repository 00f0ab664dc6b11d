"""The bench/ scripts' own settings: a group beside the project's (parameters.py), which no other script takes.

A bench script reads its command line with them: parse_args(argv, script=__file__, kind=BenchParameters) gives
a BenchParameters, the project's settings and these in one object, checked and listed by --help as every
other setting is.
"""
from dataclasses import dataclass

from head_names import HEAD_FORMS
from parameters import Parameters
from setting import setting

# bench/bench_real.py's experiments, in the order a plain run takes them.
BENCH_REAL = ("sim_to_real", "swust_self", "original_style", "v2_sim", "v2_self", "swust_fine_tune_200",
              "swust_self_200", "fine_tune", "swust", "swust_pretrained", "captcha_images_v2", "captcha_default",
              "swust_ctc", "captcha_images_v2_ctc", "stock_ctc", "own_data", "site_zero_label")


@dataclass
class BenchmarkSettings:
    """The bench/ scripts."""
    GROUP = "benchmarks"
    bench_style_count: int = setting(1000,
        "bench/bench_style.py: captchas generated, and real images read (at most), for the statistics",
        low=1, high=10 ** 9)
    bench_presets: tuple[str, ...] = setting(("default", "original"), "model presets bench/bench_train.py compares",
        choices=("default", "original"))
    bench_kinds: tuple[str, ...] = setting(("arithmetic", "color_target"),
        "captcha kinds bench/bench_kinds.py trains and reads", choices=("arithmetic", "color_target"))
    bench_heads: tuple[str, ...] = setting(("positions",),
        "heads bench/bench_train.py compares on the default preset: positions, ctc", choices=lambda: tuple(HEAD_FORMS))
    bench_real: tuple[str, ...] = setting(BENCH_REAL, "bench/bench_real.py experiments, in order", choices=BENCH_REAL)
    requests: int = setting(20000, "bench/bench_api.py: requests sent in the throughput run", low=1, high=10 ** 9)
    clients: int = setting(8,
        "bench/bench_api.py: concurrent clients in the throughput run (the abusive clients with --abuse_run)",
        low=1, high=10 ** 5)
    abuse_run: bool = setting(False,
        "bench/bench_api.py: the abuse run instead (clients sending huge-pixel batches while one client reads "
        "captchas)")
    abuse_seconds: float = setting(30.0,
        "bench/bench_api.py --abuse_run: how long the abusive clients send, seconds", above=0, high=10 ** 6)
    abuse_images: int = setting(64,
        "bench/bench_api.py --abuse_run: blank 2000x2000 lossless WebP images in each abusive request (64: 256 M "
        "pixels; 2: within max_request_pixels)", low=1, high=10 ** 9)
    slow_run: bool = setting(False,
        "bench/bench_api.py: the slow-client run instead (slow_sockets sockets sending a header byte now and then, "
        "stalled_uploads uploads that stop part way, while `clients` ordinary clients read captchas)")
    slow_sockets: int = setting(500, "bench/bench_api.py --slow_run: slow-loris sockets held open", low=0, high=5000)
    stalled_uploads: int = setting(20,
        "bench/bench_api.py --slow_run: uploads that declare a body and stop sending it", low=0, high=5000)
    slow_seconds: float = setting(30.0,
        "bench/bench_api.py --slow_run: how long the ordinary clients read under the slow ones, seconds", above=0,
        high=10 ** 6)
    bench_rounds: int = setting(2000,
        "bench scripts: timed single-image calls per latency measurement", low=1, high=10 ** 9)
    bench_sites: tuple[str, ...] = setting((),
        "bench/bench_real.py site_zero_label: the sites to run (empty = all of its SITES)")


@dataclass
class BenchParameters(BenchmarkSettings, Parameters):
    """Every setting of the project and the benchmarks' own: what a bench script's command line gives."""
