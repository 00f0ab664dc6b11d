"""Live training dashboard on a visdom server (start one with `make visdom`, see visdom_server.py).

Training builds one `Dashboard(params)` and calls plot_loss, plot_lr, plot_accuracy and
show_predictions on it. With --visdom=false every call does nothing; when no server answers, or the
server goes away mid-run, the dashboard says so in one line and then does nothing, so training never
waits for or fails on it.

Each run draws in its own visdom environment, `visdom_env` + "_" + the last folder of `model_dir`
(captcha_model for model/, captcha_big for runs/big/), and every panel's title ends with that run
name in brackets. Visdom's environment menu groups names by the text before the first "_", so all
runs sit under "captcha". Once connected, the dashboard prints its page's address once
("dashboard: http://localhost:8097/env/captcha_model"); visdom's front page shows an empty "main"
environment, so open that address, or pick the run in the menu. A run resumed in the same
model_dir draws in the same environment: its first point replaces what was there.
"""
import logging
import os
import re
import urllib.error
import urllib.request
import warnings

import numpy as np
import visdom

from grid import image_grid

WIN_LOSS = "captcha_loss"
WIN_LR = "captcha_lr"
WIN_ACCURACY = "captcha_accuracy"
WIN_PREDICTIONS = "captcha_predictions"
WIN_SELF_TRAINING = "captcha_self_training"
MARKER_SIZE = 5  # pixels; markers make a curve of one point visible
RIGHT, WRONG = (0, 128, 0), (200, 0, 0)  # caption colours of the predictions panel


def run_name(params):
    """The run's name: model_dir's last folder, each character other than a letter, digit, '_', '.'
    or '-' replaced by '-' (the name goes into the page's URL and visdom's file name)."""
    name = os.path.basename(os.path.normpath(os.path.abspath(params.model_dir)))
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) or "run"


def environment(params):
    """The visdom environment a run's plots go to: visdom_env + '_' + run_name."""
    return f"{params.visdom_env}_{run_name(params)}"


def http_ok(url, timeout=1.0):
    """Whether GET url answers 200 within `timeout` seconds."""
    # No proxies: the dashboard server is local, and a proxy from the environment would miss it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


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
        self.run = run_name(params)
        self.env = environment(params)
        server = params.visdom_server.rstrip("/")
        # visdom's client accepts a bare host name; the reachability probe needs the scheme.
        server = server if "://" in server else f"http://{server}"
        self.server_url = f"{server}:{params.visdom_port}"
        self.url = f"{self.server_url}/env/{self.env}"  # the page that shows this run's panels
        self._vis = None
        # Windows this run has drawn, with their legends: the first draw of a run replaces what an
        # earlier run left in the window, later ones append, and a new legend redraws.
        self._legends = {}
        if not params.visdom:
            return
        if not http_ok(f"{self.server_url}/", timeout=connect_timeout):
            print(f"visdom: no server at {self.server_url}; training goes on without the dashboard "
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
            print(f"visdom: cannot use the server at {self.server_url} ({error}); "
                  f"training goes on without the dashboard")
            return
        self.enabled = True
        print(f"dashboard: {self.url}")

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
            opts = {"title": f"{title} [{self.run}]", "xlabel": "step", "ylabel": ylabel,
                    "legend": list(legend), "showlegend": len(legend) > 1,
                    "markers": True, "markersize": MARKER_SIZE}
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

    def plot_self_training(self, step, used, changed):
        """Append one point to the self-training curves: unlabelled captchas in use, reads changed."""
        if self.enabled:
            self._line(WIN_SELF_TRAINING, step, [used, changed], ("captchas used", "reads changed"),
                       "self-training", "captchas")

    def show_predictions(self, images, truths, predictions, max_items=32):
        """Replace the predictions panel: each captcha with 'truth -> prediction' under it."""
        if not self.enabled:
            return

        def send():
            grid, right, shown = prediction_grid(images, truths, predictions, max_items)
            # The pairs are drawn under each captcha; a visdom caption would repeat them and push
            # the bottom of the image out of the pane.
            opts = {"title": f"predictions: {right}/{shown} right [{self.run}]"}
            # visdom takes (channels, height, width).
            self._vis.image(np.asarray(grid).transpose(2, 0, 1), win=WIN_PREDICTIONS, env=self.env, opts=opts)

        self._safely(send)


def prediction_grid(images, truths, predictions, max_items=32, columns=8):
    """(PIL grid, number right, number shown): captchas with 'truth -> prediction' in green or red."""
    shown = min(len(images), len(truths), len(predictions), max_items)
    if shown == 0:
        raise ValueError("show_predictions got no images")
    width = np.asarray(images[0]).shape[1]
    right = [str(truths[index]) == str(predictions[index]) for index in range(shown)]
    captions = [f"{truths[index]} -> {predictions[index]}" for index in range(shown)]
    # Small captchas are enlarged (up to 4x, to about 128 px wide) so the characters stay readable.
    scale = max(1, min(4, 128 // max(width, 1)))
    grid = image_grid([images[index] for index in range(shown)], captions,
                      [RIGHT if ok else WRONG for ok in right], scale=scale, columns=columns)
    return grid, sum(right), shown
