"""``python -m recbole_sasrec_ext serve --bundle DIR --port P``: the bundle as an HTTP JSON service.

``POST /recommend`` (``{"sequence": ["t1", "t2"], "k": 10}``, or a list of such objects: a list
of answers), ``POST /similar`` (``{"item": "t", "k": 10}``), ``GET /health``, ``GET /model`` (the
model card). Concurrent requests share forward passes (:mod:`.microbatch`). Requests are bounded
(:class:`~recbole_sasrec_ext.serving.requests.Limits`: body bytes, sequences per request, tokens
per sequence, k); every bad request is a 4xx with ``{"error": "one line"}`` and no traceback ever
reaches a client. SIGINT/SIGTERM stop accepting, finish the requests in flight, then exit.

Needs the ``serve`` extra: ``pip install .[serve]`` (starlette, an ASGI toolkit, and uvicorn, its
server; both small and maintained).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import asynccontextmanager

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.serving.backends import BACKENDS
from recbole_sasrec_ext.serving.microbatch import MicroBatcher
from recbole_sasrec_ext.serving.recommender import BundleRecommender, load
from recbole_sasrec_ext.serving.requests import LIMITS, Limits, parse_request


class BadRequest(Exception):
    """A client error: HTTP ``status`` and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _json_body(request, limits: Limits) -> object:
    """The decoded body, at most ``limits.max_body_bytes`` (413 beyond, 400 if not JSON)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limits.max_body_bytes):
        raise BadRequest(413, f"request body larger than {limits.max_body_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise BadRequest(413, f"request body larger than {limits.max_body_bytes} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not valid JSON ({str(exc).splitlines()[0][:80]})"
                         ) from None


def build_app(rec: BundleRecommender, limits: Limits = LIMITS, max_batch: int = 64,
              max_wait_ms: float = 2.0):
    """The ASGI application serving ``rec``."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    batcher = MicroBatcher(rec, max_batch, max_wait_ms)

    async def recommend(request):
        body = await _json_body(request, limits)
        many = isinstance(body, list) and all(isinstance(b, dict) for b in body) and body != []
        bodies = body if many else [body]
        if len(bodies) > limits.max_batch:
            raise BadRequest(413, f"{len(bodies)} requests in one body, more than the limit "
                             f"{limits.max_batch}")
        parsed = []
        for i, one in enumerate(bodies):
            try:
                parsed.append(parse_request(one, limits))
            except ValueError as exc:
                raise BadRequest(422, f"request {i}: {exc}" if many else str(exc)) from None
        answers = []
        for key in dict.fromkeys((p.k, p.exclude_seen) for p in parsed):
            same = [i for i, p in enumerate(parsed) if (p.k, p.exclude_seen) == key]
            requests = [rec.request(parsed[i].sequence, parsed[i].candidates) for i in same]
            answers += zip(same, await batcher.submit(requests, *key))
        out = [a.to_dict() for _, a in sorted(answers, key=lambda x: x[0])]
        return JSONResponse(out if many else out[0])

    async def similar(request):
        body = await _json_body(request, limits)
        if not isinstance(body, dict) or not isinstance(body.get("item"), (str, int)) or (
                isinstance(body.get("item"), bool)):
            raise BadRequest(422, "body must be {\"item\": \"<token>\", \"k\": 10}")
        k = body.get("k", 10)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
            raise BadRequest(422, f"'k' must be an integer in [1, {limits.max_k}]")
        try:
            return JSONResponse(rec.similar_items(str(body["item"]), k).to_dict())
        except PluginError as exc:
            raise BadRequest(404, str(exc)) from None

    async def health(request):
        return JSONResponse({"status": "ok", "backend": rec.scorer.name,
                             "batches": batcher.batches})

    async def model(request):
        return JSONResponse(rec.bundle.card)

    async def bad_request(request, exc: BadRequest):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def http_error(request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def server_error(request, exc: Exception):
        logging.getLogger(__name__).exception("internal error")
        return JSONResponse({"error": "internal error"}, status_code=500)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    routes = [
        Route("/recommend", recommend, methods=["POST"]),
        Route("/similar", similar, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/model", model, methods=["GET"]),
    ]
    handlers = {BadRequest: bad_request, HTTPException: http_error, Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec_ext serve",
        description="Serve a bundle over HTTP: POST /recommend, POST /similar, GET /health, "
        "GET /model (needs pip install .[serve]).",
    )
    parser.add_argument("--bundle", required=True, help="a folder written by export")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS))
    parser.add_argument("--threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--max-batch", type=int, default=64,
                        help="sequences per forward pass (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0,
                        help="longest wait of a request for others to batch with (default 2)")
    args = parser.parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print("error: serve needs the serve extra: pip install '.[serve]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rec = load(args.bundle, args.backend, args.threads, batch_size=max(args.max_batch, 1))
    except PluginError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    app = build_app(rec, LIMITS, args.max_batch, args.max_wait_ms)
    print(f"serving {args.bundle} ({rec.scorer.name}) on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=10, access_log=False)
    return EXIT_OK
