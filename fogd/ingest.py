"""The ingest pipeline: validated readings -> normalizer hooks -> group commit.

``POST /ingest`` (``fogd/http/ingest.py``) decodes the body and hands the readings to
:meth:`Ingestor.ingest`. Everything here is per batch: one hook call, one node
registration check, one submission to the writer.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from fogd.config import Config
from fogd.errors import FogdError, Invalid, Overloaded
from fogd.metrics import Metrics
from fogd.model import ALERT_CODE, Reading, now_ms, utc_ms
from fogd.plugins.host import PluginHost
from fogd.store import ReadingRow, Store
from fogd.store.writer import GroupCommitWriter

_encode = msgspec.json.encode
_METRIC_TYPES = (float, int, type(None))


class Ingestor:
    def __init__(self, config: Config, plugins: PluginHost, store: Store, writer: GroupCommitWriter,
                 metrics: Metrics) -> None:
        self._config = config
        self._metrics = metrics
        self._plugins = plugins
        self._store = store
        self._writer = writer
        normalizers = plugins.pm.hook.fogd_normalize_readings.get_hookimpls()
        # Only third-party normalizers can hand back values of the wrong type.
        self._check_output = any(i.plugin_name != "default_normalize" for i in normalizers)

    async def ingest(self, readings: list[Reading], linger: bool = False) -> list[bool]:
        """Normalize and store ``readings`` (already decoded); returns stored flags.
        ``linger``: the commit may wait for company (streamed readings; see the writer).

        Raises :class:`Invalid` naming the index of a reading without any metric;
        nothing of the batch is stored then.
        """
        now = now_ms()
        now_dt = datetime.fromtimestamp(now / 1000, timezone.utc)
        for i, r in enumerate(readings):
            if r.temperature is None and r.humidity is None and r.power is None and not r.extra:
                raise Invalid(f"$[{i}]: a reading needs at least one of temperature, humidity, power, extra",
                              field=f"$[{i}]", index=i)
            if r.timestamp is None:
                r.timestamp = now_dt
        self._plugins.call_each("fogd_normalize_readings", readings=readings, config=self._config)
        if self._check_output:
            _check_normalized(readings)

        limit = self._config.ingest.max_queue_rows
        if self._writer.queued_rows + len(readings) > limit:
            raise Overloaded(f"fogd is behind: {self._writer.queued_rows} readings wait to be committed "
                             f"(ingest.max_queue_rows = {limit}); retry shortly", queued=self._writer.queued_rows)
        nodes = self._store.nodes
        new = {r.node: r.role or "fog" for r in readings if r.node not in nodes}
        if new:
            await self._store.register_nodes(new, now)
        rows: list[ReadingRow] = [
            (nodes[r.node].id, now if r.timestamp is now_dt else utc_ms(r.timestamp), r.seq,
             r.temperature, r.humidity, r.power, r.comfortIndex, ALERT_CODE.get(r.alertStatus, 0),
             r.source, _encode(r.extra).decode() if r.extra else None)
            for r in readings
        ]
        flags = await self._writer.submit(rows, linger)
        stored = sum(flags)
        if stored:
            self._metrics.readings_stored.inc(stored)
        if stored != len(flags):
            self._metrics.readings_duplicate.inc(len(flags) - stored)
        return flags


def _check_normalized(readings: list[Reading]) -> None:
    for i, r in enumerate(readings):
        for name in ("temperature", "humidity", "power", "comfortIndex", "seq"):
            if type(getattr(r, name)) not in _METRIC_TYPES:
                raise FogdError(f"a normalizer plugin set $[{i}].{name} to {getattr(r, name)!r}; "
                                "nothing of this batch was stored", field=f"$[{i}].{name}")
        if not isinstance(r.timestamp, datetime) or r.alertStatus not in ALERT_CODE:
            raise FogdError(f"a normalizer plugin left $[{i}] without a valid timestamp or alertStatus; "
                            "nothing of this batch was stored", field=f"$[{i}]")
        if any(type(v) not in _METRIC_TYPES or v is None for v in r.extra.values()):
            raise FogdError(f"a normalizer plugin put a non-number into $[{i}].extra; "
                            "nothing of this batch was stored", field=f"$[{i}].extra")
