"""The HTTP API's description: its routes, the request forms and answers of each, and the OpenAPI 3.1
document built from them (GET /openapi.json). api_demo.py registers its routes from ROUTES, reads the
request forms REQUEST_TYPES names and answers what the schemas say (tests/test_api.py validates live
answers against this document), so the description and the server cannot drift apart.
Plain data: serving with onnxruntime imports this module.
"""
import dataclasses

from captcha_ocr import __version__

JSON = "application/json"  # and any application/...+json
MULTIPART = "multipart/form-data"
RAW = ("application/octet-stream", "image/*")  # the image's bytes as the body
REQUEST_TYPES = (JSON, MULTIPART, *RAW)


@dataclasses.dataclass(frozen=True)
class Limits:
    """The bounds on the work one request may cause: the serving settings of the same names (their meanings and
    units are there); /health and the API's description show them, in this order."""
    max_upload_bytes: int
    max_image_pixels: int
    max_batch: int
    max_request_pixels: int
    max_concurrent: int
    rate_limit: int

    @classmethod
    def of(cls, settings):
        """The limits a run's settings (Parameters) set."""
        return cls(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(cls)})


def request_form(mimetype):
    """Which of REQUEST_TYPES' forms a request body of `mimetype` is sent in: JSON, MULTIPART, RAW or None."""
    if mimetype == JSON or (mimetype.startswith("application/") and mimetype.endswith("+json")):
        return JSON
    if mimetype == MULTIPART:
        return MULTIPART
    return RAW if mimetype == RAW[0] or mimetype.startswith(RAW[1].rstrip("*")) else None

# Each error status the service answers, and when (its body is always {"error": "..."}).
ERRORS = {
    400: "a malformed request: no image, bad base64 or JSON, an image that cannot be read, a batch over max_batch",
    401: "missing or wrong API key (when the server has one): send it as X-API-Key or Authorization: Bearer",
    404: "no such route",
    405: "a method the route does not take (the Allow header lists those it does)",
    413: "the body over max_upload_bytes, an image over max_image_pixels or the images over max_request_pixels",
    415: "an unsupported Content-Type",
    429: "over rate_limit reads a minute from this client (Retry-After says when to try again)",
    500: "an unexpected error (logged by the server, never shown)",
    503: "max_concurrent requests are being read already (Retry-After says when to try again)",
}


NUMBERS = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
           "description": "per character, 0-1"}
READ = {  # one captcha's answer (api_demo.reply_item)
    "type": "object", "additionalProperties": False,
    "required": ["prediction", "prediction_ignore_case", "confidences", "confidences_ignore_case", "confidence",
                 "unsure"],
    "properties": {
        "prediction": {"type": "string", "description": "the text read"},
        "prediction_ignore_case": {"type": "string", "description": "the text read with each letter's two cases "
                                                                    "summed"},
        "confidences": NUMBERS, "confidences_ignore_case": NUMBERS,
        "confidence": {"type": "number", "description": "the mean of confidences"},
        "unsure": {"type": "boolean", "description": "a character under unsure_below: a read to check"},
        "answer": {"type": ["integer", "null"], "description": "an arithmetic model's answer to the expression"},
        "answer_error": {"type": ["string", "null"], "description": "why there is no answer"},
    },
}
ONE = {**READ, "required": [*READ["required"], "ms"], "properties": {
    **READ["properties"], "ms": {"type": "number", "description": "milliseconds spent reading"},
    "predition": {"type": "string", "deprecated": True, "description": "prediction, under the old misspelt key"}}}
BATCH = {"type": "object", "additionalProperties": False, "required": ["results", "count", "ms"], "properties": {
    "results": {"type": "array", "items": READ}, "count": {"type": "integer"}, "ms": {"type": "number"}}}
ERROR = {"type": "object", "additionalProperties": False, "required": ["error"],
         "properties": {"error": {"type": "string", "description": "what was wrong, in one line"}}}
