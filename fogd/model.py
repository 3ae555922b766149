"""The reading model: what clients send to ``/ingest`` and what fogd returns.

Canonical keys are documented in the README (and ``docs/API.md``). Timestamps are
ISO-8601 UTC on the wire and epoch milliseconds in the store.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

AlertStatus = Literal["normal", "warning", "critical"]
Role = Literal["fog", "cloud"]

#: Alert tiers in order of severity; the store keeps the index (0, 1, 2).
ALERT_LEVELS: tuple[AlertStatus, ...] = ("normal", "warning", "critical")
ALERT_CODE = {name: code for code, name in enumerate(ALERT_LEVELS)}

NodeName = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="letters, digits, '_', '.', ':', '-'; at most 64 characters",
    ),
]
MetricName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class Reading(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One telemetry reading, as sent to ``POST /ingest`` and seen by normalizer hooks.

    ``comfortIndex`` and ``alertStatus`` are derived by fogd; values a client sends for
    them are recomputed. Normalizer plugins may change any field in place and add
    numeric metrics to ``extra``.
    """

    node: NodeName
    timestamp: datetime | None = None
    temperature: Annotated[float, Meta(ge=-90.0, le=150.0)] | None = None
    humidity: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    power: Annotated[float, Meta(ge=0.0)] | None = None
    seq: Annotated[int, Meta(ge=0, le=2**62)] | None = None
    source: Annotated[str, Meta(min_length=1, max_length=64)] = "api"
    role: Role | None = None
    extra: Annotated[dict[MetricName, float], Meta(max_length=64)] = {}
    comfortIndex: float | None = None
    alertStatus: AlertStatus | None = None


#: Decodes one reading or a JSON array of them.
INGEST_DECODER = msgspec.json.Decoder(Reading | list[Reading])


def utc_ms(dt: datetime) -> int:
    """Epoch milliseconds of ``dt``; a naive datetime is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds: ``2026-12-04T16:13:22.123Z``."""
    s, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:03d}Z"


def parse_time(value: str) -> int:
    """Epoch ms from an ISO-8601 string (``Z`` or offset; naive = UTC) or epoch ms digits."""
    if value.isascii() and value.isdigit():
        return int(value)
    return utc_ms(datetime.fromisoformat(value))


def reading_view(node: str, role: str, ts_ms: int, seq: int | None, temperature: float | None,
                 humidity: float | None, power: float | None, comfort: float | None,
                 alert: int, source: str, extra: dict[str, float] | None) -> dict[str, Any]:
    """The JSON shape of a stored reading, shared by every read route."""
    return {
        "node": node,
        "role": role,
        "timestamp": iso_ms(ts_ms),
        "temperature": temperature,
        "humidity": humidity,
        "power": power,
        "comfortIndex": comfort,
        "alertStatus": ALERT_LEVELS[alert],
        "source": source,
        "seq": seq,
        "extra": extra or {},
    }


def stored_reading_view(reading: Reading, role: str, seq: int | None = None) -> dict[str, Any]:
    """The JSON view of a reading fogd has just normalized and stored."""
    assert reading.timestamp is not None
    return reading_view(reading.node, role, utc_ms(reading.timestamp), reading.seq if seq is None else seq,
                        reading.temperature, reading.humidity, reading.power, reading.comfortIndex,
                        ALERT_CODE.get(reading.alertStatus, 0),  # type: ignore[arg-type]
                        reading.source, reading.extra)
