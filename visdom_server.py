"""A visdom server for the training dashboard (Visdom.py) that works without internet access.

    make visdom                                  # same as: .venv/bin/python visdom_server.py
    .venv/bin/python visdom_server.py --visdom_port=8098

Training prints the address of its plots ("dashboard: http://localhost:8097/env/captcha_model").

`python -m visdom.server` downloads its scripts, styles and fonts from CDNs on first start and dies on
a machine without internet access. install_assets() takes the same files from the npm registry
(`npm pack`, tarballs kept in .visdom_assets/), copies each to the path visdom expects in its static
folder and writes visdom's own "already built" marker, so the server never goes to the network.
"""
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
import zlib
from pathlib import Path

import visdom
from visdom.utils.shared_utils import get_visdom_path

from files import atomic_write
from command_line import fail, parse_args, run_main
from Visdom import environment, http_ok

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
        if http_ok(probe):
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


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    host = urllib.parse.urlparse(params.visdom_server).hostname or "localhost"
    url = f"http://{host}:{params.visdom_port}"
    page = f"{url}/env/{environment(params)}"
    if http_ok(f"{url}/"):
        print(f"visdom: a server already answers at {url}; the plots of --model_dir={params.model_dir} "
              f"go to {page}")
        return
    try:
        install_assets()
        process = start_server(params.visdom_port, host=host)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        fail(f"visdom: {error}")
    print(f"visdom: serving {url}; the plots of --model_dir={params.model_dir} go to {page} "
          f"(Ctrl+C stops the server)")
    # A plain `kill` of this script must not leave the server running without it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)


if __name__ == "__main__":
    run_main(main)
