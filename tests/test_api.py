"""The HTTP API, served for real by waitress on loopback with the tiny trained model.

Good requests in every accepted shape (including the original client's data-URL JSON and its
misspelt reply key), every kind of bad request answered with its JSON error while the server keeps
working, the upload page in headless Chromium, and the production start-up commands.
"""
import base64
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

from parameters import make_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


LIMITS = {"max_upload_bytes": 200_000, "max_image_pixels": 1_000_000, "max_batch": 4}
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
        server.task_dispatcher.shutdown()
        wasyncore.close_all(socket_map)  # the listener and any keep-alive connections: run() returns
        thread.join(10)


def call(port, method, path, body=None, headers=None, chunked=False):
    """(status, headers, body bytes) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            connection.request(method, path, body=iter(body), headers=headers or {}, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
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
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


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
    names = sorted(os.listdir(folder))[:3]
    files = [os.path.join(folder, name) for name in names]
    images = [open(path, "rb").read() for path in files]
    with running_server(app) as port:
        yield {"port": port, "files": files, "images": images}


def test_health(service, tiny_run):
    status, headers, body = call(service["port"], "GET", "/health")
    health = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert health["status"] == "ok" and health["backend"] == "torch"
    assert health["model"]["checkpoint"] == tiny_run["checkpoint"] and health["model"]["parameters"] > 1000
    assert health["charset"] == tiny_run["params"].charset and health["length"] == 4
    assert health["image_size"] == {"width": 64, "height": 24}
    assert health["limits"]["max_batch"] == LIMITS["max_batch"]


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
        ("empty batch", "POST", "/predict", b'{"images": []}', as_json, 400, "non-empty list"),
        ("batch too large", "POST", "/predict", json.dumps({"images": [encoded] * 5}).encode(), as_json, 400,
         "max_batch=4"),
        ("bad item in a batch", "POST", "/predict", json.dumps({"images": [encoded, "AAAA"]}).encode(), as_json, 400,
         "images[1]"),
        ("multipart without an image field", "POST", "/predict", no_image_field,
         {"Content-Type": multipart([])[1]}, 400, "'image'"),
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


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)), reason="chromium is absent")
def test_upload_page_in_headless_chromium(service, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port, path = service["port"], service["files"][1]
    expected = post_json(port, {"image": base64.b64encode(service["images"][1]).decode()})[1]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.title == "captcha-ocr"
        driver.find_element(By.ID, "file").send_keys(path)
        driver.find_element(By.ID, "read").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "prediction").text.strip())
        assert driver.find_element(By.ID, "prediction").text.strip() == expected["prediction"]
        assert driver.find_element(By.ID, "error").text == ""
        unsure = driver.find_element(By.ID, "unsure").text
        assert unsure.startswith("unsure") if expected["unsure"] else unsure == ""
        assert ("unsure" in driver.find_element(By.ID, "prediction").get_attribute("class")) == expected["unsure"]
        rows = driver.find_elements(By.CSS_SELECTOR, "#confidences tr")
        assert len(rows) == 4
        shown = [float(row.find_elements(By.TAG_NAME, "td")[2].text.rstrip("%")) for row in rows]
        assert shown == pytest.approx([100 * c for c in expected["confidences"]], abs=0.051)
        screenshot = tmp_path / "upload_page.png"
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    with Image.open(screenshot) as image:
        gray = image.convert("L")
        assert gray.size[0] >= 400 and len(gray.getcolors(256)) > 20  # text, bars and the captcha drawn
        assert gray.getextrema()[0] < 80  # dark text is on the page


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_production_command_serves_the_default_checkpoint(tiny_run, tmp_path):
    """`waitress-serve --call api_demo:create_app` as documented: defaults read model/best.pt of the cwd."""
    (tmp_path / "model").mkdir()
    shutil.copy(tiny_run["checkpoint"], tmp_path / "model" / "best.pt")
    port = free_port()
    runner = os.path.join(os.path.dirname(sys.executable), "waitress-serve")
    process = subprocess.Popen([runner, "--threads=4", f"--listen=127.0.0.1:{port}", "--call", "api_demo:create_app"],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"waitress-serve exited:\n{process.stdout.read()}"
            try:
                status, _, body = call(port, "GET", "/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.3)
        assert status == 200 and json.loads(body)["model"]["checkpoint"] == os.path.join("model", "best.pt")
        image = open(os.path.join(tiny_run["params"].test_dir, sorted(os.listdir(tiny_run["params"].test_dir))[0]),
                     "rb").read()
        status, reply = post_json(port, {"image": "data:image/jpeg;base64," + base64.b64encode(image).decode()})
        assert status == 200 and reply["predition"] == reply["prediction"]
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()


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
