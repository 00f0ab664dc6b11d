"""The HTTP API, served for real by waitress on loopback with the tiny trained model.

Good requests in every accepted shape (including the original client's data-URL JSON and its
misspelt reply key), every kind of bad request answered with its JSON error while the server keeps
working, the limits on the work of one request (pixels, concurrency, JSON depth), the API key, the
rate limit and the security headers, the upload page in headless Chromium under its Content-Security-
Policy, and the production server as api_demo.py starts it.
"""
import base64
import collections
import contextlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
import waitress
from PIL import Image
from waitress import wasyncore

from dataset import image_names
from parameters import make_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


LIMITS = {"max_upload_bytes": 200_000, "max_image_pixels": 1_000_000, "max_batch": 4,
          "max_request_pixels": 2_000_000}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextlib.contextmanager
def running_server(app, threads=4):
    """Serve `app` with waitress on a free loopback port in a background thread; yields the port."""
    socket_map = {}
    server = waitress.create_server(app, map=socket_map, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        # Closed from the server's own loop (a thunk it runs when woken): closed from here, the sockets could
        # vanish under its select(). With the listener and keep-alive connections gone, run() returns.
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))
        except OSError:  # its wake-up pipe already closed (EBADF, once in a full run, cause not found): from here
            wasyncore.close_all(socket_map)
        thread.join(10)
        server.task_dispatcher.shutdown()


def call(port, method, path, body=None, headers=None, chunked=False):
    """(status, headers (case-insensitive names), body bytes) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            connection.request(method, path, body=iter(body), headers=headers or {}, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()  # headers: case-insensitive
    finally:
        connection.close()


def post_json(port, payload):
    status, _, body = call(port, "POST", "/predict", json.dumps(payload).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def multipart(fields):
    """A multipart/form-data body from [(field, file name, bytes)]: (body, content type)."""
    boundary = "----captcha-ocr-test-boundary"
    parts = []
    for field, name, data in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode(errors="surrogateescape") + data
                     + b"\r\n")  # surrogateescape: a file name may be bytes that are not UTF-8
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def webp_bytes(width, height):
    """A blank lossless WebP: a few hundred bytes that decode to width x height pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()


def check_security_headers(headers):
    """The headers every response carries, or what is missing."""
    policy = headers.get("Content-Security-Policy", "")
    wanted = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
    missing = [f"{name}: {value}" for name, value in wanted.items() if headers.get(name) != value]
    return missing + [part for part in ("default-src 'none'", "frame-ancestors 'none'") if part not in policy]


@pytest.fixture(scope="module")
def predictor(tiny_run):
    from predictor import load_model
    return load_model(tiny_run["checkpoint"])


@contextlib.contextmanager
def serving(predictor, **settings):
    """A server of the tiny model with `settings` over LIMITS, on loopback: yields its port."""
    from api_demo import create_app
    with running_server(create_app(make_parameters({**LIMITS, **settings}), predictor)) as port:
        yield port


@pytest.fixture(scope="module")
def service(tiny_run):
    """The API of the tiny model (with small limits), plus a route that fails, served on loopback."""
    from api_demo import create_app
    params = make_parameters({**LIMITS, "checkpoint": tiny_run["checkpoint"]})
    app = create_app(params)

    @app.get("/fail")
    def fail_on_purpose():  # a real unexpected exception inside a view, to check the 500 handler
        raise RuntimeError("secret internal detail")

    folder = tiny_run["params"].test_dir
    names = image_names(folder)[:3]
    files = [os.path.join(folder, name) for name in names]
    images = [open(path, "rb").read() for path in files]
    with running_server(app) as port:
        yield {"port": port, "files": files, "images": images}


def test_health(service, tiny_run):
    status, headers, body = call(service["port"], "GET", "/health")
    health = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert health["status"] == "ok" and health["backend"] == "torch"
    assert health["model"]["checkpoint"] == "best.pt" and health["model"]["parameters"] > 1000
    assert "/" not in body.decode() and str(tiny_run["root"]) not in body.decode()  # no path of the server
    assert health["charset"] == tiny_run["params"].charset and health["length"] == 4
    assert health["image_size"] == {"width": 64, "height": 24}
    assert health["limits"]["max_batch"] == LIMITS["max_batch"]
    assert health["limits"]["max_request_pixels"] == LIMITS["max_request_pixels"] and not health["api_key_required"]


