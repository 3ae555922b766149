"""Built-in Grafana targets: dashboards' tables and per-node time series.

Tables carry ISO-8601 timestamps; time series carry ``[value, epoch_ms]``. Every
target honours ad hoc filters on the keys it has (node, role, alertStatus, …); the
time series honour the query's range and are downsampled to ``maxDataPoints`` in SQL.
"""

from __future__ import annotations

import re
from typing import Any

from fogd.dashboard import alert_buckets, health_map, system_overview
from fogd.grafana import Query, payload_list, table, timeseries
from fogd.model import ALERT_CODE, ALERT_LEVELS, iso_ms
from fogd.plugins.markers import hookimpl

NODE_PAYLOADS = [
    {"name": "node", "label": "Node", "type": "multi-select", "placeholder": "all nodes", "reloadMetric": False},
    {"name": "role", "label": "Role", "type": "select", "placeholder": "fog and cloud",
     "options": [{"label": "fog", "value": "fog"}, {"label": "cloud", "value": "cloud"}]},
]


def selected_nodes(q: Query, fogd: Any) -> list[Any]:
    """Nodes picked by the payload (``node``, ``role``) and the ad hoc filters on them."""
    names, roles = payload_list(q.payload, "node"), payload_list(q.payload, "role")
    out = []
    for node in sorted(fogd.store.nodes.values(), key=lambda n: n.name):
        if names and node.name not in names:
            continue
        if roles and node.role not in roles:
            continue
        if q.matches({"node": node.name, "role": node.role}):
            out.append(node)
    return out


def node_options(fogd: Any) -> list[dict[str, str]]:
    return [{"label": n, "value": n} for n in sorted(fogd.store.nodes)]


class NodeTarget:
    """A target whose payload picks nodes (``node``, ``role``); Grafana asks for the node list."""

    payloads = NODE_PAYLOADS

    def payload_options(self, name: str, payload: dict[str, Any], fogd: Any) -> list[dict[str, str]]:
        return node_options(fogd) if name == "node" else []


class LiveData(NodeTarget):
    name = "live_data"
    label = "Live sensor snapshot (latest reading per node)"

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        rows = []
        for node in selected_nodes(q, fogd):
            latest = fogd.live.get(node.id)
            if latest is None:
                continue
            ts, seq, t, h, p, ci, alert, source, _extra = latest
            rows.append([iso_ms(ts), node.name, node.role, t, h, p, ci, ALERT_LEVELS[alert], source])
        return [table(q, [("Time", "time"), ("node", "string"), ("role", "string"), ("temperature", "number"),
                          ("humidity", "number"), ("power", "number"), ("comfortIndex", "number"),
                          ("alertStatus", "string"), ("source", "string")], rows)]


class HealthMap(NodeTarget):
    name = "health_map"
    label = "Node health: alert tier and liveness per node"

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        picked = {n.name for n in selected_nodes(q, fogd)}
        rows = [[r["node"], r["role"], r["alertStatus"], r["liveness"], r["status"], r["icon"], r["colour"],
                 r["lastReading"], r["age_s"]] for r in health_map(fogd) if r["node"] in picked]
        return [table(q, [("node", "string"), ("role", "string"), ("alertStatus", "string"),
                          ("liveness", "string"), ("status", "string"), ("icon", "string"), ("colour", "string"),
                          ("lastReading", "time"), ("age_s", "number")], rows)]


class AnalysisSummary:
    name = "analysis_summary"
    label = "Recent analysis events (findings, alerts, transfers) in the range"
    payloads = [{"name": "limit", "label": "Rows", "type": "input", "placeholder": "100"}]

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        raw_limit = str(q.payload.get("limit", ""))
        limit = int(raw_limit) if raw_limit.isascii() and raw_limit.isdigit() else 100  # "²".isdigit() is True
        events = await fogd.store.events(None, q.from_ms, q.to_ms, min(limit, 10_000))
        by_id = fogd.store.nodes_by_id
        rows = [[iso_ms(ts), by_id[nid].name if nid in by_id else None, kind, rule, sev, msg]
                for _id, ts, nid, kind, rule, sev, msg, _ev in events]
        return [table(q, [("Time", "time"), ("node", "string"), ("kind", "string"), ("rule", "string"),
                          ("severity", "string"), ("message", "string")], rows)]


