"""The Grafana JSON datasource protocol (plugin ``simpod-json-datasource``): request
types, payload coercion, ad hoc filters and the frame shapes targets answer with.

Targets are plugins (``fogd_register_targets``): objects with a unique ``name`` and
``async query(q, fogd) -> list[frame]``; optionally ``label``, ``payloads`` (the
payload editors Grafana shows, as in ``POST /metrics``) and
``payload_options(name, payload, fogd) -> list[{label, value}]``. The built-in ones
are in ``fogd/plugins/default_targets.py``. Routes: ``fogd/http/grafana.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from fogd.model import now_ms, utc_ms


class Range(msgspec.Struct):
    """``range`` of a query; Grafana sends ISO-8601 UTC strings."""

    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None


class AdhocFilter(msgspec.Struct):
    key: str = ""
    operator: str = "="
    value: Any = ""


class TargetRequest(msgspec.Struct):
    """One item of ``targets``. Unknown keys (datasource, key, editorMode, …) are ignored."""

    target: str = ""
    refId: str = "A"
    payload: Any = None
    hide: bool = False


class QueryRequest(msgspec.Struct):
    """Grafana's DataQueryRequest, as much of it as fogd uses; the rest is ignored."""

    range: Range | None = None
    intervalMs: float | None = None
    maxDataPoints: float | None = None
    targets: list[TargetRequest] = []
    filters: list[AdhocFilter] = []
    adhocFilters: list[AdhocFilter] = []


class MetricsRequest(msgspec.Struct):
    metric: str = ""
    payload: Any = None


class PayloadOptionsRequest(msgspec.Struct):
    metric: str = ""
    payload: Any = None
    name: str = ""


class VariableRequest(msgspec.Struct):
    payload: Any = None
    range: Range | None = None


class TagValuesRequest(msgspec.Struct):
    key: str = ""


def coerce_payload(raw: Any) -> dict[str, Any]:
    """Payloads arrive as an object (values stringified in builder mode), as ``""`` from
    older dashboards, or as a JSON string; anything unusable is ``{}``."""
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            return {}
        try:
            raw = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return {}
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            values = [str(v) for v in value if v not in (None, "")]
            if values:
                out[str(key)] = values
        elif value not in (None, ""):
            out[str(key)] = str(value)
    return out


def payload_list(payload: dict[str, Any], key: str) -> list[str]:
    """A payload value as a list: multi-select gives a list, a text box ``a,b`` a string;
    Grafana's "All" / ``$__all`` means no restriction."""
    value = payload.get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else str(value).split(",")
    values = [v.strip() for v in values if v.strip()]
    return [] if any(v in ("$__all", "All", "*") for v in values) else values


def _parse_time(value: str | None, default: int) -> int:
    if not value:
        return default
    try:
        if value.isascii() and value.isdigit():
            return int(value)
        return utc_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return default


_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "=~": lambda a, b: re.search(b, a) is not None,
    "!~": lambda a, b: re.search(b, a) is None,
    "<": lambda a, b: _num(a) < _num(b),
    ">": lambda a, b: _num(a) > _num(b),
}


def _num(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


@dataclass
class Query:
    """What a target gets: one target of one ``/query`` request, decoded and coerced."""

    ref_id: str
    target: str
    payload: dict[str, Any]
    from_ms: int
    to_ms: int
    max_points: int
    interval_ms: int
    filters: list[AdhocFilter]

    def bucket_ms(self) -> int:
        """Width of one point so a series over the range has at most ``max_points``."""
        return max(1, math.ceil((self.to_ms - self.from_ms) / self.max_points), self.interval_ms)

    def matches(self, row: dict[str, Any]) -> bool:
        """Does a row pass every ad hoc filter whose key it has? (Filters on keys a
        target does not know are ignored, as Grafana applies them to every panel.)"""
        for f in self.filters:
            if f.key in row and f.operator in _OPS:
                try:
                    if not _OPS[f.operator]("" if row[f.key] is None else str(row[f.key]), str(f.value)):
                        return False
                except re.error:
                    return False
        return True

    def filter_value(self, key: str) -> list[tuple[str, str]]:
        return [(f.operator, str(f.value)) for f in self.filters if f.key == key]


def make_query(req: QueryRequest, t: TargetRequest) -> Query:
    now = now_ms()
    to_ms = _parse_time(req.range.to if req.range else None, now)
    from_ms = _parse_time(req.range.from_ if req.range else None, to_ms - 3_600_000)
    if from_ms > to_ms:
        from_ms, to_ms = to_ms, from_ms
    max_points = int(req.maxDataPoints or 1000)
    return Query(ref_id=t.refId, target=t.target, payload=coerce_payload(t.payload), from_ms=from_ms,
                 to_ms=to_ms, max_points=max(1, min(max_points, 100_000)), interval_ms=int(req.intervalMs or 0),
                 filters=[f for f in (req.filters or req.adhocFilters) if f.key])


@runtime_checkable
class Target(Protocol):
    name: str

    async def query(self, q: Query, fogd: Any) -> list[dict[str, Any]]:
        """Frames for one target: tables, time series or data frames (see below)."""


def table(q: Query, columns: list[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    """A table frame; rows are filtered by the ad hoc filters on their column names."""
    names = [c[0] for c in columns]
    kept = [r for r in rows if q.matches(dict(zip(names, r)))]
    return {"type": "table", "refId": q.ref_id, "columns": [{"text": n, "type": t} for n, t in columns], "rows": kept}


def timeseries(q: Query, name: str, datapoints: list[list[Any]]) -> dict[str, Any]:
    """A time series frame: ``[[value, epoch_ms], ...]``, value first."""
    return {"target": name, "refId": q.ref_id, "datapoints": datapoints}
