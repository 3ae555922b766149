"""``GET /healthz``: is fogd serving, and can it reach its store."""

from __future__ import annotations

import sqlite3
import time

import msgspec
from aiohttp import web

from fogd import __version__
from fogd.context import FOGD
from fogd.http.responses import json


async def get_healthz(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    try:
        await fogd.store.ping()
        store = "ok"
    except (sqlite3.Error, ValueError) as exc:
        store = f"error: {exc}"
    ok = store == "ok"
    nodes = fogd.nodes
    provisioner = {"name": nodes.provisioner.name if nodes.provisioner else None,
                   "status": "ok" if nodes.backend_ok else "unavailable"}
    if nodes.backend_error and not nodes.backend_ok:
        provisioner["error"] = nodes.backend_error
    return json({
        "status": "ok" if ok and nodes.backend_ok else "degraded",
        "version": __version__,
        "uptime_s": round(time.time() - fogd.started, 3),
        "store": store,
        "nodes": len(fogd.store.nodes),
        "ingest_queue": fogd.writer.queued,
        "provisioner": provisioner,
    }, status=200 if ok else 503)


_openapi: bytes | None = None


async def get_openapi(request: web.Request) -> web.Response:
    """fogd's API as OpenAPI 3.1, generated from the msgspec types the routes decode."""
    global _openapi
    if _openapi is None:
        from fogd.openapi import document  # imports every route module: not at import time

        _openapi = msgspec.json.encode(document())
    return web.Response(body=_openapi, content_type="application/json")
