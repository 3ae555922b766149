"""The data behind the dashboards, shared by the plain JSON routes (``/api/*``, also
read by Grafana's Infinity datasource) and the JSON datasource's built-in targets."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from fogd import __version__
from fogd.metrics import total
from fogd.model import ALERT_LEVELS, iso_ms, now_ms

#: Icon and colour hints per alert tier and liveness, for status-map panels.
TIER_HINTS = {"normal": ("✅", "green"), "warning": ("⚠️", "orange"), "critical": ("🔥", "red")}
LIVENESS_HINTS = {"online": "green", "stale": "orange", "lost": "red"}


def health_map(fogd: Any) -> list[dict[str, Any]]:
    """Per node: alert tier of its latest reading, liveness, status, with display hints."""
    rows = []
    for view in fogd.nodes.status():
        node = fogd.store.nodes[view["name"]]
        latest = fogd.live.get(node.id)
        tier = ALERT_LEVELS[latest[6]] if latest is not None else "normal"
        icon, colour = TIER_HINTS[tier]
        if view["liveness"] != "online":
            colour = LIVENESS_HINTS[view["liveness"]] if tier == "normal" else colour
        rows.append({"node": view["name"], "role": view["role"], "alertStatus": tier,
                     "liveness": view["liveness"], "status": view["status"], "icon": icon, "colour": colour,
                     "lastReading": view["last_reading"], "age_s": view["age_s"]})
    return rows


async def alert_buckets(fogd: Any) -> dict[str, Any]:
    """Nodes by the alert tier of their latest reading, and live alerts by severity."""
    tiers = dict.fromkeys(ALERT_LEVELS, 0)
    for node in fogd.store.nodes.values():
        latest = fogd.live.get(node.id)
        if latest is not None:
            tiers[ALERT_LEVELS[latest[6]]] += 1
    counts = await fogd.store.alert_counts()
    live = {sev: sum(n for (_, s), n in counts.items() if s == sev) for sev in ("warning", "critical")}
    acked = sum(n for (state, _), n in counts.items() if state == "acknowledged")
    return {"nodes_by_tier": tiers, "live_alerts": live, "acknowledged": acked}


async def system_overview(fogd: Any) -> dict[str, Any]:
    """Counters, uptime, nodes by role/status/liveness, alert buckets: one object."""
    m = fogd.metrics
    status = fogd.nodes.status()
    analyzer = fogd.analyzer
    return {
        "version": __version__,
        "generated": iso_ms(now_ms()),
        "uptime_s": round(time.time() - fogd.started, 3),
        "ingest": {"stored": total(m.readings_stored), "duplicates": total(m.readings_duplicate),
                   "rejected_requests": total(m.ingest_rejected), "queue": fogd.writer.queued,
                   "commits": fogd.writer.commits, "rollup_lag": await fogd.store.rollup_lag()},
        "analysis": {"runs": analyzer.runs, "last_run": iso_ms(analyzer.last_run_ms) if analyzer.last_run_ms else None,
                     "last_elapsed_ms": analyzer.last_elapsed_ms, "interval_s": fogd.config.analysis.interval,
                     "rules": sorted(analyzer.rules)},
        "nodes": {"total": len(status), "by_role": dict(Counter(v["role"] for v in status)),
                  "by_status": dict(Counter(v["status"] for v in status)),
                  "by_liveness": dict(Counter(v["liveness"] for v in status))},
        "provisioner": {"name": fogd.nodes.provisioner.name if fogd.nodes.provisioner else None,
                        "status": "ok" if fogd.nodes.backend_ok else "unavailable"},
        "alerts": await alert_buckets(fogd),
    }
