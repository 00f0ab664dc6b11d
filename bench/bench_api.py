"""HTTP latency, throughput and memory of the production server (waitress) on loopback.

    python bench/bench_api.py                                   # model_dir/best.pt, 20,000 requests
    python bench/bench_api.py --checkpoint=runs/big/best.pt --requests=5000 --clients=8 --server_threads=4
    python bench/bench_api.py --backend=onnx                    # onnxruntime on best.onnx (python export_onnx.py)
    python bench/bench_api.py --metrics                         # the server counting for /metrics

Starts `api_demo.py --server=waitress` on a free loopback port with the checkpoint, then sends the
original client's request ({"image": "data:image/jpeg;base64,..."} of a captcha drawn in the
checkpoint's style) over keep-alive connections: bench_rounds requests one after another (latency
p50/p95), then `requests` requests from `clients` concurrent clients, each its own connection
(throughput). Prints the error count and the server's resident memory (VmRSS) before and after.
The clients run on the same machine as the server and take part of its CPU.

    python bench/bench_api.py --abuse_run                       # the abuse run, 30 s
    python bench/bench_api.py --abuse_run --abuse_images=2      # abusive batches within max_request_pixels

The abuse run: `clients` clients post, for abuse_seconds, JSON batches of abuse_images blank lossless
WebP images of 2000x2000 pixels (64 of them: 18 KB claiming 256 M pixels), while one client reads
ordinary captchas one after another. Prints the server's peak memory (VmHWM, over its whole life, and
the highest VmRSS sampled during the run), the ordinary client's latency (alone first, then under the
abuse) and errors, and the statuses the abusive requests got.

    python bench/bench_api.py --slow_run                        # 500 slow-loris sockets, 20 stalled uploads

The slow-client run: slow_sockets sockets each send a request's headers one byte every 2 seconds, and
stalled_uploads sockets each declare a 100 KB body and stop after 1 KB (each opens again when the server
closes it), while `clients` ordinary clients read captchas for slow_seconds, a new connection each request.
Prints the ordinary clients' p50 and p99 latency and errors, and how many slow sockets were open.
"""
import base64
import collections
import http.client
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from PIL import Image  # noqa: E402

from bench_predict import percentiles, sample_captcha  # noqa: E402
from bench_settings import BenchParameters  # noqa: E402
from command_line import fail, parse_args  # noqa: E402
from errors import ProjectError  # noqa: E402
from predictor import checkpoint_path, load_model  # noqa: E402

START_TIMEOUT = 120  # seconds for the server to load the model and answer /health
WARM_UP = 200  # untimed requests before the measurements
# The settings the bench passes on to the server (not api_key or rate_limit: its clients send no key and
# share one address).
SERVER_KEYS = ("server_threads", "predict_threads", "backend", "max_upload_bytes", "max_image_pixels", "max_batch",
               "max_request_pixels", "max_concurrent", "max_connections", "idle_timeout", "metrics")
