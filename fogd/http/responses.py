"""JSON responses encoded with msgspec (faster than aiohttp's ``json_response``)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fogd.errors import FogdError, Invalid

_encode = msgspec.json.encode

#: The error kind of an error response (for the audit log).
ERROR_KIND = web.ResponseKey("fogd_error", str)


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json",
                        headers=headers)


def error(exc: FogdError) -> web.Response:
    response = json(exc.body(), status=exc.status, headers=exc.headers or None)
    response[ERROR_KIND] = exc.kind  # the audit log's outcome
    return response


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within ``[lo, hi]``; 422 naming it otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"query parameter {name!r}: expected an integer, got {raw!r}", field=name) from None
    if not lo <= value <= hi:
        raise Invalid(f"query parameter {name!r}: expected {lo}..{hi}, got {value}", field=name)
    return value
