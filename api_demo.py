"""A small HTTP API (and an upload page) that reads captchas with a trained checkpoint.

    python api_demo.py                                   # Flask's development server on host:port
    python api_demo.py --checkpoint=runs/big/best.pt --port=8000
    python api_demo.py --server=waitress                 # production: waitress, server_threads threads
    CAPTCHA_API_KEY=... python api_demo.py --server=waitress --rate_limit=120

--server=waitress is the production server, started with its limits: it listens on --host (127.0.0.1,
this machine only, unless told otherwise), refuses bodies over max_upload_bytes before reading them,
answers its own refusals as JSON too, and prints "serving on http://HOST:PORT ...". (create_app()
with no arguments still makes the app of parameters.py's defaults for other WSGI servers, which must
then set those limits themselves.)

Routes:
    POST /predict   one captcha: JSON {"image": "<base64>"} (a data:image/...;base64, prefix is fine),
                    multipart/form-data with a file field `image`, or the raw image bytes with
                    Content-Type image/* or application/octet-stream. Reply:
                    {"prediction": "aB3x", "predition": "aB3x", "prediction_ignore_case": "ab3x",
                     "confidences": [...], "confidences_ignore_case": [...], "confidence": 0.97, "unsure": false, "ms": 1.8}
                    ("predition" repeats "prediction" for clients written against the old misspelt key.)
                    An arithmetic model (captcha_kind=arithmetic) also answers "answer": 11 and "answer_error":
                    null, or "answer": null and the reason there is none ("7 does not divide by 2 exactly").
                    Several captchas: JSON {"images": [...]} or several `image` files (at most max_batch):
                    {"results": [{"prediction": ..., ...}, ...], "count": N, "ms": ...}
    GET /health     status, checkpoint file name, parameter count, head, charset, length (and min_length), kind,
                    image size, backend, limits, whether a key is required (no key needed: it shows nothing
                    secret)
    GET /           an upload page: pick a captcha file, see what the model reads
    GET /openapi.json   the OpenAPI 3.1 description of these routes (api_spec.py: the routes are registered
                    from it, and the tests check live answers against it)
    GET /metrics    with --metrics: Prometheus counters (api_metrics.py), behind the API key when one is set

Work per request is bounded: the body by max_upload_bytes, each image by max_image_pixels and all the
images of a request by max_request_pixels, read from their headers before any is decoded; at most
max_concurrent requests decode and run the model at once. With api_key (or the environment's
CAPTCHA_API_KEY) set, POST /predict needs it as X-API-Key or Authorization: Bearer; with rate_limit
set, each client address gets that many reads a minute. Every response carries a Content-Security-
Policy (the page's own style and script, by hash), nosniff, X-Frame-Options DENY, no-store.

Every error is JSON {"error": "..."} with its status: 400 malformed request (JSON nested too deeply
too), 401 missing or wrong API key, 404, 405, 413 body over max_upload_bytes or images over
max_image_pixels or max_request_pixels, 415 unsupported Content-Type, 429 over rate_limit and 503
over max_concurrent (both with Retry-After), 500 unexpected (logged here, never shown to the
client). The model is loaded once, at start-up; a missing or unfit checkpoint stops start-up with a
one-line error.
"""
import base64
import binascii
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import json
import math
import os
import re
import resource
import threading
import time

from flask import Flask, jsonify, request
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask
from werkzeug.exceptions import HTTPException

from api_spec import JSON, MULTIPART, RAW, REQUEST_TYPES, ROUTES, Limits, openapi_document, request_form, routes_text
from images import ImageError, image_size, open_image
from command_line import parse_args, run_main
from parameters import make_parameters
from errors import ProjectError
from predictor import load_model_or_exit, predict, use_predict_threads

DATA_URL_PREFIX = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
API_KEY_VARIABLE = "CAPTCHA_API_KEY"