ABUSE_SIZE = 2000  # width and height of each abusive image, pixels
SLOW_BYTE_SECONDS = 2.0  # a slow-loris socket sends a byte this often: within the server's idle_timeout
SLOW_SETTLE = 5.0  # seconds the slow sockets get to connect before the ordinary clients start


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid, field="VmRSS"):
    """Resident memory of a process, MB, from /proc/PID/status (VmHWM: its peak so far)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    """One keep-alive connection that posts the same body and checks each answer."""

    def __init__(self, port, body):
        self.port, self.body = port, body
        self.headers = {"Content-Type": "application/json"}
        self.connection = None

    def post(self):
        """True when the server answered 200 with a prediction."""
        status, answer = self.send()
        try:
            return status == 200 and "prediction" in json.loads(answer)
        except ValueError:
            return False

    def send(self):
        """(HTTP status, body) of one request; ('no answer', b'') when the connection failed."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            self.connection.request("POST", "/predict", self.body, self.headers)
            response = self.connection.getresponse()
            answer = response.read()
            if response.will_close:
                self.close()
            return response.status, answer
        except (OSError, http.client.HTTPException):
            self.close()  # a fresh connection for the next request
            return "no answer", b""

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def start_server(params, checkpoint, port, log):
    command = [sys.executable, os.path.join(ROOT, "api_demo.py"), "--server=waitress", f"--checkpoint={checkpoint}",
               "--host=127.0.0.1", f"--port={port}", *(f"--{key}={getattr(params, key)}" for key in SERVER_KEYS)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            fail(f"the server stopped at start-up: {log.read().decode(errors='replace').strip()[-500:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    fail(f"the server did not answer /health within {START_TIMEOUT} s")


def throughput(port, body, total, clients):
    """(requests/s, per-request seconds, errors) of `total` requests from `clients` threads."""
    shares = [total // clients + (1 if index < total % clients else 0) for index in range(clients)]
    spent = [[] for _ in range(clients)]
    errors = [0] * clients
    start_line = threading.Barrier(clients + 1)

    def run(index):
        client = Client(port, body)
        start_line.wait()
        for _ in range(shares[index]):
            start = time.perf_counter()
            if not client.post():
                errors[index] += 1
            spent[index].append(time.perf_counter() - start)
        client.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return total / elapsed, [s for each in spent for s in each], sum(errors)


def timed_posts(client, rounds=0, until=0.0):
    """Posts one after another, `rounds` of them or until time.monotonic() passes `until`:
    (seconds of each, errors)."""
    spent, errors = [], 0
    while len(spent) < rounds or time.monotonic() < until:
        start = time.perf_counter()
        errors += not client.post()
        spent.append(time.perf_counter() - start)
    return spent, errors


def load_run(params, server, port, body):
    """Latency of one client, then throughput of `clients`: the report's lines."""
    client = Client(port, body)
    for _ in range(WARM_UP):
        client.post()
    rss_before = rss_mb(server.pid)
    spent, errors = timed_posts(client, max(1, params.bench_rounds))
    client.close()
    p50, p95 = percentiles(spent)
    rate, loaded, load_errors = throughput(port, body, max(1, params.requests), max(1, params.clients))
    loaded_p50, loaded_p95 = percentiles(loaded)
    rss_after = rss_mb(server.pid)
    return [f"single client, keep-alive   : p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({len(spent)} requests)",
            f"{f'{params.clients} concurrent clients':28s}: {rate:7.0f} requests/s   p50 {loaded_p50:7.2f} ms   "
            f"p95 {loaded_p95:7.2f} ms   ({params.requests} requests)",
            f"errors                      : {errors + load_errors}",
            f"server memory (VmRSS)       : {rss_before:.0f} MB after warm-up, {rss_after:.0f} MB after "
            f"{WARM_UP + len(spent) + params.requests} requests ({rss_after - rss_before:+.1f} MB)"]


def abusive_body(count):
    """JSON of `count` blank lossless WebP images of ABUSE_SIZE x ABUSE_SIZE pixels (a few hundred bytes each)."""
    buffer = io.BytesIO()
    Image.new("RGB", (ABUSE_SIZE, ABUSE_SIZE), "white").save(buffer, format="WEBP", lossless=True)
    return json.dumps({"images": [base64.b64encode(buffer.getvalue()).decode()] * count}).encode()


def abuse_run(params, server, port, body):
    """One client reading captchas, alone and then while `clients` clients post abusive batches: the lines."""
    client = Client(port, body)
    for _ in range(WARM_UP):
        client.post()
    alone, alone_errors = timed_posts(client, max(1, params.bench_rounds))
    rss_before = rss_mb(server.pid)
    abusive, stop, lock = abusive_body(params.abuse_images), threading.Event(), threading.Lock()
    statuses, peak = collections.Counter(), [rss_before]

    def abuse():
        abuser = Client(port, abusive)
        while not stop.is_set():
            status, _ = abuser.send()
            with lock:
                statuses[status] += 1
        abuser.close()

    def sample():  # VmHWM catches what falls between samples
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_mb(server.pid))

    threads = [threading.Thread(target=abuse) for _ in range(max(1, params.clients))] + [threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    spent, errors = timed_posts(client, until=time.monotonic() + params.abuse_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    client.close()
    (p50, p95), (alone_p50, alone_p95) = percentiles(spent), percentiles(alone)
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(), key=str))
    return [f"abuse: {params.clients} clients for {params.abuse_seconds:.0f} s, each posting {params.abuse_images} "
            f"lossless WebP images of {ABUSE_SIZE}x{ABUSE_SIZE} ({len(abusive)} bytes, "
            f"{params.abuse_images * ABUSE_SIZE ** 2 / 1e6:.0f} M pixels) a request",
            f"ordinary client alone       : p50 {alone_p50:7.2f} ms   p95 {alone_p95:7.2f} ms   "
            f"({len(alone)} requests, {alone_errors} errors)",
            f"ordinary client under abuse : p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({len(spent)} requests, "
            f"{errors} errors)",
            f"abusive requests            : {sum(statuses.values())} ({shown})",
            f"server memory               : peak {rss_mb(server.pid, 'VmHWM'):.0f} MB (VmHWM, whole life); "
            f"VmRSS {rss_before:.0f} MB before the abuse, at most {peak[0]:.0f} MB sampled during it"]


def slow_loris(port, stop, held):
    """A socket that sends a request's headers a byte at a time, one every SLOW_BYTE_SECONDS, forever (opened
    again when the server closes it); `held` counts those open."""
    headers = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                held.add(1)
                try:
                    for byte in itertools.cycle(headers):
                        sock.sendall(bytes([byte]))
                        if stop.wait(SLOW_BYTE_SECONDS):
                            return
                finally:
                    held.add(-1)
        except OSError:
            stop.wait(0.5)


def stalled_upload(port, stop, held):
    """A socket that declares a 100 KB body, sends 1 KB of it and stalls (opened again when closed)."""
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n")
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head + b"\xff" * 1024)
                held.add(1)
                try:
                    while not stop.wait(1.0) and not closed(sock):
                        pass
                finally:
                    held.add(-1)
        except OSError:
            stop.wait(0.5)


def closed(sock):
    """Whether the server has closed `sock` (a read that would not block returns nothing)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


class Counter:
    """A count that threads change."""

    def __init__(self):
        self.value, self.lock = 0, threading.Lock()

    def add(self, amount):
        with self.lock:
            self.value += amount


def slow_run(params, server, port, body):
    """`clients` ordinary clients, a new connection each request, while slow_sockets slow-loris sockets and
    stalled_uploads stalled uploads hold connections: the lines."""
    stop, held = threading.Event(), Counter()
    attackers = [threading.Thread(target=slow_loris, args=(port, stop, held)) for _ in range(params.slow_sockets)]
    attackers += [threading.Thread(target=stalled_upload, args=(port, stop, held))
                  for _ in range(params.stalled_uploads)]
    for thread in attackers:
        thread.start()
    time.sleep(SLOW_SETTLE)  # every slow socket connected and part way through its request
    at_start = held.value
    spent, errors = [[] for _ in range(params.clients)], [0] * params.clients
    until = time.monotonic() + params.slow_seconds

    def ordinary(index):
        while time.monotonic() < until:
            client = Client(port, body)
            start = time.perf_counter()
            errors[index] += not client.post()
            spent[index].append(time.perf_counter() - start)
            client.close()

    readers = [threading.Thread(target=ordinary, args=(index,)) for index in range(params.clients)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    at_end = held.value
    stop.set()
    for thread in attackers:
        thread.join()
    every = sorted(s for each in spent for s in each)
    p50, p99 = (every[min(len(every) - 1, int(share * len(every)))] * 1000 for share in (0.5, 0.99))
    return [f"slow clients: {params.slow_sockets} slow-loris sockets (a header byte every {SLOW_BYTE_SECONDS:g} s) "
            f"and {params.stalled_uploads} stalled uploads; {at_start} of their sockets open when the ordinary "
            f"clients started, {at_end} when they ended",
            f"{params.clients} ordinary clients, a new connection each request, for {params.slow_seconds:g} s: "
            f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(every)} requests, {sum(errors)} errors)",
            f"server memory (VmRSS)       : {rss_mb(server.pid):.0f} MB"]


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__, kind=BenchParameters)
    checkpoint = os.path.abspath(checkpoint_path(params))
    try:
        trained = load_model(checkpoint, params).trained  # a checkpoint, or an ONNX model (float or int8)
    except ProjectError as error:
        fail(f"{error}; the bench needs a trained checkpoint (--checkpoint=PATH)")
    _, _, jpeg = sample_captcha(trained)
    body = json.dumps({"image": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}).encode()
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = start_server(params, checkpoint, port, log)
        try:
            run = abuse_run if params.abuse_run else slow_run if params.slow_run else load_run
            report = run(params, server, port, body)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"\nwaitress, {params.server_threads} threads, backend {params.backend} with {params.predict_threads} "
          f"thread(s) per request; checkpoint "
          f"{checkpoint}; {os.cpu_count()} CPU cores shared by server and clients; body {len(body)} bytes")
    print(f"limits: max_request_pixels={params.max_request_pixels}, max_concurrent={params.max_concurrent}, "
          f"max_image_pixels={params.max_image_pixels}, max_batch={params.max_batch}")
    print("\n".join(report))


if __name__ == "__main__":
    main()
