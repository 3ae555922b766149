"""``GET /nodes/{node}/data``: a node's latest reading and its history."""

from __future__ import annotations

from aiohttp import web

from fogd.context import FOGD
from fogd.errors import Invalid, NotFound
from fogd.http.responses import json, query_int
from fogd.live import row_view
from fogd.model import parse_time

MAX_HISTORY = 10_000


def _time_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise Invalid(f"query parameter {name!r}: expected ISO-8601 (2026-12-04T16:00:00Z) "
                      f"or epoch milliseconds, got {raw!r}", field=name) from None


async def get_node_data(request: web.Request) -> web.Response:
    """``limit`` (default 100, at most 10,000), ``since`` and ``until`` (inclusive);
    history is newest first."""
    fogd = request.app[FOGD]
    name = request.match_info["node"]
    node = fogd.store.nodes.get(name)
    if node is None:
        raise NotFound(f"no node named {name!r}", node=name)
    limit = query_int(request, "limit", 100, 1, MAX_HISTORY)
    since, until = _time_param(request, "since"), _time_param(request, "until")
    if since is not None and until is not None and since > until:
        raise Invalid("query parameters 'since' and 'until': since is after until", field="since")
    latest = fogd.live.get(node.id)
    rows = await fogd.store.history(node.id, since, until, limit)
    return json({
        "node": node.name,
        "role": node.role,
        "provisioner": node.provisioner,
        "latest": row_view(node, latest) if latest is not None else None,
        "count": len(rows),
        "history": [row_view(node, row) for row in rows],
    })
