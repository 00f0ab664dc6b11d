"""Visdom.py against a real visdom server on loopback: plots arrive, an absent or dying server is
harmless, the installed assets keep the server off the network, and the page renders in Chromium.

Run: .venv/bin/python -m pytest -q tests/test_visdom.py
"""
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import numpy as np
import pytest
import visdom
from PIL import Image

import Visdom
from parameters import make_parameters

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dashboard(port, env):
    return Visdom.Dashboard(make_parameters(
        {"visdom": True, "visdom_server": "http://127.0.0.1", "visdom_port": port, "visdom_env": env}))


def window(port, env, win):
    """What the server holds for one window, read through visdom's own client."""
    # visdom 0.2.4's constructor calls the deprecated logger.warn; not what is under test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reader = visdom.Visdom(server="http://127.0.0.1", port=port, env=env,
                               use_incoming_socket=False, raise_exceptions=True)
    assert reader.win_exists(win, env=env), f"window {win} is not on the server"
    return json.loads(reader.get_window_data(win, env=env))


def traces(data):
    return {trace["name"]: (trace["x"], trace["y"]) for trace in data["content"]["data"]}


def captchas(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 24, 64, 3), dtype=np.uint8)


class Server:
    def __init__(self, folder):
        self.port = free_port()
        self.log_path = folder / "server.log"
        self._log = open(self.log_path, "w")
        try:
            self.process = Visdom.start_server(self.port, env_path=folder / "envs", log=self._log)
        except BaseException:
            self._log.close()
            raise

    def stop(self):
        Visdom.stop_server(self.process)
        self._log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("visdom_server"))
    yield running
    running.stop()


def test_installed_assets_keep_the_server_off_the_network(server):
    assert Visdom.missing_assets() == []
    log = server.log_path.read_text()
    # The server ran visdom's own download step, which found everything in place.
    assert "Checking for scripts" in log
    assert "Downloading scripts" not in log and "while downloading" not in log
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/static/js/plotly-plotly.min.js",
                                timeout=5) as response:
        assert response.status == 200
        assert b"plotly.js v2.11.1" in response.read(4096)


def test_fresh_install_satisfies_visdoms_own_download_step(tmp_path):
    static = Visdom.install_assets(static=tmp_path / "static")
    assert Visdom.missing_assets(static) == []
    assert all((static / dest).stat().st_size > 0 for _, _, _, dest in Visdom.ASSETS)
    assert (static / Visdom.BUILT_MARKER).read_text() == visdom.__version__
    assert (static / "js/mathjax/2.7.5/MathJax.js").read_bytes().startswith(b"/*")
    # visdom's own step, run on that folder with every proxy pointing at a closed port: any
    # download it still tried would fail at once and show in its output or exit status.
    dead = f"http://127.0.0.1:{free_port()}"
    environment = {**os.environ, "http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead,
                   "HTTPS_PROXY": dead, "no_proxy": "", "NO_PROXY": ""}
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from visdom.server.build import download_scripts; "
                               "download_scripts(install_dir=sys.argv[1])", str(tmp_path)],
        env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Downloading" not in result.stdout and "Error" not in result.stdout + result.stderr


def test_dashboard_sends_every_plot(server):
    env = "plots"
    board = dashboard(server.port, env)
    assert board.enabled
    losses = [2.5, 1.75, 1.0, 0.625]
    for step, loss in enumerate(losses):
        board.plot_loss(step * 10, loss)
        board.plot_lr(step * 10, 0.001 * (step + 1))
    board.plot_loss(40, float("nan"))  # left out: JSON cannot carry it
    board.plot_accuracy(10, 0.25, 0.5, per_char=0.75)
    board.plot_accuracy(20, 0.5, 0.625, per_char=0.875)
    truths, guesses = ["ab3D", "x9Kq", "mm00"], ["ab3D", "x9kq", "mm00"]
    board.show_predictions(captchas(3), truths, guesses)
    assert board.enabled

    loss = traces(window(server.port, env, Visdom.WIN_LOSS))
    assert loss == {"train loss": ([0.0, 10.0, 20.0, 30.0], losses)}
    lr = traces(window(server.port, env, Visdom.WIN_LR))["learning rate"]
    assert lr[0] == [0.0, 10.0, 20.0, 30.0] and lr[1] == pytest.approx([0.001, 0.002, 0.003, 0.004])
    accuracy = traces(window(server.port, env, Visdom.WIN_ACCURACY))
    assert accuracy == {"case-sensitive": ([10.0, 20.0], [0.25, 0.5]),
                        "case-insensitive": ([10.0, 20.0], [0.5, 0.625]),
                        "per character": ([10.0, 20.0], [0.75, 0.875])}

    panel = window(server.port, env, Visdom.WIN_PREDICTIONS)
    assert panel["title"] == "predictions: 2/3 right"
    png = panel["content"]["src"].split("base64,", 1)[1]
    grid = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
    expected, _, _ = Visdom.prediction_grid(captchas(3), truths, guesses)
    assert np.array_equal(grid, expected)
    # Tiles are 4 px apart, 3 in a row: each captcha doubled in size, its pair written under it in
    # green when right and red when wrong.
    gap = 4
    tile_width = (grid.shape[1] - gap) // 3 - gap
    for index in range(3):
        left = gap + index * (tile_width + gap)
        centred = left + (tile_width - 128) // 2
        assert np.array_equal(grid[gap:gap + 48:2, centred:centred + 128:2], captchas(3)[index])
        red, green, blue = np.moveaxis(grid[gap + 48:, left:left + tile_width].astype(int), 2, 0)
        reddish = int(((red > 150) & (green < 80) & (blue < 80)).sum())
        greenish = int(((green > 90) & (red < 80) & (blue < 80)).sum())
        if truths[index] == guesses[index]:
            assert greenish > 20 and reddish == 0
        else:
            assert reddish > 20 and greenish == 0


