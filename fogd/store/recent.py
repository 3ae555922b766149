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
from typing import Iterable

#: (ts, temperature, humidity, power, comfort): a window row, as WINDOW_SQL returns it.
Row = tuple


class RecentReadings:
    def __init__(self) -> None:
        self._rows: dict[int, list[Row]] = {}  # per node, oldest first
        self._ts: dict[int, list[int]] = {}  # their timestamps (for bisect)
        self._keep: dict[int, int] = {}  # the window size asked for
        self._since: dict[int, int] = {}  # the earliest start asked for (older rows may be missing)
        self.hits = 0  # windows served from memory

    def window(self, node_id: int, since_ms: int, until_ms: int, limit: int) -> list[Row] | None:
        """The newest ``limit`` held rows in ``[since_ms, until_ms]``, oldest first;
        None when this node is not held (or not for this ``limit``, or not from as early
        as ``since_ms``, or has rows past ``until_ms``): read SQLite then. The analyser's
        windows only move forward, so they are served from memory."""
        ts = self._ts.get(node_id)
        if ts is None or self._keep[node_id] != limit or (ts and ts[-1] > until_ms) \
                or since_ms < self._since[node_id]:
            return None
        lo = max(bisect.bisect_left(ts, since_ms), len(ts) - limit)
        self.hits += 1
        return self._rows[node_id][lo:]

    def holds(self, node_id: int, limit: int) -> bool:
        return self._keep.get(node_id) == limit

    def seed(self, node_id: int, rows: list[Row], since_ms: int, limit: int) -> None:
        """Hold ``rows`` (a window from ``since_ms`` read from SQLite, oldest first)."""
        self._rows[node_id] = list(rows)
        self._ts[node_id] = [r[0] for r in rows]
        self._since[node_id] = since_ms
        self._keep[node_id] = limit

    def feed(self, stored: Iterable[tuple]) -> None:
        """Committed reading rows (ReadingRow: node_id, ts, seq, temperature, humidity,
        power, comfort, ...) of any node; those of held nodes are kept."""
        held = self._ts
        for row in stored:
            ts = held.get(row[0])
            if ts is None:
                continue
            rows = self._rows[row[0]]
            item = (row[1], row[3], row[4], row[5], row[6])
            if not ts or row[1] >= ts[-1]:
                ts.append(row[1])
                rows.append(item)
            else:
                i = bisect.bisect_right(ts, row[1])
                ts.insert(i, row[1])
                rows.insert(i, item)
            keep = self._keep[row[0]]
            if len(ts) > keep + 64:  # trim now and then, not on every reading
                del ts[:-keep], rows[:-keep]

    def forget(self, node_id: int | None = None) -> None:
        """Stop holding ``node_id`` (every node when None)."""
        for d in (self._rows, self._ts, self._since, self._keep):
            if node_id is None:
                d.clear()
            else:
                d.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._rows)
