"""``GET /alerts`` and ``POST /alerts/{id}/ack``."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fogd.context import FOGD, Fogd
from fogd.errors import FogdError, Invalid, NotFound
from fogd.http.responses import json, query_int
from fogd.model import iso_ms, now_ms

STATES = {"live": ("open", "acknowledged"), "open": ("open",), "acknowledged": ("acknowledged",),
          "cleared": ("cleared",), "all": ("open", "acknowledged", "cleared")}


class AlreadyCleared(FogdError):
    status = 409
    kind = "conflict"


def alert_view(fogd: Fogd, row: tuple) -> dict[str, Any]:
    (id_, node_id, rule, severity, state, message, evidence, opened, updated, cleared, acked,
     findings, streak) = row
    node = fogd.store.nodes_by_id.get(node_id)
    return {"id": id_, "node": node.name if node else None, "rule": rule, "severity": severity, "state": state,
            "message": message, "evidence": msgspec.json.decode(evidence), "opened": iso_ms(opened),
            "updated": iso_ms(updated), "cleared": iso_ms(cleared) if cleared else None,
            "acknowledged": iso_ms(acked) if acked else None, "findings": findings, "normal_streak": streak}


async def get_alerts(request: web.Request) -> web.Response:
    """``state`` (live = open + acknowledged, the default; open; acknowledged; cleared;
    all), ``node``, ``severity``, ``limit``; newest first."""
    fogd = request.app[FOGD]
    state = request.query.get("state", "live")
    if state not in STATES:
        raise Invalid(f"query parameter 'state': expected one of {', '.join(STATES)}, got {state!r}", field="state")
    severity = request.query.get("severity")
    if severity is not None and severity not in ("warning", "critical"):
        raise Invalid(f"query parameter 'severity': expected warning or critical, got {severity!r}",
                      field="severity")
    node_id = None
    if "node" in request.query:
        node = fogd.store.nodes.get(request.query["node"])
        if node is None:
            raise NotFound(f"no node named {request.query['node']!r}", node=request.query["node"])
        node_id = node.id
    limit = query_int(request, "limit", 100, 1, 10_000)
    rows = await fogd.store.alerts(STATES[state], node_id, severity, limit)
    return json([alert_view(fogd, r) for r in rows])


async def post_ack(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is True, int("²") fails
        raise Invalid(f"alert id: expected an integer, got {raw!r}", field="id")
    alert_id = int(raw)
    row = await fogd.store.ack_alert(alert_id, now_ms())
    if row is None:
        existing = await fogd.store.alert(alert_id)
        if existing is None:
            raise NotFound(f"no alert with id {alert_id}", id=alert_id)
        raise AlreadyCleared(f"alert {alert_id} is already cleared", id=alert_id)
    fogd.analyzer.acknowledged(row[1], row[2])
    node = fogd.store.nodes_by_id.get(row[1])
    await fogd.store.add_event((now_ms(), row[1], "alert_acknowledged", row[2], row[3],
                                f"{node.name if node else row[1]} {row[2]} alert {alert_id} acknowledged", "{}"))
    return json(alert_view(fogd, row))