PAGE_STYLE = """
  body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  form { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
  #preview { display: block; margin: 1rem 0; height: 4.5rem; max-width: 100%; image-rendering: pixelated; }
  #preview:not([src]) { display: none; }
  #prediction { font: bold 2.4rem ui-monospace, monospace; letter-spacing: .3rem; min-height: 2.6rem; }
  #error { color: #b00; }
  #unsure { color: #b60; font-weight: bold; }
  #prediction.unsure { color: #b60; }
  #status, #ignore-case { color: #555; }
  table { border-collapse: collapse; margin-top: .5rem; }
  td { padding: .1rem .5rem; font-family: ui-monospace, monospace; }
  .bar { background: #3a7; height: .8rem; }
"""

PAGE_SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  const file = $("file").files[0];
  if (!file) { $("error").textContent = "Choose a captcha image first."; return; }
  $("preview").src = URL.createObjectURL(file);
  $("prediction").textContent = "";
  $("ignore-case").textContent = "";
  $("unsure").textContent = "";
  $("answer").textContent = "";
  $("confidences").replaceChildren();
  $("status").textContent = "reading...";
  const body = new FormData();
  body.append("image", file);
  const headers = $("key").value ? { "X-API-Key": $("key").value } : {};
  try {
    const response = await fetch("predict", { method: "POST", body, headers });
    const reply = await response.json();
    if (!response.ok) { throw new Error(reply.error || response.statusText); }
    $("prediction").textContent = reply.prediction;
    $("ignore-case").textContent = "ignoring case: " + reply.prediction_ignore_case;
    $("unsure").textContent = reply.unsure ? "unsure: a character is below the confidence to trust it; check it" : "";
    $("prediction").classList.toggle("unsure", reply.unsure);
    if ("answer" in reply) {
      $("answer").textContent = reply.answer !== null ? "answer: " + reply.answer : "no answer: " + reply.answer_error;
    }
    [...reply.prediction].forEach((char, index) => {
      const confidence = reply.confidences[index];
      const row = $("confidences").insertRow();
      row.insertCell().textContent = char;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = (confidence * 10).toFixed(1) + "rem";
      row.insertCell().append(bar);
      row.insertCell().textContent = (confidence * 100).toFixed(1) + "%";
    });
    $("status").textContent = "read in " + reply.ms.toFixed(1) + " ms";
  } catch (error) {
    $("status").textContent = "";
    $("error").textContent = error.message;
  }
});
"""

# The page's style and script are inline; the Content-Security-Policy allows exactly these two by hash.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>captcha-ocr</title>
<style>@STYLE@</style>
</head>
<body>
<h1>Read a captcha</h1>
<form id="form">
  <input type="file" id="file" name="image" accept="image/*">
  <input type="password" id="key" placeholder="API key" autocomplete="off"@KEY_HIDDEN@>
  <button type="submit" id="read">Read it</button>
</form>
<img id="preview" alt="">
<div id="prediction"></div>
<div id="ignore-case"></div>
<div id="unsure"></div>
<div id="answer"></div>
<table id="confidences"></table>
<p id="status"></p>
<p id="error"></p>
<script>@SCRIPT@</script>
</body>
</html>
"""


def csp_hash(text):
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Sent with every response. JSON answers need nothing (default-src 'none'); the page needs its own style
# and script, the preview of the chosen file (a blob: URL) and its fetch of /predict.
SECURITY_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; style-src {csp_hash(PAGE_STYLE)}; "
                               f"script-src {csp_hash(PAGE_SCRIPT)}; img-src blob:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # predictions, and the errors that name a client's input, are never cached
}


def page_html(needs_key):
    """The upload page; its API key field shows only when the server needs a key."""
    return (PAGE.replace("@STYLE@", PAGE_STYLE).replace("@SCRIPT@", PAGE_SCRIPT)
            .replace("@KEY_HIDDEN@", "" if needs_key else " hidden"))


