"""Dashboard JSON routes under ``/api/`` (plain JSON, ISO timestamps; Grafana's
Infinity datasource reads them as they are)."""

from __future__ import annotations

from aiohttp import web

from fogd.context import FOGD


async def get_live_data(request: web.Request) -> web.Response:
    """The latest reading of every node, ordered by node name."""
    fogd = request.app[FOGD]
    return web.Response(body=fogd.live.snapshot_json(fogd.store.nodes_by_id), content_type="application/json")