def test_original_client_request_and_every_accepted_shape(service):
    port, image = service["port"], service["images"][0]
    encoded = base64.b64encode(image).decode()
    status, reply = post_json(port, {"image": "data:image/jpeg;base64," + encoded})
    assert status == 200
    text = reply["prediction"]
    assert reply["predition"] == text and len(text) == 4
    assert reply["prediction_ignore_case"] == text.lower()
    assert len(reply["confidences"]) == 4 and all(0 < c <= 1 for c in reply["confidences"])
    assert reply["confidence"] == pytest.approx(sum(reply["confidences"]) / 4, abs=1e-3)
    assert reply["unsure"] == (min(reply["confidences_ignore_case"]) < 0.8)  # unsure_below's default

    assert post_json(port, {"image": encoded})[1]["prediction"] == text  # no data: prefix
    urlsafe = base64.urlsafe_b64encode(image).decode().rstrip("=")  # URL-safe alphabet, no padding
    assert post_json(port, {"image": urlsafe})[1]["prediction"] == text
    for kind in ("image/jpeg", "application/octet-stream"):
        status, _, body = call(port, "POST", "/predict", image, {"Content-Type": kind})
        assert status == 200 and json.loads(body)["prediction"] == text
    body, kind = multipart([("image", "captcha.jpg", image)])
    status, _, answer = call(port, "POST", "/predict", body, {"Content-Type": kind})
    assert status == 200 and json.loads(answer)["prediction"] == text
    png = png_bytes(Image.open(io.BytesIO(image)))
    assert post_json(port, {"image": base64.b64encode(png).decode()})[1]["prediction"] == text


def test_batches(service):
    port, images = service["port"], service["images"]
    singles = [post_json(port, {"image": base64.b64encode(image).decode()})[1]["prediction"] for image in images]
    status, reply = post_json(port, {"images": [base64.b64encode(image).decode() for image in images]})
    assert status == 200 and reply["count"] == len(images)
    assert [item["prediction"] for item in reply["results"]] == singles
    assert all(len(item["confidences"]) == 4 for item in reply["results"])
    body, kind = multipart([("image", f"{index}.jpg", image) for index, image in enumerate(images)])
    status, _, answer = call(port, "POST", "/predict", body, {"Content-Type": kind})
    assert status == 200 and [item["prediction"] for item in json.loads(answer)["results"]] == singles