def test_new_run_replaces_windows_and_panel(server):
    env = "rerun"
    first = dashboard(server.port, env)
    for step in range(3):
        first.plot_loss(step, 1.0)
    first.show_predictions(captchas(2), ["aaaa", "bbbb"], ["aaaa", "bbbb"])
    second = dashboard(server.port, env)
    second.plot_loss(0, 0.5)
    second.plot_loss(1, 0.25)
    second.show_predictions(captchas(1, seed=1), ["cccc"], ["cccd"])
    assert traces(window(server.port, env, Visdom.WIN_LOSS)) == {"train loss": ([0.0, 1.0], [0.5, 0.25])}
    panel = window(server.port, env, Visdom.WIN_PREDICTIONS)
    assert panel["title"] == "predictions: 0/1 right"
    assert panel["width"] == Visdom.prediction_grid(captchas(1), ["cccc"], ["cccd"])[0].shape[1]


def test_dashboard_without_server_is_quiet_and_quick(capsys):
    port = free_port()
    start = time.monotonic()
    board = dashboard(port, "nowhere")
    assert time.monotonic() - start < 3
    assert board.enabled is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert f"no server at http://127.0.0.1:{port}" in lines[0] and "make visdom" in lines[0]
    assert board.plot_loss(0, 1.0) is None
    board.plot_lr(0, 0.1)
    board.plot_accuracy(0, 0.1, 0.2, 0.3)
    board.show_predictions(captchas(2), ["aaaa", "bbbb"], ["aaaa", "bbbc"])
    assert capsys.readouterr().out == ""


def test_dashboard_switched_off_says_nothing(capsys):
    board = Visdom.Dashboard(make_parameters({"visdom": False, "visdom_port": free_port()}))
    board.plot_loss(0, 1.0)
    assert board.enabled is False
    assert capsys.readouterr().out == ""


def test_server_dying_mid_run_does_not_stop_training(tmp_path, capsys):
    dying = Server(tmp_path)
    try:
        board = dashboard(dying.port, "dying")
        board.plot_loss(0, 1.0)
        assert board.enabled
    finally:
        dying.stop()
    capsys.readouterr()
    board.plot_loss(1, 0.5)
    board.plot_accuracy(1, 0.1, 0.2)
    board.show_predictions(captchas(1), ["aaaa"], ["aaaa"])
    assert board.enabled is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "dashboard stopped" in lines[0]


def test_page_renders_offline_in_chromium(server, tmp_path):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Chromium is not installed (`make browser` installs chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    env = "browser"
    board = dashboard(server.port, env)
    for step in range(20):
        board.plot_loss(step, 2.0 * 0.85 ** step)
        board.plot_lr(step, 0.003 * min(1.0, (step + 1) / 5))
    board.plot_accuracy(10, 0.2, 0.3, per_char=0.6)
    board.plot_accuracy(20, 0.6, 0.7, per_char=0.9)
    board.show_predictions(captchas(8), ["ab3D"] * 8, ["ab3D", "ab3d"] * 4)

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from looking for (or downloading) a driver.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/env/{env}")
        WebDriverWait(driver, 30).until(
            lambda page: len(page.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= 3
            and page.find_elements(By.CSS_SELECTOR, ".content-image, img"))
        plots = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        assert len(plots) == 3
        # Every library came from the local static folder, none from a CDN.
        loaded = driver.execute_script(
            "return [typeof Plotly, typeof React, typeof ReactDOM, typeof jQuery, typeof MathJax]")
        assert "undefined" not in loaded, loaded
        page_text = driver.find_element(By.TAG_NAME, "body").text
        assert "training loss" in page_text and "test accuracy" in page_text
        screenshot = tmp_path / "visdom_dashboard.png"
        assert driver.save_screenshot(str(screenshot))
        errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert not [message for message in errors if "/static/" in message], errors
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 500 and pixels.std() > 10
    print(f"screenshot: {screenshot}")