HEALTH = {"type": "object", "required": ["status", "model", "charset", "length", "image_size", "limits"],
          "properties": {
              "status": {"const": "ok"}, "backend": {"enum": ["torch", "onnx"]}, "device": {"type": "string"},
              "model": {"type": "object", "description": "checkpoint file name, parameters, preset, head"},
              "charset": {"type": "string"}, "length": {"type": "integer"}, "min_length": {"type": "integer"},
              "captcha_kind": {"type": "string"}, "ignore_case": {"type": "boolean"},
              "image_size": {"type": "object", "properties": {"width": {"type": "integer"},
                                                              "height": {"type": "integer"}}},
              "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
              "api_key_required": {"type": "boolean"}}}
BASE64 = {"type": "string", "contentEncoding": "base64", "description": "the image's bytes in base64 (a "
                                                                        "data:image/...;base64, prefix is fine)"}
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


@dataclasses.dataclass(frozen=True)
class Route:
    """One route: method and path, what it does, its answer when all is well ({content type: schema}), the
    other statuses it answers with, whether the API key guards it (when the server has one) and the name of
    its handler in api_demo.create_app."""
    method: str
    path: str
    summary: str
    reply: dict
    errors: tuple
    endpoint: str
    guarded: bool = False


TEXT = {"type": "string"}
ROUTES = (
    Route("GET", "/", "An upload page: pick a captcha file, see what the model reads", {"text/html": TEXT}, (),
          "page_route"),
    Route("GET", "/health", "The model and the limits: checkpoint name, charset, length, image size, ...",
          {JSON: HEALTH}, (), "health_route"),
    Route("GET", "/openapi.json", "This description of the API", {JSON: {"type": "object"}}, (), "openapi_route"),
    Route("POST", "/predict", "Read one captcha, or a batch of them", {JSON: {"oneOf": [ONE, BATCH]}},
          (400, 401, 413, 415, 429, 500, 503), "predict_route", guarded=True),
    Route("GET", "/metrics", "Counters of requests, latency, reads (Prometheus text format; with --metrics)",
          {"text/plain": TEXT}, (401,), "metrics_route", guarded=True),
)


def routes_text(routes=ROUTES):
    """'GET /, GET /health and POST /predict': the routes, for an error message."""
    names = [f"{route.method} {route.path}" for route in routes]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def predict_request(max_batch):
    """POST /predict's body: JSON, a multipart upload or the image's bytes."""
    batch = {"type": "array", "items": BASE64, "minItems": 1, "maxItems": max_batch}
    return {"required": True, "content": {
        JSON: {"schema": {"oneOf": [
            {"type": "object", "required": ["image"], "properties": {"image": BASE64}},
            {"type": "object", "required": ["images"], "properties": {"images": batch}}]}},
        MULTIPART: {"schema": {"type": "object", "required": ["image"], "properties": {"image": {
            "oneOf": [BINARY, {"type": "array", "items": BINARY, "maxItems": max_batch}],
            "description": "the captcha file; several `image` parts read a batch"}}}},
        **{kind: {"schema": BINARY} for kind in RAW}}}


def operation(route, limits, key_required):
    """One route's OpenAPI operation."""
    responses = {"200": {"description": "the answer", "content": {kind: {"schema": schema}
                                                                  for kind, schema in route.reply.items()}}}
    responses.update({str(status): {"description": ERRORS[status], "content": {JSON: {"schema": ERROR}}}
                      for status in route.errors})
    found = {"summary": route.summary, "operationId": route.endpoint, "responses": responses}
    if route.path == "/predict":
        found["requestBody"] = predict_request(limits.max_batch)
    if route.guarded and key_required:
        found["security"] = [{"apiKey": []}, {"bearer": []}]
    return found


def openapi_document(limits, routes, key_required):
    """The OpenAPI 3.1 document of the routes this server serves, with its Limits and whether it needs a key."""
    paths = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route, limits, key_required)
    return {
        "openapi": "3.1.0",
        "info": {"title": "captcha-ocr", "version": __version__,
                 "description": f"Reads text captchas. Limits: a body of at most {limits.max_upload_bytes} bytes, "
                                f"{limits.max_batch} images a request, {limits.max_image_pixels} pixels an image, "
                                f"{limits.max_request_pixels} a request. Every error is JSON {{\"error\": \"...\"}}."},
        "paths": paths,
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                                           "bearer": {"type": "http", "scheme": "bearer"}}},
    }