def bad_requests(image):
    """(what, method, path, body, headers, expected status, words in the error) of every refusal."""
    encoded = base64.b64encode(image).decode()
    as_json = {"Content-Type": "application/json"}
    wide = png_bytes(Image.new("RGB", (1500, 1000), "white"))  # 1.5 M pixels, a few KB of PNG
    no_image_field, _ = multipart([("file", "captcha.jpg", image)])
    return [
        ("malformed JSON", "POST", "/predict", b'{"image": "abc', as_json, 400, "malformed JSON"),
        ("JSON not an object", "POST", "/predict", b"[1, 2]", as_json, 400, "'image'"),
        ("missing field", "POST", "/predict", json.dumps({"img": encoded}).encode(), as_json, 400, "'image'"),
        ("field of the wrong type", "POST", "/predict", b'{"image": 5}', as_json, 400, "base64 string"),
        ("bad base64", "POST", "/predict", b'{"image": "data:image/jpeg;base64,@@not base64!"}', as_json, 400,
         "not valid base64"),
        ("empty image string", "POST", "/predict", b'{"image": "data:image/png;base64,"}', as_json, 400, "empty"),
        ("base64 of text", "POST", "/predict",
         json.dumps({"image": base64.b64encode(b"hello, not a picture").decode()}).encode(), as_json, 400,
         "not an image"),
        ("truncated image", "POST", "/predict", image[:len(image) // 3], {"Content-Type": "image/jpeg"}, 400,
         "image"),
        ("raw bytes not an image", "POST", "/predict", b"GIF89a but nothing else", {"Content-Type": "image/gif"}, 400,
         "not an image"),
        ("empty raw body", "POST", "/predict", b"", {"Content-Type": "image/png"}, 400, "empty"),
        ("empty JSON body", "POST", "/predict", b"", as_json, 400, "empty"),
        ("empty body, no type", "POST", "/predict", b"", {}, 400, "empty"),
        ("JSON nested 100,000 deep", "POST", "/predict", b"[" * 100_000, as_json, 400, "nested too deeply"),
        ("JSON object nested deep", "POST", "/predict", b'{"image": ' * 15_000, as_json, 400, "nested too deeply"),
        ("empty batch", "POST", "/predict", b'{"images": []}', as_json, 400, "non-empty list"),
        ("batch too large", "POST", "/predict", json.dumps({"images": [encoded] * 5}).encode(), as_json, 400,
         "max_batch=4"),
        ("bad item in a batch", "POST", "/predict", json.dumps({"images": [encoded, "AAAA"]}).encode(), as_json, 400,
         "images[1]"),
        ("multipart without an image field", "POST", "/predict", no_image_field,
         {"Content-Type": multipart([])[1]}, 400, "needs a file in the field 'image' (it has 'file')"),
        ("multipart of 1,001 parts", "POST", "/predict", multipart([("image", "c.jpg", b"x")] * 1001)[0],
         {"Content-Type": multipart([])[1]}, 413, "the multipart form has too many parts (at most 1000"),
        ("a file name that is not UTF-8", "POST", "/predict",
         multipart([("image", "\udcff\udcfe.png", image)])[0], {"Content-Type": multipart([])[1]}, 400,
         "with a UTF-8 file name"),
        ("unsupported content type", "POST", "/predict", b"hello", {"Content-Type": "text/plain"}, 415,
         "unsupported Content-Type"),
        ("body over max_upload_bytes", "POST", "/predict", b"\xff" * 200_001, {"Content-Type": "image/jpeg"}, 413,
         "max_upload_bytes"),
        ("image over max_image_pixels", "POST", "/predict", wide, {"Content-Type": "image/png"}, 413, "1500x1000"),
        ("unknown route", "GET", "/nope", None, {}, 404, "no route /nope"),
        ("wrong method", "GET", "/predict", None, {}, 405, "GET is not allowed"),
        ("wrong method on health", "DELETE", "/health", None, {}, 405, "not allowed"),
        ("unexpected exception", "GET", "/fail", None, {}, 500, "internal error"),
    ]


def test_every_bad_request_gets_its_json_error_and_the_server_keeps_answering(service):
    port, image = service["port"], service["images"][0]
    failures = []
    for what, method, path, body, headers, status, words in bad_requests(image):
        got, response_headers, answer = call(port, method, path, body, headers)
        text = answer.decode("utf-8", "replace")
        try:
            error = json.loads(answer)["error"]
        except (ValueError, KeyError):
            error = None
        if (got != status or response_headers.get("Content-Type") != "application/json" or error is None
                or words not in error or "Traceback" in text or "secret" in text):
            failures.append(f"{what}: expected {status} with {words!r}, got {got}: {text[:200]}")
        if check_security_headers(response_headers):
            failures.append(f"{what}: headers missing {check_security_headers(response_headers)}")
    assert not failures, "\n".join(failures)
    status, _, answer = call(port, "GET", "/predict")
    assert "POST" in json.loads(answer)["error"]
    status, reply = post_json(port, {"image": base64.b64encode(image).decode()})
    assert status == 200 and len(reply["prediction"]) == 4


def test_chunked_body_over_the_limit_is_refused(service):
    status, _, answer = call(service["port"], "POST", "/predict", [b"\xff" * 50_000] * 5,
                             {"Content-Type": "application/octet-stream"}, chunked=True)
    assert status == 413 and "max_upload_bytes" in json.loads(answer)["error"]
    status, _, answer = call(service["port"], "POST", "/predict", [service["images"][0]],
                             {"Content-Type": "image/jpeg"}, chunked=True)
    assert status == 200 and len(json.loads(answer)["prediction"]) == 4


def test_pixels_of_a_batch_are_budgeted_from_the_headers_before_decoding(service):
    """Each image within max_image_pixels (1 M), together over max_request_pixels (2 M): 413 at once.
    The last image's pixel data is cut off, so decoding it would fail (400): the 413 shows nothing was decoded."""
    port, big = service["port"], base64.b64encode(webp_bytes(1000, 1000)).decode()
    cut = base64.b64encode(png_bytes(Image.new("RGB", (1000, 1000), "white"))[:60]).decode()
    status, reply = post_json(port, {"images": [big, big, cut]})
    assert status == 413 and "3000000 pixels" in reply["error"] and "max_request_pixels=2000000" in reply["error"]
    status, reply = post_json(port, {"images": [big, cut]})  # within the budget: decoded, and the cut one fails
    assert status == 400 and "images[1]" in reply["error"] and "cannot decode" in reply["error"]
    status, reply = post_json(port, {"images": [big, big]})  # exactly the budget
    assert status == 200 and reply["count"] == 2


def refusals_while_held(port, slow_body, small_body):
    """Send small reads while one slow batch is sent and read: the 503 answers (headers, JSON) of either kind
    (whichever holds the only slot first, the other is refused)."""
    answers = []

    def post(body):
        status, headers, answer = call(port, "POST", "/predict", json.dumps(body).encode(),
                                       {"Content-Type": "application/json"})
        assert status in (200, 503), answer
        answers.append((status, headers, answer))

    holder = threading.Thread(target=post, args=(slow_body,))
    holder.start()
    while holder.is_alive() and not any(status == 503 for status, _, _ in answers):
        post(small_body)
    holder.join()
    return [(headers, json.loads(answer)) for status, headers, answer in answers if status == 503]


def test_requests_over_max_concurrent_are_refused_at_once(predictor, service):
    """max_concurrent=1: while a batch of large images is decoded and read, a small read is refused with 503
    (or, when the small read holds the slot first, the batch is). PNG: its decoder lets other threads run
    meanwhile. Clients and server share this process, so a try can end before two requests meet: three tries."""
    large = base64.b64encode(png_bytes(Image.new("RGB", (2000, 2000), "white"))).decode()
    small = {"image": base64.b64encode(service["images"][0]).decode()}
    settings = {"max_concurrent": 1, "max_image_pixels": 4_000_000, "max_request_pixels": 32_000_000,
                "max_batch": 8, "max_upload_bytes": 1_000_000}
    with serving(predictor, **settings) as port:
        for _ in range(3):
            refusals = refusals_while_held(port, {"images": [large] * 8}, small)
            if refusals:
                break
        assert refusals, "no request was refused while another held the only slot"
        headers, reply = refusals[0]
        assert headers["Retry-After"] == "1" and "max_concurrent=1" in reply["error"]
        assert not check_security_headers(headers)
        status, reply = post_json(port, {"images": [large] * 8})  # alone, the batch is read
        assert status == 200 and reply["count"] == 8 and post_json(port, small)[0] == 200


def test_api_key_from_the_setting_or_the_environment(predictor, service, monkeypatch):
    image = json.dumps({"image": base64.b64encode(service["images"][0]).decode()}).encode()
    as_json = {"Content-Type": "application/json"}
    with serving(predictor, api_key="s3cret key") as port:
        for headers in ({}, {"X-API-Key": "s3cret"}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret key"}):
            status, answer_headers, body = call(port, "POST", "/predict", image, {**as_json, **headers})
            assert status == 401 and "API key" in json.loads(body)["error"], headers
            assert answer_headers["WWW-Authenticate"].startswith("Bearer") and not check_security_headers(answer_headers)
        for headers in ({"X-API-Key": "s3cret key"}, {"Authorization": "Bearer s3cret key"}):
            status, _, body = call(port, "POST", "/predict", image, {**as_json, **headers})
            assert status == 200 and len(json.loads(body)["prediction"]) == 4
        status, _, body = call(port, "GET", "/health")  # open to health checks; it says a key is needed
        assert status == 200 and json.loads(body)["api_key_required"] is True
        page = call(port, "GET", "/")[2].decode()
        assert 'id="key"' in page and 'autocomplete="off" hidden' not in page  # the page shows its key field
    monkeypatch.setenv("CAPTCHA_API_KEY", "from-the-environment")
    with serving(predictor) as port:
        assert call(port, "POST", "/predict", image, as_json)[0] == 401
        assert call(port, "POST", "/predict", image, {**as_json, "X-API-Key": "from-the-environment"})[0] == 200
    monkeypatch.delenv("CAPTCHA_API_KEY")
    with serving(predictor) as port:
        assert call(port, "POST", "/predict", image, as_json)[0] == 200
        assert 'autocomplete="off" hidden' in call(port, "GET", "/")[2].decode()  # no key field without a key


def test_rate_limit_per_client(predictor, service):
    image = json.dumps({"image": base64.b64encode(service["images"][0]).decode()}).encode()
    as_json = {"Content-Type": "application/json"}
    with serving(predictor, rate_limit=3) as port:  # 3 a minute: one more token every 20 s
        assert [call(port, "POST", "/predict", image, as_json)[0] for _ in range(3)] == [200] * 3
        status, headers, body = call(port, "POST", "/predict", image, as_json)
        assert status == 429 and "rate_limit=3" in json.loads(body)["error"]
        assert 1 <= int(headers["Retry-After"]) <= 20 and not check_security_headers(headers)
        assert call(port, "GET", "/health")[0] == 200  # only reads are limited


def walk_requests(image):
    """(method, path, status) -> (body, headers) of a request the key-guarded, rate-limited server of
    test_the_openapi_document_validates_and_describes_the_live_server answers with that status."""
    as_json, key = {"Content-Type": "application/json"}, {"X-API-Key": "k"}
    one = json.dumps({"image": base64.b64encode(image).decode()}).encode()
    return {
        ("GET", "/", 200): (None, {}), ("GET", "/health", 200): (None, {}), ("GET", "/openapi.json", 200): (None, {}),
        ("POST", "/predict", 200): (one, {**as_json, **key}),
        ("POST", "/predict", 400): (b'{"image": "not base64!"}', {**as_json, **key}),
        ("POST", "/predict", 401): (one, as_json),
        ("POST", "/predict", 413): (b"x" * (LIMITS["max_upload_bytes"] + 1), {"Content-Type": "image/png", **key}),
        ("POST", "/predict", 415): (b"hello", {"Content-Type": "text/plain", **key}),
        ("GET", "/metrics", 200): (None, key), ("GET", "/metrics", 401): (None, {}),
    }


def test_the_openapi_document_validates_and_describes_the_live_server(predictor, service):
    from openapi_schema_validator import OAS31Validator
    from openapi_spec_validator import validate
    recipes = walk_requests(service["images"][0])
    with serving(predictor, api_key="k", rate_limit=20, metrics=True) as port:
        status, headers, body = call(port, "GET", "/openapi.json")
        document = json.loads(body)
        validate(document)  # a valid OpenAPI 3.1 document
        walked = set()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                assert operation["security"] if path in ("/predict", "/metrics") else "security" not in operation
                for status in map(int, operation["responses"]):
                    walked.add((method.upper(), path, status))
                    if (method.upper(), path, status) not in recipes:
                        continue
                    body, headers = recipes[(method.upper(), path, status)]
                    answer, answer_headers, content = call(port, method.upper(), path, body, headers)
                    assert answer == status, (method, path, status, content[:200])
                    kind, = operation["responses"][str(status)]["content"]
                    assert answer_headers["Content-Type"].split(";")[0] == kind, (path, status)
                    schema = operation["responses"][str(status)]["content"][kind]["schema"]
                    OAS31Validator(schema).validate(json.loads(content) if kind == "application/json" else
                                                    content.decode())
        # 429: the 21st read within the minute; 500 and 503 need a fault and two requests meeting (tests above)
        for _ in range(20):
            answer, _, content = call(port, "POST", "/predict", *recipes[("POST", "/predict", 200)])
            if answer == 429:
                break
        assert answer == 429 and OAS31Validator(document["paths"]["/predict"]["post"]["responses"]["429"]["content"]
                                                ["application/json"]["schema"]).is_valid(json.loads(content))
        assert walked - set(recipes) == {("POST", "/predict", 429), ("POST", "/predict", 500), ("POST", "/predict", 503)}
        assert set(recipes) <= walked  # every route the server has is described
    with serving(predictor) as port:  # without a key or metrics: no /metrics, no security
        document = json.loads(call(port, "GET", "/openapi.json")[2])
        assert "/metrics" not in document["paths"] and "security" not in document["paths"]["/predict"]["post"]
        assert document["paths"]["/predict"]["post"]["requestBody"]["content"].keys() == {
            "application/json", "multipart/form-data", "application/octet-stream", "image/*"}


def test_metrics_count_requests_behind_the_key_and_are_absent_without_the_flag(predictor, service):
    one = json.dumps({"image": base64.b64encode(service["images"][0]).decode()}).encode()
    as_json = {"Content-Type": "application/json"}
    with serving(predictor, metrics=True, api_key="k") as port:
        assert call(port, "POST", "/predict", one, {**as_json, "X-API-Key": "k"})[0] == 200
        assert call(port, "POST", "/predict", b"{}", {**as_json, "X-API-Key": "k"})[0] == 400
        assert call(port, "GET", "/metrics")[0] == 401
        status, headers, body = call(port, "GET", "/metrics", headers={"Authorization": "Bearer k"})
        text = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert 'captcha_requests_total{route="/predict",status="200"} 1.0' in text
        assert 'captcha_requests_total{route="/predict",status="400"} 1.0' in text
        assert 'captcha_requests_total{route="/metrics",status="401"} 1.0' in text
        assert "captcha_images_read_total 1.0" in text and "captcha_requests_in_flight 1.0" in text  # this one
        assert 'captcha_request_seconds_count{route="/predict"} 2.0' in text and "captcha_model_info{" in text
    with serving(predictor) as port:
        status, _, body = call(port, "GET", "/metrics")
        assert status == 404 and "the routes are GET /, GET /health, GET /openapi.json and POST /predict" in \
            json.loads(body)["error"]


def test_rate_limiter_remembers_a_bounded_number_of_clients():
    from api_demo import RateLimiter
    limiter = RateLimiter(2)
    limiter.MAX_CLIENTS = 50
    assert [limiter.wait("a") for _ in range(2)] == [0, 0] and 29 < limiter.wait("a") <= 30
    for index in range(1000):
        assert limiter.wait(f"10.0.{index // 256}.{index % 256}") == 0
    assert len(limiter.buckets) == 50 and "a" not in limiter.buckets  # the oldest forgotten, not the memory grown


def test_security_headers_on_every_route(service):
    port = service["port"]
    image = json.dumps({"image": base64.b64encode(service["images"][0]).decode()}).encode()
    for method, path, body, headers in (("GET", "/", None, {}), ("GET", "/health", None, {}),
                                        ("POST", "/predict", image, {"Content-Type": "application/json"})):
        status, answer_headers, _ = call(port, method, path, body, headers)
        assert status == 200 and not check_security_headers(answer_headers), (path, answer_headers)
    policy = call(port, "GET", "/")[1]["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "script-src 'sha256-" in policy


needs_chromium = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                    reason="chromium is absent")


@contextlib.contextmanager
def chromium(tmp_path):
    """A headless Chromium driven by selenium, keeping its console log (where CSP violations appear)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def read_on_page(driver, path, key=None):
    """Choose `path` on the upload page (and type `key`), press the button: the prediction or error shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "file").send_keys(path)
    if key is not None:
        driver.find_element(By.ID, "key").clear()
        driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "read").click()
    shown = (lambda d: d.find_element(By.ID, "prediction").text.strip() or d.find_element(By.ID, "error").text)
    WebDriverWait(driver, 30).until(shown)
    return driver.find_element(By.ID, "prediction").text.strip(), driver.find_element(By.ID, "error").text