def decode_base64(value, field):
    """A base64 string (standard or URL-safe alphabet, optional data: URL prefix) -> bytes."""
    if not isinstance(value, str):
        raise ProjectError(f"'{field}' must be a base64 string, got {type(value).__name__}")
    text = "".join(DATA_URL_PREFIX.sub("", value.strip(), count=1).split())
    if not text:
        raise ProjectError(f"'{field}' is empty")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ProjectError(f"'{field}' is not valid base64") from None


def read_json_images(limits):
    """The image bytes of a JSON request ({"image": ...} or {"images": [...]}), and whether it is a batch."""
    body = request.get_data(cache=False)
    if not body:
        raise ProjectError("empty request body: send {\"image\": \"<base64>\"}")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProjectError(f"malformed JSON ({error})") from None
    except RecursionError:  # its size is bounded by max_upload_bytes, its depth by Python's recursion limit
        raise ProjectError("malformed JSON (nested too deeply): send {\"image\": \"<base64>\"}") from None
    if isinstance(payload, dict) and "images" in payload:
        items = payload["images"]
        if not isinstance(items, list) or not items:
            raise ProjectError("'images' must be a non-empty list of base64 strings")
        check_batch(len(items), limits)
        return [decode_base64(item, f"images[{index}]") for index, item in enumerate(items)], True
    if isinstance(payload, dict) and "image" in payload:
        return [decode_base64(payload["image"], "image")], False
    raise ProjectError("the JSON body needs an 'image' field (a base64 image) or an 'images' list")


def missing_upload():
    """Why a multipart request has no file in the field 'image', in words that say what it had instead."""
    fields = sorted(set(request.files) | set(request.form))
    if fields:
        return f"the multipart upload needs a file in the field 'image' (it has {', '.join(map(repr, fields[:5]))})"
    # werkzeug drops a part whose headers it cannot read, such as a file name that is not UTF-8
    return ("the multipart upload has no part that could be read: send the file in the field 'image', with a "
            "UTF-8 file name")


def read_images(limits):
    """The image bytes of the current request, and whether the client sent a batch."""
    kind = request.mimetype
    form = request_form(kind)
    if form == JSON:
        return read_json_images(limits)
    if form == MULTIPART:
        files = request.files.getlist("image")
        if not files:
            raise ProjectError(missing_upload())
        check_batch(len(files), limits)
        return [upload.read() for upload in files], len(files) > 1
    if form == RAW:
        body = request.get_data(cache=False)
        if not body:
            raise ProjectError("empty request body: send the image bytes")
        return [body], False
    if not request.content_length and not kind:
        raise ProjectError("empty request body: send JSON {\"image\": \"<base64>\"}, a multipart upload or image bytes")
    raise ProjectError(f"unsupported Content-Type {kind or '(none)'!r}: send one of {', '.join(REQUEST_TYPES)}", 415)


def check_batch(count, limits):
    if count > limits.max_batch:
        raise ProjectError(f"{count} images in one request is over the limit of max_batch={limits.max_batch}")


def reply_item(result):
    """One image's reply; an arithmetic model's also holds answer and answer_error."""
    reply = {"prediction": result["text"], "prediction_ignore_case": result["text_ignore_case"],
             "confidences": [round(c, 4) for c in result["confidences"]],
             "confidences_ignore_case": [round(c, 4) for c in result["confidences_ignore_case"]],
             "confidence": round(result["confidence"], 4), "unsure": result["unsure"]}
    if "answer" in result:
        reply["answer"], reply["answer_error"] = result["answer"], result["answer_error"]
    return reply


