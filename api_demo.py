"""A small HTTP API (and an upload page) that reads captchas with a trained checkpoint.

    python api_demo.py                                   # Flask's development server on host:port
    python api_demo.py --checkpoint=runs/big/best.pt --port=8000
    python api_demo.py --server=waitress                 # the production server, server_threads threads

Production, with waitress's own runner (create_app() with no arguments reads the defaults of
parameters.py, so the checkpoint is model_dir/best.pt relative to the working directory):

    waitress-serve --threads=4 --port=5000 --call api_demo:create_app

It listens on every interface (--listen=127.0.0.1:5000 for this machine only); add
--max-request-body-size=4194304 so that waitress refuses huge bodies before buffering them.

Routes:
    POST /predict   one captcha: JSON {"image": "<base64>"} (a data:image/...;base64, prefix is fine),
                    multipart/form-data with a file field `image`, or the raw image bytes with
                    Content-Type image/* or application/octet-stream. Reply:
                    {"prediction": "aB3x", "predition": "aB3x", "prediction_ignore_case": "ab3x",
                     "confidences": [...], "confidences_ignore_case": [...], "confidence": 0.97, "unsure": false, "ms": 1.8}
                    ("predition" repeats "prediction" for clients written against the old misspelt key.)
                    Several captchas: JSON {"images": [...]} or several `image` files (at most max_batch):
                    {"results": [{"prediction": ..., ...}, ...], "count": N, "ms": ...}
    GET /health     status, checkpoint, parameter count, charset, length, image size, backend
    GET /           an upload page: pick a captcha file, see what the model reads

Every error is JSON {"error": "..."} with its status: 400 malformed request, 404, 405, 413 body over
max_upload_bytes or image over max_image_pixels, 415 unsupported Content-Type, 500 unexpected
(logged here, never shown to the client). The model is loaded once, at start-up; a missing or
unfit checkpoint stops start-up with a one-line error.
"""
import base64
import binascii
import json
import re
import time

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from parameters import ProjectError, fail, make_parameters, parse_args, run_main
from userPred import ImageError, load_model_or_exit, open_image, predict, use_predict_threads

DATA_URL_PREFIX = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
SERVERS = ("flask", "waitress")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>captcha-ocr</title>
<style>
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
</style>
</head>
<body>
<h1>Read a captcha</h1>
<form id="form">
  <input type="file" id="file" name="image" accept="image/*">
  <button type="submit" id="read">Read it</button>
