"""Dashboard JSON routes under ``/api/`` (plain JSON, ISO timestamps; Grafana's
Infinity datasource reads them as they are)."""

from __future__ import annotations

from aiohttp import web

from fogd.context import FOGD
from fogd.dashboard import health_map, system_overview
from fogd.http.responses import json


async def get_live_data(request: web.Request) -> web.Response:
    """The latest reading of every node, ordered by node name."""
    fogd = request.app[FOGD]
    return web.Response(body=fogd.live.snapshot_json(fogd.store.nodes_by_id), content_type="application/json")


async def get_health_map(request: web.Request) -> web.Response:
    """Per node: alert tier, liveness, status, and an icon/colour hint."""
    return json(health_map(request.app[FOGD]))


async def get_system_overview(request: web.Request) -> web.Response:
    """Ingest and analysis counters, uptime, nodes by role/status/liveness, alert buckets."""
    return json(await system_overview(request.app[FOGD]))


async def dashboard_start(request: web.Request) -> web.Response:
    """Where the Fog Console is: Grafana's URL and the dashboard's (``fogd dashboard``
    opens it; a daemon in a container cannot open a browser itself)."""
    g = request.app[FOGD].config.grafana
    base = g.url.rstrip("/")
    return json({"grafana_url": base, "dashboard_url": f"{base}/d/{g.dashboard_uid}/fog-console",
                 "dashboard_uid": g.dashboard_uid, "datasource_uid": "fogd"})