def check_request_pixels(datas, batch, limits):
    """Each image of a request within max_image_pixels and all together within max_request_pixels, read
    from their headers with nothing decoded (a few hundred bytes of WebP can claim millions of pixels).
    Refused as soon as the running total is over: a hostile batch costs a few header reads."""
    total = 0
    for index, data in enumerate(datas):
        try:
            width, height = image_size(data, limits.max_image_pixels)
        except ImageError as error:
            raise refusal(error, index, batch) from None
        total += width * height
        if total > limits.max_request_pixels:
            what = f"images[0..{index}] of the request hold" if batch else "the image holds"
            raise ProjectError(f"{what} {total} pixels, over the limit of "
                               f"max_request_pixels={limits.max_request_pixels}", 413)


def decoded(datas, batch, limits):
    """The decoded images of a request, one at a time: predict() turns each into the model's small input
    before the next is decoded, and each is closed (its pixels freed) then, so a request holds one decoded
    image at a time."""
    for index, data in enumerate(datas):
        try:
            image = open_image(data, limits.max_image_pixels)
        except ImageError as error:
            raise refusal(error, index, batch) from None
        with image:
            yield image
        del image  # with WebP, the decoder and its canvases go with the image object


def refusal(error, index, batch):
    """An image's error as the request's: which image of a batch it is."""
    return ProjectError(f"images[{index}]: {error}" if batch else str(error), error.status)


class Refused(ProjectError):
    """A request refused with headers that tell the client what to do (Retry-After, WWW-Authenticate)."""

    def __init__(self, message, status, headers):
        super().__init__(message, status)
        self.headers = headers


class Slots:
    """At most `count` holders at once; one more is refused at once (503), never queued."""

    def __init__(self, count):
        self.count, self.semaphore = count, threading.BoundedSemaphore(count)

    @contextlib.contextmanager
    def held(self):
        if not self.semaphore.acquire(blocking=False):
            raise Refused(f"busy: {self.count} requests are being read already (max_concurrent={self.count}); "
                          f"retry in a moment", 503, {"Retry-After": "1"})
        try:
            yield
        finally:
            self.semaphore.release()


class RateLimiter:
    """At most `per_minute` requests a minute per client: a token bucket per client address (`per_minute`
    tokens, refilled evenly). It remembers the MAX_CLIENTS addresses seen last; one forgotten starts full."""

    MAX_CLIENTS = 10000

    def __init__(self, per_minute):
        self.capacity, self.rate = per_minute, per_minute / 60
        self.buckets, self.lock = collections.OrderedDict(), threading.Lock()

    def wait(self, client):
        """0 when `client` may go on (a token is taken), else the seconds until it may."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self.buckets[client] = (tokens - 1 if tokens >= 1 else tokens, now)
            if len(self.buckets) > self.MAX_CLIENTS:
                self.buckets.popitem(last=False)  # the least recently seen client
        return wait


def api_key(given):
    """The key POST /predict requires: `given` (the api_key setting), else the environment's CAPTCHA_API_KEY
    ('' = none)."""
    return given or os.environ.get(API_KEY_VARIABLE, "")


def sent_key():
    """The key the request carries, as X-API-Key or Authorization: Bearer ('' when none)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return request.headers.get("X-API-Key") or (token.strip() if scheme.lower() == "bearer" else "")


def key_matches(sent, key):
    # Compared as digests in constant time: neither the key's characters nor its length leak through timing.
    return hmac.compare_digest(hashlib.sha256(sent.encode()).digest(), hashlib.sha256(key.encode()).digest())


def check_limits(limits):
    for name in ("max_upload_bytes", "max_batch", "max_request_pixels", "max_concurrent"):
        if getattr(limits, name) < 1:
            raise ProjectError(f"--{name} must be at least 1, got {getattr(limits, name)}")
    if limits.rate_limit < 0 or limits.max_image_pixels < 0:
        raise ProjectError("--rate_limit and --max_image_pixels must be 0 (no limit) or more")


