"""``GET /healthz``: is fogd serving, and can it reach its store."""

from __future__ import annotations

import sqlite3
import time

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
