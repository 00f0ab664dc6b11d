"""Live training dashboard on visdom, and a visdom server that works without internet access.

Training builds one `Dashboard(params)` and calls plot_loss, plot_lr, plot_accuracy and
show_predictions on it. With --visdom=false every call does nothing; when no server answers, or the
server goes away mid-run, the dashboard says so in one line and then does nothing, so training never
waits for or fails on it.

Start the server (installs its page assets the first time, then serves in the foreground):

    make visdom                                  # same as: .venv/bin/python Visdom.py
    .venv/bin/python Visdom.py --visdom_port=8098
    then open http://localhost:8097/env/captcha

`python -m visdom.server` downloads its scripts, styles and fonts from CDNs on first start and dies on
a machine without internet access. install_assets() takes the same files from the npm registry
(`npm pack`, tarballs kept in .visdom_assets/), copies each to the path visdom expects in its static
folder and writes visdom's own "already built" marker, so the server never goes to the network.
"""
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import visdom
from PIL import Image, ImageDraw, ImageFont
from visdom.utils.shared_utils import get_visdom_path

from files import atomic_write
from parameters import fail, parse_args

ROOT = Path(__file__).resolve().parent
ASSET_CACHE = ROOT / ".visdom_assets"

# What visdom 0.2.4's server/build.py downloads, as (npm package, file in the package, path under
# visdom's static folder). The destination names are the ones build.py writes, odd ones included
# ("fonts/classnames", the svg named with its "#..." fragment): build.py downloads every file that is
# missing, so each must exist. The versions are the ones it asks the CDNs for; d3js.org's "v3" and
# "v1" files are the last releases of those lines, cdn.plot.ly's plotly-2.11.1 is plotly.js-dist-min.
_MATHJAX = "js/mathjax/2.7.5"
_BOOTSTRAP = ("bootstrap", "3.3.7")
ASSETS = [
    ("jquery", "3.1.1", "dist/jquery.min.js", "js/jquery.min.js"),
    (*_BOOTSTRAP, "dist/js/bootstrap.min.js", "js/bootstrap.min.js"),
    ("react", "16.2.0", "umd/react.production.min.js", "js/react-react.min.js"),
    ("react-dom", "16.2.0", "umd/react-dom.production.min.js", "js/react-dom.min.js"),
    ("react-modal", "3.1.10", "dist/react-modal.min.js", "js/react-modal.min.js"),
    ("plotly.js-dist-min", "2.11.1", "plotly.min.js", "js/plotly-plotly.min.js"),
    ("sjcl", "1.0.7", "sjcl.js", "js/sjcl.js"),
    ("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js.map", "js/layout-bin-packer.js.map"),
    ("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js", "js/layout_bin_packer.js"),
    ("d3", "3.5.17", "d3.min.js", "js/d3.v3.min.js"),
    ("d3-selection-multi", "1.0.1", "build/d3-selection-multi.js", "js/d3-selection-multi.v1.js"),
    ("save-svg-as-png", "1.4.17", "lib/saveSvgAsPng.js", "js/saveSvgAsPng.js"),
    ("react-resizable", "1.4.6", "css/styles.css", "css/react-resizable-styles.css"),
    ("react-grid-layout", "0.16.3", "css/styles.css", "css/react-grid-layout-styles.css"),
    (*_BOOTSTRAP, "dist/css/bootstrap.min.css", "css/bootstrap.min.css"),
    ("classnames", "2.2.5", "index.js", "fonts/classnames"),
    (*_BOOTSTRAP, "dist/fonts/glyphicons-halflings-regular.eot", "fonts/glyphicons-halflings-regular.eot"),
    (*_BOOTSTRAP, "dist/fonts/glyphicons-halflings-regular.woff2", "fonts/glyphicons-halflings-regular.woff2"),
    (*_BOOTSTRAP, "dist/fonts/glyphicons-halflings-regular.woff", "fonts/glyphicons-halflings-regular.woff"),
    (*_BOOTSTRAP, "dist/fonts/glyphicons-halflings-regular.ttf", "fonts/glyphicons-halflings-regular.ttf"),
    (*_BOOTSTRAP, "dist/fonts/glyphicons-halflings-regular.svg",
     "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular"),
] + [
    ("mathjax", "2.7.5", name, f"{_MATHJAX}/{name}")
    for name in (
        "MathJax.js",
        "config/Safe.js",
        "config/TeX-AMS-MML_HTMLorMML.js",
        "extensions/Safe.js",
        "jax/output/SVG/config.js",
        "jax/output/SVG/jax.js",
        "jax/output/SVG/fonts/TeX/fontdata.js",
        "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
    )
]
# build.py skips its downloads only when this file holds visdom's version.
BUILT_MARKER = "version.built"