def health_of(predictor, backend, limits, key):
    trained = predictor.trained
    return {
        "status": "ok", "backend": backend, "device": str(predictor.device),
        # the file name only: the server's folders are none of a client's business
        "model": {"checkpoint": os.path.basename(predictor.checkpoint), "parameters": predictor.parameters,
                  "preset": trained.model_preset, "head": trained.reader_head},
        "charset": predictor.charset.chars, "length": predictor.charset.length,
        "min_length": predictor.charset.min_length, "captcha_kind": trained.captcha_kind,
        "image_size": {"width": predictor.width, "height": predictor.height}, "ignore_case": trained.ignore_case,
        "limits": dataclasses.asdict(limits),
        "api_key_required": bool(key),
    }


def create_app(params=None, predictor=None):
    """The Flask app. Without `predictor`, loads the checkpoint `params` name (a missing or unfit one
    stops the program with a one-line error); without `params`, the defaults of parameters.py."""
    params = params if params is not None else make_parameters()
    limits = Limits.of(params)
    check_limits(limits)
    started = time.perf_counter()
    if predictor is None:
        predictor = load_model_or_exit(params)
        use_predict_threads(params)
    load_seconds = time.perf_counter() - started
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = limits.max_upload_bytes
    app.json.sort_keys = False  # keep "prediction" first, as clients print it
    key = api_key(params.api_key)
    routes = [route for route in ROUTES if route.path != "/metrics" or params.metrics]
    metrics = None
    if params.metrics:
        from api_metrics import Metrics  # only with --metrics: nothing of it runs, or loads, otherwise
        metrics = Metrics(predictor, params.backend, load_seconds)
    add_routes(app, routes, handlers(predictor, health_of(predictor, params.backend, limits, key), limits, key,
                                     routes, metrics))
    if metrics is not None:
        metrics.install(app)
    add_guards(app, key, RateLimiter(limits.rate_limit) if limits.rate_limit else None, routes)
    add_error_handlers(app, limits, routes)
    return app


def handlers(predictor, health, limits, key, routes, metrics):
    """{endpoint: handler} of every route (api_spec.ROUTES names them); `health` is /health's answer."""
    page, slots = page_html(bool(key)), Slots(limits.max_concurrent)
    description = openapi_document(limits, routes, bool(key))

    def predict_route():
        datas, batch = read_images(limits)
        check_request_pixels(datas, batch, limits)
        with slots.held():
            start = time.perf_counter()
            results = predict(predictor, decoded(datas, batch, limits))
            elapsed = round((time.perf_counter() - start) * 1000, 3)
        if metrics is not None:
            metrics.reads(results)
        if batch:
            return jsonify(results=[reply_item(result) for result in results], count=len(results), ms=elapsed)
        item = reply_item(results[0])
        return jsonify(prediction=item["prediction"], predition=item["prediction"],
                       **{name: value for name, value in item.items() if name != "prediction"}, ms=elapsed)

    return {"page_route": lambda: (page, 200, {"Content-Type": "text/html; charset=utf-8"}),
            "health_route": lambda: jsonify(health), "openapi_route": lambda: jsonify(description),
            "predict_route": predict_route, "metrics_route": lambda: metrics.page()}


def add_routes(app, routes, handlers):
    for route in routes:
        app.add_url_rule(route.path, route.endpoint, handlers[route.endpoint], methods=[route.method])


