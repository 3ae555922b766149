"""Each analysed node's newest readings in memory, so analysis windows need no SQL.

An analysis pass reads every fog node's window (the newest ``analysis.max_points``
readings of the last ``analysis.window`` seconds) every ``analysis.interval``; from
SQLite that was half the pass's CPU (180 nodes: 77 of 160 ms; a node's rows lie
scattered among every other node's pages). :class:`RecentReadings` keeps, per node, the
rows such a window is made of, and the store keeps it true:

- a node enters the first time its window is read from SQLite (``seed``), and only
  while no write transaction is open (else rows committed by the writer's thread could
  be in the read *and* fed again after the commit) and when it has no reading after
  the window's end (the held rows must be the node's newest);
- every committed reading of a node it holds is fed in timestamp order (``feed``),
  late ones (an agent's backlog) sorted into place;
- deleting readings (retention, ``/cleanup``) drops the nodes concerned (``forget``);
  they are read from SQLite again next time;
- a window that would end before the newest held reading (an agent whose clock runs
  ahead) is read from SQLite, without re-seeding (that would drop the reading ahead),
  as are windows over ``SYNC_WINDOW_ROWS``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable

#: (ts, temperature, humidity, power, comfort): a window row, as WINDOW_SQL returns it.
Row = tuple
_ts = itemgetter(0)


@dataclass
class _Held:
    rows: list[Row]  # oldest first
    since: int  # the earliest start asked for (older rows may be missing)
    limit: int  # the window size asked for


class RecentReadings:
    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}
        self.hits = 0  # windows served from memory

    def window(self, node_id: int, since_ms: int, until_ms: int, limit: int) -> list[Row] | None:
        """The newest ``limit`` held rows in ``[since_ms, until_ms]``, oldest first;
        None when this node is not held (or not for this ``limit``, or not from as early
        as ``since_ms``, or has rows past ``until_ms``): read SQLite then. The analyser's
        windows only move forward, so they are served from memory."""
        held = self._held.get(node_id)
        if held is None or held.limit != limit or since_ms < held.since \
                or (held.rows and held.rows[-1][0] > until_ms):
            return None
        rows = held.rows
        lo = max(bisect.bisect_left(rows, since_ms, key=_ts), len(rows) - limit)
        self.hits += 1
        return rows[lo:]

    def holds(self, node_id: int, limit: int) -> bool:
        held = self._held.get(node_id)
        return held is not None and held.limit == limit

    def seed(self, node_id: int, rows: list[Row], since_ms: int, limit: int) -> None:
        """Hold ``rows`` (a window from ``since_ms`` read from SQLite, oldest first)."""
        self._held[node_id] = _Held(list(rows), since_ms, limit)

    def feed(self, stored: Iterable[tuple]) -> None:
        """Committed reading rows (ReadingRow: node_id, ts, seq, temperature, humidity,
        power, comfort, ...) of any node; those of held nodes are kept."""
        for row in stored:
            held = self._held.get(row[0])
            if held is None:
                continue
            rows = held.rows
            item = (row[1], row[3], row[4], row[5], row[6])
            if not rows or row[1] >= rows[-1][0]:
                rows.append(item)
            else:  # late (an agent's backlog): into its place
                bisect.insort_right(rows, item, key=_ts)
            if len(rows) > held.limit + 64:  # trim now and then, not on every reading
                del rows[:-held.limit]

    def forget(self, node_id: int | None = None) -> None:
        """Stop holding ``node_id`` (every node when None)."""
        if node_id is None:
            self._held.clear()
        else:
            self._held.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._held)
