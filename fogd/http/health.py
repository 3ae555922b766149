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
    return json({
        "status": "ok" if ok else "degraded",
        "version": __version__,
        "uptime_s": round(time.time() - fogd.started, 3),
        "store": store,
        "nodes": len(fogd.store.nodes),
        "ingest_queue": fogd.writer.queued,
    }, status=200 if ok else 503)