def add_guards(app, key, limiter, routes):
    """Before POST /predict: the rate limit (when set); before it and the other guarded routes (/metrics),
    the API key (when set); after every request, SECURITY_HEADERS. /health, the page and the API's
    description stay open: they show nothing secret, and health checks can probe without the key."""
    guarded = {route.endpoint for route in routes if route.guarded}

    @app.before_request
    def guard():
        if request.endpoint not in guarded:
            return
        wait = limiter.wait(request.remote_addr) if limiter is not None and request.endpoint == "predict_route" else 0
        if wait:
            raise Refused(f"too many requests: the limit is rate_limit={limiter.capacity} a minute per client",
                          429, {"Retry-After": str(math.ceil(wait))})
        if key and not key_matches(sent_key(), key):
            raise Refused("missing or wrong API key: send it as X-API-Key or Authorization: Bearer", 401,
                          {"WWW-Authenticate": 'Bearer realm="captcha-ocr"'})

    @app.after_request
    def secure(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response


def add_error_handlers(app, limits, routes):
    """Every error as JSON {"error": ...} with its status; an unexpected one logged here, never shown."""

    @app.errorhandler(ProjectError)
    def refused(error):  # a request the API refuses (or a bad image): its message, its status
        return jsonify(error=str(error)), error.status, getattr(error, "headers", {})

    @app.errorhandler(HTTPException)
    def http_error(error):
        if error.code == 413 and request.mimetype == "multipart/form-data" and \
                request.content_length is not None and request.content_length <= limits.max_upload_bytes:
            message = f"the multipart form has too many parts (at most {request.max_form_parts}; one image a part, " \
                      f"at most max_batch={limits.max_batch})"
        elif error.code == 413:
            message = body_too_large(limits.max_upload_bytes)
        elif error.code == 404:
            message = f"no route {request.path}: the routes are {routes_text(routes)}"
        elif error.code == 405:
            allowed = ", ".join(error.valid_methods or ())
            message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        else:
            message = error.description
        response = error.get_response()  # keeps headers such as Allow on a 405
        response.set_data(json.dumps({"error": message}))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error):
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error="internal error: the server could not handle this request"), 500


def body_too_large(limit):
    return f"request body over the limit of max_upload_bytes={limit} bytes"


class JsonErrorTask(ErrorTask):
    """waitress's answer to a request it refuses itself (a body over its limit, a malformed request),
    as JSON with the app's headers, like every other error."""

    def execute(self):
        error = self.request.error
        # waitress refuses bodies of max_request_body_size bytes and more (waitress_server sets it one over)
        limit = self.channel.server.adj.max_request_body_size - 1
        message = body_too_large(limit) if error.code == 413 else f"{error.reason.lower()}: {error.body}"
        body = json.dumps({"error": message}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), *SECURITY_HEADERS.items()])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def waitress_server(app, params):
    """waitress serving `app` on params.host:port, params.server_threads threads, with the app's body
    limit (larger bodies are refused before they are read) and its own errors as JSON.

    Slow clients: waitress reads requests in one thread of its own and hands only complete ones to the
    request threads, so a socket that trickles its headers or stalls its body costs a connection, not a
    thread. Up to max_connections are held (waitress's default of 100 let 150 idle sockets lock everyone
    out) and one silent for idle_timeout seconds is closed."""
    listeners = {}
    open_files(params.max_connections + 64)
    timeout = max(1, math.ceil(params.idle_timeout))
    try:
        server = create_server(app, map=listeners, host=params.host, port=params.port, threads=params.server_threads,
                               max_request_body_size=params.max_upload_bytes + 1,  # it refuses from this size on
                               connection_limit=params.max_connections, channel_timeout=timeout,
                               cleanup_interval=max(1, timeout // 2), asyncore_use_poll=True)  # select(): 1,024 at most
    except (OSError, ValueError) as error:
        raise ProjectError(f"cannot listen on {params.host}:{params.port} ({error})") from None
    for listener in listeners.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = JsonErrorChannel
    return server


def open_files(count):
    """Let this process hold `count` open files (sockets) where its hard limit allows: the soft limit is
    often 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def addresses(server):
    """The URLs a waitress server listens on."""
    listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}" for host, port in listening]


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    app = create_app(params)
    if params.server == "waitress":
        server = waitress_server(app, params)
        print(f"serving on {', '.join(addresses(server))} (waitress, {params.server_threads} threads; "
              f"Ctrl-C stops)", flush=True)
        server.run()  # returns on Ctrl-C
    else:
        app.run(host=params.host, port=params.port, debug=False)


if __name__ == "__main__":
    run_main(main)
