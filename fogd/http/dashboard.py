"""Dashboard JSON routes under ``/api/`` (plain JSON, ISO timestamps; Grafana's
Infinity datasource reads them as they are)."""

from __future__ import annotations

from aiohttp import web

from fogd.context import FOGD
from fogd.http.responses import json
from fogd.live import row_view


async def get_live_data(request: web.Request) -> web.Response:
    """The latest reading of every node, ordered by node name."""
    fogd = request.app[FOGD]
    by_id = fogd.store.nodes_by_id
    views = [row_view(by_id[node_id], row) for node_id, row in fogd.live]
    views.sort(key=lambda v: v["node"])
    return json(views)