class SystemOverview:
    name = "system_overview"
    label = "System overview: counters, uptime, nodes, alerts"
    payloads: list[dict[str, Any]] = []

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        o = await system_overview(fogd)
        n, a = o["nodes"], o["alerts"]
        row = [o["uptime_s"], o["ingest"]["stored"], o["ingest"]["duplicates"], o["ingest"]["rejected_requests"],
               o["analysis"]["runs"], n["total"], n["by_role"].get("fog", 0), n["by_role"].get("cloud", 0),
               n["by_liveness"].get("online", 0), n["by_liveness"].get("stale", 0), n["by_liveness"].get("lost", 0),
               a["live_alerts"]["warning"], a["live_alerts"]["critical"], o["provisioner"]["name"]]
        cols = [("uptime_s", "number"), ("readings_stored", "number"), ("duplicates", "number"),
                ("rejected_requests", "number"), ("analysis_runs", "number"), ("nodes", "number"),
                ("fog_nodes", "number"), ("cloud_nodes", "number"), ("online", "number"), ("stale", "number"),
                ("lost", "number"), ("warning_alerts", "number"), ("critical_alerts", "number"),
                ("provisioner", "string")]
        return [table(q, cols, [row])]


class AlertBuckets:
    name = "alert_buckets"
    label = "Nodes per alert tier (latest reading) and live alerts"
    payloads: list[dict[str, Any]] = []

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        b = await alert_buckets(fogd)
        rows = [[tier, b["nodes_by_tier"][tier], b["live_alerts"].get(tier, 0)] for tier in ALERT_LEVELS]
        return [table(q, [("alertStatus", "string"), ("nodes", "number"), ("live_alerts", "number")], rows)]


class MetricSeries(NodeTarget):
    """One time series per selected node for one metric, averaged per bucket in SQL."""

    def __init__(self, metric: str, column: str | None = None) -> None:
        self.name = metric
        self.column = column or metric
        self.label = f"{metric} per node (time series)"

    def metric_of(self, q: Query) -> str:
        return self.column

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        metric = self.metric_of(q)
        alerts = _alert_codes(q)
        bucket = q.bucket_ms()
        frames = []
        for node in selected_nodes(q, fogd):
            points = await fogd.store.series(node.id, metric, q.from_ms, q.to_ms, bucket, alerts)
            if points:
                label = self.name if metric == self.column else metric
                frames.append(timeseries(q, f"{node.name} {label}", [[round(v, 4), t] for t, v in points]))
        return frames


class ExtraSeries(MetricSeries):
    """Any ``extra`` metric: payload ``metric`` names it (options: what nodes report)."""

    def __init__(self) -> None:
        super().__init__("extra", "extra")
        self.label = "an extra metric per node (time series)"
        self.payloads = NODE_PAYLOADS + [{"name": "metric", "label": "Metric", "type": "select",
                                          "placeholder": "cpu_load", "reloadMetric": False}]

    def metric_of(self, q: Query) -> str:
        name = str(q.payload.get("metric", "cpu_load"))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            name = "cpu_load"
        return f"extra.{name}"

    def payload_options(self, name: str, payload: dict[str, Any], fogd: Any) -> list[dict[str, str]]:
        if name == "metric":
            import msgspec
            keys: set[str] = set()
            for node in fogd.store.nodes.values():
                latest = fogd.live.get(node.id)
                if latest is not None and latest[8]:
                    keys.update(msgspec.json.decode(latest[8]))
            return [{"label": k, "value": k} for k in sorted(keys)]
        return super().payload_options(name, payload, fogd)


def _alert_codes(q: Query) -> tuple[int, ...] | None:
    """An ad hoc filter on alertStatus, as the stored tier codes it allows."""
    conditions = q.filter_value("alertStatus")
    if not conditions:
        return None
    allowed = set(ALERT_LEVELS)
    for op, value in conditions:
        if op == "=":
            allowed &= {value}
        elif op == "!=":
            allowed -= {value}
        elif op in ("=~", "!~"):
            try:
                hit = {lvl for lvl in ALERT_LEVELS if re.search(value, lvl)}
            except re.error:
                hit = set()
            allowed &= hit if op == "=~" else set(ALERT_LEVELS) - hit
    return tuple(sorted(ALERT_CODE[a] for a in allowed))


@hookimpl
def fogd_register_targets():
    return [LiveData(), HealthMap(), AnalysisSummary(), SystemOverview(), AlertBuckets(),
            MetricSeries("temperature"), MetricSeries("humidity"), MetricSeries("power"),
            MetricSeries("comfortIndex", "comfort"), ExtraSeries()]