WIN_LOSS = "captcha_loss"
WIN_LR = "captcha_lr"
WIN_ACCURACY = "captcha_accuracy"
WIN_PREDICTIONS = "captcha_predictions"


def static_dir():
    return Path(get_visdom_path("static"))


def missing_assets(static=None):
    """Static-folder paths the server would still try to download (empty once installed)."""
    static = Path(static) if static is not None else static_dir()
    missing = [dest for _, _, _, dest in ASSETS if not (static / dest).is_file()]
    marker = static / BUILT_MARKER
    if not marker.is_file() or marker.read_text().strip() != visdom.__version__:
        missing.append(BUILT_MARKER)
    return missing


def _tarball_name(package, version):
    # npm pack's file name: a scope's "@" dropped and its "/" turned into "-".
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def _fetch_tarballs(cache):
    """Every package of ASSETS as an npm tarball in `cache`, fetched by `npm pack` when absent."""
    cache.mkdir(parents=True, exist_ok=True)
    specs = sorted({(package, version) for package, version, _, _ in ASSETS})
    wanted = [f"{package}@{version}" for package, version in specs
              if not (cache / _tarball_name(package, version)).is_file()]
    if wanted:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to fetch visdom's page assets from the npm registry "
                               "(install Node.js, e.g. `apt-get install npm`)")
        print(f"visdom: fetching {len(wanted)} packages from the npm registry into {cache}")
        result = subprocess.run([npm, "pack", "--json", "--pack-destination", str(cache), *wanted],
                                cwd=cache, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"`npm pack` failed (exit {result.returncode}): "
                               f"{result.stderr.strip()[-2000:]}")
    return {spec: cache / _tarball_name(*spec) for spec in specs}


def _read_members(tarball, inner_paths):
    """{inner path: bytes} from an npm tarball, whatever its top folder is called ('package/' in most)."""
    found = {}
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                inner = member.name.split("/", 1)[-1]
                if member.isfile() and inner in inner_paths:
                    found[inner] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error) as error:
        # A download cut short would otherwise fail every later install the same way.
        tarball.unlink()
        raise RuntimeError(f"{tarball} was damaged ({error}) and is removed; run again to fetch it") from None
    absent = set(inner_paths) - set(found)
    if absent:
        raise RuntimeError(f"{tarball.name} has no {', '.join(sorted(absent))}")
    return found


def install_assets(static=None, cache=None):
    """Put every file visdom's server would download into its static folder; returns that folder.

    Does nothing when all files and the marker are already there, so it is cheap to call before
    every server start.
    """
    static = Path(static) if static is not None else static_dir()
    # index.html links an optional user stylesheet beside the static folder; without one the server
    # logs an ERROR at every page load, which reads like a failure.
    user_style = static.parent / "user" / "style.css"
    if not user_style.exists():
        user_style.parent.mkdir(parents=True, exist_ok=True)
        user_style.write_text("/* custom styles for the visdom page (empty on purpose) */\n")
    if not missing_assets(static):
        return static
    tarballs = _fetch_tarballs(Path(cache) if cache is not None else ASSET_CACHE)
    for spec, tarball in tarballs.items():
        wanted = {inner: dest for package, version, inner, dest in ASSETS if (package, version) == spec}
        for inner, content in _read_members(tarball, wanted).items():
            # Atomically, so a concurrent server start never reads half a file.
            atomic_write(static / wanted[inner], content)
    # The marker goes last: an interrupted install leaves it absent and is redone next time.
    (static / BUILT_MARKER).write_text(visdom.__version__)
    print(f"visdom: installed {len(ASSETS)} page assets into {static}")
    return static


