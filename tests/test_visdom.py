"""Visdom.py and visdom_server.py against a real visdom server on loopback: plots arrive, an absent or
dying server is harmless, the installed assets keep the server off the network, and the page of a
short real training run shows data in every panel in headless Chromium.

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

import grid as grid_module
import Visdom
import visdom_server
from conftest import tiny_params
from generate_captcha import generate_split
from parameters import make_parameters
from train import train

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dashboard(port, env, model_dir="model"):
    """A dashboard for the run in `model_dir`: it draws in environment env + "_" + that folder's name."""
    return Visdom.Dashboard(make_parameters({"visdom": True, "visdom_server": "http://127.0.0.1",
                                             "visdom_port": port, "visdom_env": env, "model_dir": model_dir}))


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


def modes(data):
    return {trace["mode"] for trace in data["content"]["data"]}


def captchas(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 24, 64, 3), dtype=np.uint8)


class Server:
    def __init__(self, folder):
        self.port = free_port()
        self.log_path = folder / "server.log"
        self._log = open(self.log_path, "w")
        try:
            self.process = visdom_server.start_server(self.port, env_path=folder / "envs", log=self._log)
        except BaseException:
            self._log.close()
            raise

    def stop(self):
        visdom_server.stop_server(self.process)
        self._log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("visdom_server"))
    yield running
    running.stop()


def test_installed_assets_keep_the_server_off_the_network(server):
    assert visdom_server.missing_assets() == []
    log = server.log_path.read_text()
    # The server ran visdom's own download step, which found everything in place.
    assert "Checking for scripts" in log
    assert "Downloading scripts" not in log and "while downloading" not in log
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/static/js/plotly-plotly.min.js",
                                timeout=5) as response:
        assert response.status == 200
        assert b"plotly.js v2.11.1" in response.read(4096)


@pytest.mark.slow
def test_fresh_install_satisfies_visdoms_own_download_step(tmp_path):
    static = visdom_server.install_assets(static=tmp_path / "static")
    assert visdom_server.missing_assets(static) == []
    assert all((static / dest).stat().st_size > 0 for _, _, _, dest in visdom_server.ASSETS)
    assert (static / visdom_server.BUILT_MARKER).read_text() == visdom.__version__
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


def test_dashboard_sends_every_plot(server, capsys):
    board = dashboard(server.port, "plots")
    assert board.enabled and board.env == "plots_model"
    losses = [2.5, 1.75, 1.0, 0.625]
    for step, loss in enumerate(losses):
        board.plot_loss(step * 10, loss)
        board.plot_lr(step * 10, 0.001 * (step + 1))
    board.plot_loss(40, float("nan"))  # left out: JSON cannot carry it
    board.plot_accuracy(10, 0.25, 0.5, per_char=0.75)
    truths, guesses = ["ab3D", "x9Kq", "mm00"], ["ab3D", "x9kq", "mm00"]
    board.show_predictions(captchas(3), truths, guesses)
    assert board.enabled
    assert capsys.readouterr().out == f"dashboard: http://127.0.0.1:{server.port}/env/plots_model\n"

    loss = window(server.port, board.env, Visdom.WIN_LOSS)
    assert traces(loss) == {"train loss": ([0.0, 10.0, 20.0, 30.0], losses)}
    assert loss["title"] == "training loss [model]"
    lr = window(server.port, board.env, Visdom.WIN_LR)
    assert traces(lr)["learning rate"][1] == pytest.approx([0.001, 0.002, 0.003, 0.004])
    # One evaluation is one point: only a marker makes it visible.
    accuracy = window(server.port, board.env, Visdom.WIN_ACCURACY)
    assert traces(accuracy) == {"case-sensitive": ([10.0], [0.25]), "case-insensitive": ([10.0], [0.5]),
                                "per character": ([10.0], [0.75])}
    assert modes(loss) == modes(lr) == modes(accuracy) == {"lines+markers"}

    panel = window(server.port, board.env, Visdom.WIN_PREDICTIONS)
    assert panel["title"] == "predictions: 2/3 right [model]"
    png = panel["content"]["src"].split("base64,", 1)[1]
    grid = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
    assert np.array_equal(grid, np.asarray(Visdom.prediction_grid(captchas(3), truths, guesses)[0]))
    # Three tiles in a row: each captcha doubled in size, its pair written under it in green when
    # right and red when wrong.
    gap = grid_module.GAP
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


def test_each_run_has_its_own_environment(server):
    assert Visdom.environment(make_parameters({"visdom_env": "captcha", "model_dir": "runs/big/"})) == "captcha_big"
    assert Visdom.run_name(make_parameters({"model_dir": "runs/my run#2"})) == "my-run-2"
    first = dashboard(server.port, "runs", model_dir="runs/first")
    second = dashboard(server.port, "runs", model_dir="runs/second")
    first.plot_loss(0, 1.0)
    second.plot_loss(0, 2.0)
    assert first.url == f"http://127.0.0.1:{server.port}/env/runs_first"
    assert traces(window(server.port, "runs_first", Visdom.WIN_LOSS)) == {"train loss": ([0.0], [1.0])}
    assert traces(window(server.port, "runs_second", Visdom.WIN_LOSS)) == {"train loss": ([0.0], [2.0])}
    assert window(server.port, "runs_second", Visdom.WIN_LOSS)["title"] == "training loss [second]"