def policy_violations(driver):
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


@pytest.mark.slow
@needs_chromium
def test_upload_page_in_headless_chromium(service, tmp_path):
    from selenium.webdriver.common.by import By

    port, path = service["port"], service["files"][1]
    expected = post_json(port, {"image": base64.b64encode(service["images"][1]).decode()})[1]
    with chromium(tmp_path) as driver:
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.title == "captcha-ocr" and not driver.find_element(By.ID, "key").is_displayed()
        assert read_on_page(driver, path) == (expected["prediction"], "")
        unsure = driver.find_element(By.ID, "unsure").text
        assert unsure.startswith("unsure") if expected["unsure"] else unsure == ""
        assert ("unsure" in driver.find_element(By.ID, "prediction").get_attribute("class")) == expected["unsure"]
        rows = driver.find_elements(By.CSS_SELECTOR, "#confidences tr")
        assert len(rows) == 4
        shown = [float(row.find_elements(By.TAG_NAME, "td")[2].text.rstrip("%")) for row in rows]
        assert shown == pytest.approx([100 * c for c in expected["confidences"]], abs=0.051)
        bar = rows[0].find_element(By.CLASS_NAME, "bar")
        assert bar.size["width"] > 0 and bar.value_of_css_property("background-color") == "rgba(51, 170, 119, 1)"
        assert not policy_violations(driver)  # the page's style, script and preview all within its policy
        screenshot = tmp_path / "upload_page.png"
        driver.save_screenshot(str(screenshot))
    with Image.open(screenshot) as image:
        gray = image.convert("L")
        assert gray.size[0] >= 400 and len(gray.getcolors(256)) > 20  # text, bars and the captcha drawn
        assert gray.getextrema()[0] < 80  # dark text is on the page