def _http_ok(url, timeout=1.0):
    # No proxies: the dashboard server is local, and a proxy from the environment would miss it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(port, host="127.0.0.1", env_path=None, log=None, timeout=60.0):
    """Start `python -m visdom.server` on `port` and return its Popen once GET / answers 200.

    host: a loopback name binds to 127.0.0.1 only; any other value listens on every interface.
    env_path: folder of saved environments (visdom's default ~/.visdom/ when None).
    log: open file for the server's output (inherits ours when None).
    """
    install_assets()
    loopback = host in ("127.0.0.1", "localhost", "::1")
    command = [sys.executable, "-m", "visdom.server", "-port", str(port),
               # Double dash: visdom spells this one flag "--hostname"; "-hostname" would parse as -h.
               "--hostname", host, "-logging_level", "WARNING"]
    if loopback:
        command.append("-bind_local")
    if env_path is not None:
        command += ["-env_path", f"{os.path.join(str(env_path), '')}"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT if log else None)
    deadline = time.monotonic() + timeout
    probe = f"http://{'127.0.0.1' if loopback else 'localhost'}:{port}/"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the visdom server exited with status {process.returncode} "
                               f"before answering on port {port}")
        if _http_ok(probe):
            return process
        time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"the visdom server did not answer on port {port} within {timeout:.0f} s")


