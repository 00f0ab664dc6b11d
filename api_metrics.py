"""The HTTP service's metrics, in the Prometheus text format at GET /metrics (api_demo.py --metrics; off by
default, and then nothing here runs: no cost per request). Behind the API key when the server has one.

    captcha_requests_total{route, status}     requests answered
    captcha_request_seconds{route}            time to answer them (histogram)
    captcha_requests_in_flight                requests being answered now
    captcha_images_read_total                 captchas read
    captcha_unsure_reads_total                reads with a character under unsure_below
    captcha_model_load_seconds                time the model took to load at start-up
    captcha_model_info{checkpoint, ...}       the model served
"""
import os
import time

from flask import g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

# Reads take about a millisecond; a batch or a busy server, tens to hundreds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's counters, in a registry of their own (two apps in one process count apart)."""

    def __init__(self, predictor, backend, load_seconds):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("captcha_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=registry)
        self.latency = Histogram("captcha_request_seconds", "time to answer a request, by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("captcha_requests_in_flight", "requests being answered now", registry=registry)
        self.images = Counter("captcha_images_read", "captchas read", registry=registry)
        self.unsure = Counter("captcha_unsure_reads", "reads with a character under unsure_below", registry=registry)
        Gauge("captcha_model_load_seconds", "seconds the model took to load at start-up (0: loaded before)",
              registry=registry).set(load_seconds)
        Info("captcha_model", "the model served", registry=registry).info({
            "checkpoint": os.path.basename(predictor.checkpoint), "backend": backend,
            "charset": predictor.charset.chars, "length": str(predictor.charset.length),
            "image_size": f"{predictor.width}x{predictor.height}"})

    def install(self, app):
        """Count every request of `app` (the hooks run before its other before-request hooks)."""
        app.before_request_funcs.setdefault(None, []).insert(0, self.started)
        app.after_request(self.answered)

    def started(self):
        g.metrics_started = time.perf_counter()
        self.in_flight.inc()

    def answered(self, response):
        started = g.pop("metrics_started", None)
        if started is None:  # refused before this app's hooks ran
            return response
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"  # bounded label values
        self.requests.labels(route, str(response.status_code)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)
        self.in_flight.dec()
        return response

    def reads(self, results):
        """Count a request's reads."""
        self.images.inc(len(results))
        self.unsure.inc(sum(result["unsure"] for result in results))

    def page(self):
        return generate_latest(self.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}