@pytest.mark.slow
@needs_chromium
def test_upload_page_sends_the_api_key(predictor, service, tmp_path):
    from selenium.webdriver.common.by import By

    path = service["files"][1]
    expected = post_json(service["port"], {"image": base64.b64encode(service["images"][1]).decode()})[1]
    with serving(predictor, api_key="page-key") as port, chromium(tmp_path) as driver:
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.find_element(By.ID, "key").is_displayed()
        prediction, error = read_on_page(driver, path)
        assert prediction == "" and "API key" in error
        assert read_on_page(driver, path, key="page-key") == (expected["prediction"], "")
        assert not policy_violations(driver)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port):
    """The local addresses (hex, as /proc/net/tcp* write them) of the sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    found.append(local.rsplit(":", 1)[0])
    return found


def abuse(port, pid):
    """4 clients post 10 batches each of 64 lossless WebP images of 2000x2000 (256 M pixels in 18 KB): the
    statuses they got, and how far the server's resident memory rose meanwhile, MB (sampled every 10 ms)."""
    body = json.dumps({"images": [base64.b64encode(webp_bytes(2000, 2000)).decode()] * 64}).encode()
    statuses = collections.Counter()

    def post():
        for _ in range(10):
            statuses[call(port, "POST", "/predict", body, {"Content-Type": "application/json"})[0]] += 1

    def resident():
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS:"))

    before = highest = resident()
    clients = [threading.Thread(target=post) for _ in range(4)]
    for client in clients:
        client.start()
    while any(client.is_alive() for client in clients):
        highest = max(highest, resident())
        time.sleep(0.01)
    return dict(statuses), max(highest, resident()) - before


