"""``POST /analyze`` (run the rules now, or a backtest) and ``GET /api/analysis_summary``."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fogd.context import FOGD, Fogd
from fogd.errors import Invalid, NotFound
from fogd.http.nodes import time_param
from fogd.http.responses import json, query_int
from fogd.dashboard import alert_buckets
from fogd.model import iso_ms, now_ms


def _node(fogd: Fogd, request: web.Request) -> Any:
    name = request.query.get("node")
    if not name:
        return None
    node = fogd.store.nodes.get(name)
    if node is None:
        raise NotFound(f"no node named {name!r}", node=name)
    return node


async def post_analyze(request: web.Request) -> web.Response:
    """Run every rule over every fog node (``?node=`` for one) and record the decisions.

    ``?backtest=1&since=…[&until=…][&step=seconds]`` replays stored history through the
    rules instead and reports what would have fired, writing nothing.
    """
    fogd = request.app[FOGD]
    node = _node(fogd, request)
    if request.query.get("backtest") in ("1", "true", "yes"):
        since = time_param(request, "since")
        if since is None:
            raise Invalid("query parameter 'since': a backtest needs a start (ISO-8601 or epoch ms)", field="since")
        until = time_param(request, "until") or now_ms()
        if since > until:
            raise Invalid("query parameters 'since' and 'until': since is after until", field="since")
        default_step = int(fogd.config.analysis.interval) or 10
        step = query_int(request, "step", default_step, 1, 86_400)
        if (until - since) // (step * 1000) > 1_000_000:
            raise Invalid("backtest too long: more than 1,000,000 evaluations per node; raise 'step'", field="step")
        result = await fogd.analyzer.backtest(since, until, step * 1000, node)
        result["since"], result["until"] = iso_ms(since), iso_ms(until)
        return json(result)
    result = await fogd.analyzer.analyze(node)
    fogd.metrics.analysis_runs.inc()
    fogd.metrics.analysis_latency.observe(result["elapsed_ms"] / 1000)
    result["at"] = iso_ms(result["at"])
    return json(result)


def event_view(fogd: Fogd, row: tuple) -> dict[str, Any]:
    id_, ts, node_id, kind, rule, severity, message, evidence = row
    node = fogd.store.nodes_by_id.get(node_id)
    return {"id": id_, "timestamp": iso_ms(ts), "node": node.name if node else None, "kind": kind,
            "rule": rule, "severity": severity, "message": message, "evidence": msgspec.json.decode(evidence)}


async def get_analysis_summary(request: web.Request) -> web.Response:
    """Recent analysis events, newest first (``node``, ``since``, ``until``, ``limit``),
    and the alert counts by tier."""
    fogd = request.app[FOGD]
    node = _node(fogd, request)
    limit = query_int(request, "limit", 100, 1, 10_000)
    since, until = time_param(request, "since"), time_param(request, "until")
    rows = await fogd.store.events(node.id if node else None, since, until, limit)
    a = fogd.analyzer
    return json({
        "events": [event_view(fogd, r) for r in rows],
        "alerts": await alert_buckets(fogd),
        "analysis": {"runs": a.runs, "last_run": iso_ms(a.last_run_ms) if a.last_run_ms else None,
                     "last_elapsed_ms": a.last_elapsed_ms, "interval_s": fogd.config.analysis.interval,
                     "rules": sorted(a.rules)},
    })