def test_new_run_replaces_windows_and_panel(server):
    first = dashboard(server.port, "rerun")
    for step in range(3):
        first.plot_loss(step, 1.0)
    first.show_predictions(captchas(2), ["aaaa", "bbbb"], ["aaaa", "bbbb"])
    second = dashboard(server.port, "rerun")
    second.plot_loss(0, 0.5)
    second.plot_loss(1, 0.25)
    second.show_predictions(captchas(1, seed=1), ["cccc"], ["cccd"])
    assert traces(window(server.port, second.env, Visdom.WIN_LOSS)) == {"train loss": ([0.0, 1.0], [0.5, 0.25])}
    panel = window(server.port, second.env, Visdom.WIN_PREDICTIONS)
    assert panel["title"] == "predictions: 0/1 right [model]"
    assert panel["width"] == Visdom.prediction_grid(captchas(1), ["cccc"], ["cccd"])[0].width


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


@pytest.mark.slow
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


def chromium(profile):
    """A headless Chromium driven by Selenium, or a skip when it is not installed."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Chromium is not installed (`make browser` installs chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from looking for (or downloading) a driver.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


# Per plot on the page: its title, its traces (name, mode, points) and the markers plotly drew.
PLOTS_SCRIPT = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => ({
    title: plot.layout.title.text,
    traces: plot.data.map(trace => [trace.name, trace.mode, trace.x.length]),
    markers: plot.querySelectorAll('.scatterlayer .trace .points path').length}));
"""
IMAGES_SCRIPT = "return Array.from(document.querySelectorAll('.window img')).map(img => img.naturalWidth);"


@pytest.mark.slow
def test_short_training_fills_every_panel_in_chromium(server, tmp_path, capsys):
    # 352 images of 32 a step for 2 epochs: 22 steps, so one loss and learning-rate point (they are
    # logged every 20 steps), the case that drew an empty panel without markers; accuracy every 5.
    params = tiny_params(tmp_path, train_count=352, test_count=32, epochs=2, eval_every=5, threads=1,
                         visdom=True, visdom_server="http://127.0.0.1", visdom_port=server.port,
                         visdom_env="trial", model_dir=str(tmp_path / "short_run"))
    generate_split(params, params.train_dir, "train", params.train_count)
    generate_split(params, params.test_dir, "test", params.test_count)
    train(params)
    page = f"http://127.0.0.1:{server.port}/env/trial_short_run"
    assert capsys.readouterr().out.count(f"dashboard: {page}\n") == 1

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver = chromium(tmp_path / "profile")
    try:
        driver.get(page)
        WebDriverWait(driver, 30).until(
            lambda browser: len(browser.execute_script(PLOTS_SCRIPT)) == 3
            and all(plot["traces"] for plot in browser.execute_script(PLOTS_SCRIPT))
            and any(browser.execute_script(IMAGES_SCRIPT)))
        plots = {plot["title"]: plot for plot in driver.execute_script(PLOTS_SCRIPT)}
        images = driver.execute_script(IMAGES_SCRIPT)
        page_text = driver.find_element(By.TAG_NAME, "body").text
        # Every library came from the local static folder, none from a CDN.
        loaded = driver.execute_script(
            "return [typeof Plotly, typeof React, typeof ReactDOM, typeof jQuery, typeof MathJax]")
        screenshot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(screenshot))
        errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert "undefined" not in loaded, loaded
    assert not [message for message in errors if "/static/" in message], errors
    assert sorted(plots) == ["learning rate [short_run]", "test accuracy [short_run]", "training loss [short_run]"]
    for title, plot in plots.items():
        # Each point of each trace is drawn as a marker.
        assert plot["markers"] == sum(points for _, _, points in plot["traces"]) > 0, title
        assert {mode for _, mode, _ in plot["traces"]} == {"lines+markers"}, title
    assert plots["training loss [short_run]"]["traces"] == [["train loss", "lines+markers", 1]]
    assert [name for name, _, _ in plots["test accuracy [short_run]"]["traces"]] == [
        "case-sensitive", "case-insensitive", "per character"]
    assert plots["test accuracy [short_run]"]["traces"][0][2] >= 4
    # The predictions panel: one decoded image, as wide as the grid of the last evaluation's 24 captchas.
    assert len(images) == 1 and images[0] > 500
    assert "predictions: " in page_text and "right [short_run]" in page_text
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 500 and pixels.std() > 10
