"""The errors fogd reports, and how a msgspec validation error becomes one.

Every error a client can see is a :class:`FogdError`: it carries the HTTP status,
a short machine-readable ``kind`` and a human ``detail``; extra keyword arguments
(``field``, ``index``, ``node`` …) travel into the JSON body unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec


class FogdError(Exception):
    """An error with a JSON body: ``{"error": kind, "detail": text, **extra}``."""

    status = 500
    kind = "internal"
    headers: dict[str, str] = {}

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.kind, "detail": self.detail, **self.extra}


class Malformed(FogdError):
    """The request body is not the JSON it claims to be (400)."""

    status = 400
    kind = "malformed"


class Invalid(FogdError):
    """The request is well-formed but a field has the wrong type or value (422)."""

    status = 422
    kind = "validation"


class Unauthorized(FogdError):
    """No token, or one fogd does not know (401)."""

    status = 401
    kind = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="fogd"'}


class Forbidden(FogdError):
    """A known token whose role may not do this (403)."""

    status = 403
    kind = "forbidden"


class NotFound(FogdError):
    """The request names something fogd does not know (404)."""

    status = 404
    kind = "not_found"


class TooLarge(FogdError):
    """The request body exceeds ``server.max_body_bytes`` (413)."""

    status = 413
    kind = "too_large"


class UpgradeRequired(FogdError):
    """A plain request to a WebSocket-only route (426)."""

    status = 426
    kind = "upgrade_required"
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"}


class Unavailable(FogdError):
    """fogd cannot do it right now (store failure, shutting down); retry later (503)."""

    status = 503
    kind = "unavailable"


class Overloaded(FogdError):
    """The ingest queue is full: retry after ``Retry-After`` seconds (503)."""

    status = 503
    kind = "overloaded"
    headers = {"Retry-After": "1"}


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the key."""


_AT = re.compile(r"^(?P<text>.*?)(?: - at `(?P<key>key)` in `(?P<keypath>[^`]*)`| - at `(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_INDEX = re.compile(r"^\$\[(\d+)\]")


_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")


def split_validation_error(err: msgspec.ValidationError) -> tuple[str, str]:
    """Return ``(path, text)`` from msgspec's ``"<text> - at `$.a.b`"`` message.

    An unknown or missing field is folded into the path, so ``$.server`` + ``lisen``
    reads as ``$.server.lisen`` with the text ``unknown field``.
    """
    m = _AT.match(str(err))
    assert m is not None  # the pattern matches any string
    text, path = m["text"], m["path"] or m["keypath"] or "$"
    if m["key"]:
        text = f"a key: {text}"
    unknown = _UNKNOWN.match(text)
    if unknown:
        path = f"{path}.{unknown['name']}"
        text = "unknown field"
    missing = _MISSING.match(text)
    if missing:
        path = f"{path}.{missing['name']}"
        text = "required field is missing"
    return path, text


def invalid_from(err: msgspec.ValidationError) -> Invalid:
    """A 422 naming the JSON path (and batch index, when there is one) of the bad field."""
    path, text = split_validation_error(err)
    extra: dict[str, Any] = {"field": path}
    index = _INDEX.match(path)
    if index:
        extra["index"] = int(index.group(1))
    return Invalid(f"{path}: {text}", **extra)
