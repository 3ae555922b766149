"""The one middleware: turns every failure into the JSON error body and counts requests.

It is a single middleware on purpose: the count it records is the status the
client really saw (after errors were rendered), and the hot ingest path pays for
one middleware layer, not two.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from fogd.context import FOGD
from fogd.errors import FogdError, TooLarge
from fogd.http.responses import error, json

log = logging.getLogger("fogd.http")

_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def errors_and_metrics(request: web.Request, handler):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        response = await handler(request)
    except FogdError as exc:
        response = error(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[FOGD].config.server.max_body_bytes
        response = error(TooLarge(f"request body exceeds {limit} bytes (server.max_body_bytes)",
                                  limit=limit))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"error": _HTTP_KINDS.get(exc.status, "http_error"),
                "detail": f"{request.method} {request.path}: {exc.reason}"}
        if exc.status == 405:
            body["allowed"] = sorted(exc.allowed_methods)  # type: ignore[attr-defined]
        response = json(body, status=exc.status, headers={k: v for k, v in exc.headers.items()
                                                          if k.lower() == "allow"})
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = json({"error": "internal", "detail": "fogd hit an unexpected error; it is in fogd's log"},
                        status=500)
    route = request.match_info.route.resource
    request.app[FOGD].metrics.observe_request(
        route.canonical if route is not None else "unmatched", request.method, response.status,
        time.perf_counter() - start)
    return response