def stop_server(process):
    """Stop a server from start_server (terminate, then kill if it lingers)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Client(visdom.Visdom):
    """visdom.Visdom whose requests give up after a few seconds instead of never.

    visdom documents _handle_post as the hook to override; without a timeout a server that hangs
    would stall the training loop.
    """

    def __init__(self, *args, timeout=(2.0, 10.0), **kwargs):
        self._timeout = timeout
        super().__init__(*args, **kwargs)

    def _handle_post(self, url, data=None):
        response = self.session.post(url, data=data if data is not None else {}, timeout=self._timeout)
        return response.text

    def win_exists(self, win, env=None):
        # visdom's own version prints a line and returns None when the server is gone; letting the
        # ConnectionError through lets Dashboard report the loss once, in its own words.
        return {"true": True, "false": False}.get(self._win_exists_wrap(win, env))


class Dashboard:
    """Training plots in one visdom environment; every method is a no-op when `enabled` is False."""

    def __init__(self, params, connect_timeout=2.0):
        self.enabled = False
        self.env = params.visdom_env
        server = params.visdom_server.rstrip("/")
        # visdom's client accepts a bare host name; the reachability probe needs the scheme.
        server = server if "://" in server else f"http://{server}"
        self.url = f"{server}:{params.visdom_port}"
        self._vis = None
        # Windows this run has drawn, with their legends: the first draw of a run replaces what an
        # earlier run left in the window, later ones append, and a new legend redraws.
        self._legends = {}
        if not params.visdom:
            return
        if not _http_ok(f"{self.url}/", timeout=connect_timeout):
            print(f"visdom: no server at {self.url}; training goes on without the dashboard "
                  f"(start one with `make visdom`)")
            return
        # The client warns that it has no incoming socket (events from the page are not needed here)
        # and that it opens a session: expected, and noise in the training output.
        logging.getLogger("visdom").setLevel(logging.ERROR)
        try:
            # visdom 0.2.4 calls the deprecated logger.warn here; where warnings are errors (pytest
            # -W error) that would refuse a working server.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self._vis = _Client(server=server, port=params.visdom_port, env=self.env,
                                    raise_exceptions=True, use_incoming_socket=False,
                                    timeout=(connect_timeout, 10.0))
        except Exception as error:
            print(f"visdom: cannot use the server at {self.url} ({error}); "
                  f"training goes on without the dashboard")
            return
        self.enabled = True

    def _safely(self, send):
        """Run one send; on any failure say so once and switch the dashboard off."""
        if not self.enabled:
            return None
        try:
            return send()
        except Exception as error:
            self.enabled = False
            print(f"visdom: dashboard stopped ({type(error).__name__}: {error}); "
                  f"training goes on without it")
            return None

    def _line(self, win, step, values, legend, title, ylabel):
        def send():
            ys = np.array([[float(value) for value in values]])
            # JSON has no NaN or infinity: one such point would break the page's plot, so it is left out.
            if not np.isfinite(ys).all():
                return
            opts = {"title": title, "xlabel": "step", "ylabel": ylabel, "legend": list(legend),
                    "showlegend": len(legend) > 1}
            append = self._legends.get(win) == legend
            self._vis.line(Y=ys, X=np.full_like(ys, float(step)), win=win, env=self.env, opts=opts,
                           update="append" if append else None)
            self._legends[win] = legend

        self._safely(send)

    def plot_loss(self, step, loss):
        """Append one point to the training-loss curve."""
        if self.enabled:
            self._line(WIN_LOSS, step, [loss], ("train loss",), "training loss", "loss")

    def plot_lr(self, step, lr):
        """Append one point to the learning-rate curve."""
        if self.enabled:
            self._line(WIN_LR, step, [lr], ("learning rate",), "learning rate", "lr")

    def plot_accuracy(self, step, case_sensitive, case_insensitive, per_char=None):
        """Append one point to each accuracy curve (fractions in 0..1) in one window."""
        if not self.enabled:
            return
        values = [case_sensitive, case_insensitive]
        legend = ("case-sensitive", "case-insensitive")
        if per_char is not None:
            values.append(per_char)
            legend += ("per character",)
        self._line(WIN_ACCURACY, step, values, legend, "test accuracy", "accuracy")

    def show_predictions(self, images, truths, predictions, max_items=32):
        """Replace the predictions panel: each captcha with 'truth -> prediction' under it."""
        if not self.enabled:
            return

        def send():
            grid, right, shown = prediction_grid(images, truths, predictions, max_items)
            # The pairs are drawn under each captcha; a visdom caption would repeat them and push
            # the bottom of the image out of the pane.
            opts = {"title": f"predictions: {right}/{shown} right"}
            self._vis.image(grid.transpose(2, 0, 1), win=WIN_PREDICTIONS, env=self.env, opts=opts)

        self._safely(send)


def prediction_grid(images, truths, predictions, max_items=32, columns=8):
    """(grid RGB uint8 array, number right, number shown): captchas with green/red captions."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    if images.dtype != np.uint8:
        raise ValueError(f"show_predictions expects uint8 images, got {images.dtype}")
    shown = min(len(images), len(truths), len(predictions), max_items)
    if shown == 0:
        raise ValueError("show_predictions got no images")
    height, width = images.shape[1:3]
    # Small captchas are doubled so the characters stay readable on the page.
    scale = max(1, min(4, 128 // max(width, 1)))
    font = ImageFont.load_default(size=13)
    captions = [f"{truths[index]} -> {predictions[index]}" for index in range(shown)]
    caption_height = 18
    text_width = max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font) for text in captions)
    tile_width = max(width * scale, math.ceil(text_width) + 4)
    tile_height = height * scale + caption_height
    columns = min(columns, shown)
    rows = math.ceil(shown / columns)
    gap = 4
    grid = Image.new("RGB", (columns * (tile_width + gap) + gap, rows * (tile_height + gap) + gap), "white")
    draw = ImageDraw.Draw(grid)
    right = 0
    for index in range(shown):
        truth, guess = str(truths[index]), str(predictions[index])
        right += truth == guess
        left = gap + (index % columns) * (tile_width + gap)
        top = gap + (index // columns) * (tile_height + gap)
        picture = Image.fromarray(images[index][..., :3]).resize((width * scale, height * scale), Image.NEAREST)
        grid.paste(picture, (left + (tile_width - width * scale) // 2, top))
        colour = (0, 128, 0) if truth == guess else (200, 0, 0)
        draw.text((left + 2, top + height * scale + 2), captions[index], fill=colour, font=font)
    return np.asarray(grid), right, shown


def main():
    params = parse_args(doc=__doc__, script=__file__)
    host = urllib.parse.urlparse(params.visdom_server).hostname or "localhost"
    url = f"http://{host}:{params.visdom_port}"
    if _http_ok(f"{url}/"):
        print(f"visdom: a server already answers at {url}; open {url}/env/{params.visdom_env}")
        return
    try:
        install_assets()
        process = start_server(params.visdom_port, host=host)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        fail(f"visdom: {error}")
    print(f"visdom: dashboard at {url}/env/{params.visdom_env} (Ctrl+C stops the server)")
    # A plain `kill` of this script must not leave the server running without it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)


if __name__ == "__main__":
    main()