def raw_request(port, headers):
    """POST /predict with these header lines and no body, on a raw socket: (head, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n\r\n")
        head, _, body = b"".join(iter(lambda: raw.recv(65536), b"")).partition(b"\r\n\r\n")
    return head, body


def check_slow_clients_cannot_lock_it_out(port, image):
    """300 sockets that send half a request's headers (waitress's own default held 100 connections) and 5
    uploads stalled part way: an ordinary request is still answered at once, and the silent sockets are
    closed once the server's idle_timeout (2 s here) has passed."""
    stuck = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(305)]
    try:
        for index, raw in enumerate(stuck):
            raw.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n" if index < 300 else
                        b"POST /predict HTTP/1.1\r\nContent-Type: image/jpeg\r\nContent-Length: 50000\r\n\r\n" + image)
        start = time.monotonic()
        assert post_json(port, {"image": base64.b64encode(image).decode()})[0] == 200
        assert time.monotonic() - start < 2.0
        time.sleep(5)  # idle_timeout, and waitress's sweep every second
        assert all(raw.recv(1) == b"" for raw in (stuck[0], stuck[-1]))  # closed by the server
    finally:
        for raw in stuck:
            raw.close()


@pytest.mark.slow
def test_production_server_as_api_demo_starts_it(tiny_run, tmp_path):
    """`python api_demo.py --server=waitress` as the README says: the default checkpoint model/best.pt of
    the working directory, loopback only, one start-up line, waitress's own refusals as JSON too, and
    batches of huge-pixel WebP images refused without the memory to decode them."""
    (tmp_path / "model").mkdir()
    shutil.copy(tiny_run["checkpoint"], tmp_path / "model" / "best.pt")
    port = free_port()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "api_demo.py"), "--server=waitress",
                                f"--port={port}", "--max_upload_bytes=100000", "--idle_timeout=2"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"api_demo.py exited:\n{process.stdout.read()}"
            try:
                status, _, body = call(port, "GET", "/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.3)
        assert process.stdout.readline().startswith(f"serving on http://127.0.0.1:{port} (waitress, 4 threads")
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1 only, no other interface
        assert status == 200 and json.loads(body)["model"]["checkpoint"] == "best.pt"
        image = open(os.path.join(tiny_run["params"].test_dir, image_names(tiny_run["params"].test_dir)[0]),
                     "rb").read()
        status, reply = post_json(port, {"image": "data:image/jpeg;base64," + base64.b64encode(image).decode()})
        assert status == 200 and reply["predition"] == reply["prediction"]
        # Refused by waitress from the headers, before it reads the body. (The headers alone are sent: a
        # client still sending a body it will not read may find the connection reset under it.)
        head, body = raw_request(port, b"Content-Type: image/jpeg\r\nContent-Length: 100001")
        assert head.startswith(b"HTTP/1.1 413") and b"Content-Type: application/json" in head
        assert b"X-Content-Type-Options: nosniff" in head and b"frame-ancestors 'none'" in head
        assert json.loads(body) == {"error": "request body over the limit of max_upload_bytes=100000 bytes"}
        head, body = raw_request(port, b"Content-Length: lots")  # a request waitress cannot parse
        assert head.startswith(b"HTTP/1.1 400") and b"Content-Type: application/json" in head
        assert "bad request" in json.loads(body)["error"]
        assert post_json(port, {"image": base64.b64encode(image).decode()})[0] == 200  # still serving
        statuses, growth = abuse(port, process.pid)
        assert statuses == {413: 40} and growth < 64, (statuses, growth)  # MB: no image opened, none decoded
        check_slow_clients_cannot_lock_it_out(port, image)
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()


@pytest.mark.slow
def test_missing_checkpoint_stops_start_up_with_one_line(script):
    result = script("api_demo.py", "--checkpoint=/nope.pt", "--port=1", check=False, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and "/nope.pt" in result.stderr


def test_unfit_checkpoints_stop_start_up_with_one_line(tiny_run, tmp_path, capsys):
    from api_demo import create_app
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("not a checkpoint")
    checkpoint = torch.load(tiny_run["checkpoint"], map_location="cpu", weights_only=True)
    checkpoint["params"]["stage_channels"] = [8, 8, 8]  # weights of another shape than the settings say
    other_shape = tmp_path / "other_shape.pt"
    torch.save(checkpoint, other_shape)
    for path, words in ((not_a_checkpoint, "not a readable checkpoint"), (other_shape, "does not fit")):
        with pytest.raises(SystemExit) as stopped:
            create_app(make_parameters({"checkpoint": str(path)}))
        assert stopped.value.code == 2
        message = capsys.readouterr().err
        assert message.startswith("error:") and words in message and message.strip().count("\n") == 0