</form>
<img id="preview" alt="">
<div id="prediction"></div>
<div id="ignore-case"></div>
<div id="unsure"></div>
<table id="confidences"></table>
<p id="status"></p>
<p id="error"></p>
<script>
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
  $("confidences").replaceChildren();
  $("status").textContent = "reading...";
  const body = new FormData();
  body.append("image", file);
  try {
    const response = await fetch("predict", { method: "POST", body });
    const reply = await response.json();
    if (!response.ok) { throw new Error(reply.error || response.statusText); }
    $("prediction").textContent = reply.prediction;
    $("ignore-case").textContent = "ignoring case: " + reply.prediction_ignore_case;
    $("unsure").textContent = reply.unsure ? "unsure: a character is below the confidence to trust it; check it" : "";
    $("prediction").classList.toggle("unsure", reply.unsure);
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
</script>
</body>
</html>
"""


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


def read_images(params):
    """The image bytes of the current request, and whether the client sent a batch."""
    kind = request.mimetype
    if kind == "application/json" or kind.endswith("+json"):
        body = request.get_data(cache=False)
        if not body:
            raise ProjectError("empty request body: send {\"image\": \"<base64>\"}")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise ProjectError(f"malformed JSON ({error})") from None
        if isinstance(payload, dict) and "images" in payload:
            items = payload["images"]
            if not isinstance(items, list) or not items:
                raise ProjectError("'images' must be a non-empty list of base64 strings")
            check_batch(len(items), params)
            return [decode_base64(item, f"images[{index}]") for index, item in enumerate(items)], True
        if isinstance(payload, dict) and "image" in payload:
            return [decode_base64(payload["image"], "image")], False
        raise ProjectError("the JSON body needs an 'image' field (a base64 image) or an 'images' list")
    if kind == "multipart/form-data":
        files = request.files.getlist("image")
        if not files:
            raise ProjectError("the multipart upload needs a file in the field 'image'")
        check_batch(len(files), params)
        return [upload.read() for upload in files], len(files) > 1
    if kind.startswith("image/") or kind == "application/octet-stream":
        body = request.get_data(cache=False)
        if not body:
            raise ProjectError("empty request body: send the image bytes")
        return [body], False
    if not request.content_length and not kind:
        raise ProjectError("empty request body: send JSON {\"image\": \"<base64>\"}, a multipart upload or image bytes")
    raise ProjectError(f"unsupported Content-Type {kind or '(none)'!r}: send application/json, multipart/form-data, "
                   f"or image bytes as image/* or application/octet-stream", 415)


def check_batch(count, params):
    if count > params.max_batch:
        raise ProjectError(f"{count} images in one request is over the limit of max_batch={params.max_batch}")


def reply_item(result):
    return {"prediction": result["text"], "prediction_ignore_case": result["text_ignore_case"],
            "confidences": [round(c, 4) for c in result["confidences"]],
            "confidences_ignore_case": [round(c, 4) for c in result["confidences_ignore_case"]],
            "confidence": round(result["confidence"], 4), "unsure": result["unsure"]}


def create_app(params=None, predictor=None):
    """The Flask app. Without `predictor`, loads the checkpoint `params` name (a missing or unfit one
    stops the program with a one-line error); without `params`, the defaults of parameters.py."""
    params = params if params is not None else make_parameters()
    if predictor is None:
        predictor = load_model_or_exit(params)
        use_predict_threads(params)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = params.max_upload_bytes
    app.json.sort_keys = False  # keep "prediction" first, as clients print it
    trained = predictor.trained
    health = {
        "status": "ok", "backend": params.backend, "device": str(predictor.device),
        "model": {"checkpoint": predictor.checkpoint, "parameters": predictor.parameters,
                  "preset": trained.model_preset},
        "charset": predictor.charset.chars, "length": predictor.charset.length,
        "image_size": {"width": predictor.width, "height": predictor.height}, "ignore_case": trained.ignore_case,
        "limits": {"max_upload_bytes": params.max_upload_bytes, "max_image_pixels": params.max_image_pixels,
                   "max_batch": params.max_batch},
    }

    @app.get("/")
    def page():
        return PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/health")
    def health_route():
        return jsonify(health)

    @app.post("/predict")
    def predict_route():
        datas, batch = read_images(params)
        start = time.perf_counter()
        images = []
        for index, data in enumerate(datas):
            try:
                images.append(open_image(data, params.max_image_pixels))
            except ImageError as error:
                raise ProjectError(f"images[{index}]: {error}" if batch else str(error), error.status) from None
        results = predict(predictor, images)
        elapsed = round((time.perf_counter() - start) * 1000, 3)
        if batch:
            return jsonify(results=[reply_item(result) for result in results], count=len(results), ms=elapsed)
        item = reply_item(results[0])
        return jsonify(prediction=item["prediction"], predition=item["prediction"],
                       **{key: value for key, value in item.items() if key != "prediction"}, ms=elapsed)

    @app.errorhandler(ProjectError)
    def refused(error):  # a request the API refuses (or a bad image): its message, its status
        return jsonify(error=str(error)), error.status

    @app.errorhandler(HTTPException)
    def http_error(error):
        if error.code == 413:
            message = f"request body over the limit of max_upload_bytes={params.max_upload_bytes} bytes"
        elif error.code == 404:
            message = f"no route {request.path}: the routes are GET /, GET /health and POST /predict"
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

    return app


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    if params.server not in SERVERS:
        fail(f"--server must be one of {', '.join(SERVERS)}, got {params.server!r}")
    app = create_app(params)
    if params.server == "waitress":
        from waitress import serve  # only the production server needs it
        # waitress refuses far larger bodies itself, before buffering them; moderately large ones
        # reach the app, which answers with its JSON 413.
        serve(app, host=params.host, port=params.port, threads=params.server_threads,
              max_request_body_size=4 * params.max_upload_bytes)
    else:
        app.run(host=params.host, port=params.port, debug=False)


if __name__ == "__main__":
    run_main(main)
