"""The live cache: the latest stored reading of every node, in memory.

``/api/live_data`` and the latest reading in ``/nodes/{node}/data`` come from here,
so their cost follows the number of nodes, not the size of the history. It is
filled from the store at start-up and updated after every commit.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fogd.model import reading_view
from fogd.store import Node, ReadingRow

_decode_extra = msgspec.json.Decoder(dict[str, float]).decode


class LiveCache:
    def __init__(self) -> None:
        # node id -> (ts, seq, temperature, humidity, power, comfort, alert, source, extra)
        self._latest: dict[int, tuple] = {}
        self._snapshot: bytes | None = None

    def load(self, latest: dict[int, tuple]) -> None:
        self._latest.update(latest)
        self._snapshot = None

    def update(self, groups: list[list[ReadingRow]], flags: list[list[bool]]) -> None:
        """Keep, per node, the stored row with the newest timestamp."""
        latest = self._latest
        for group, stored in zip(groups, flags):
            for row, ok in zip(group, stored):
                if ok:
                    cur = latest.get(row[0])
                    if cur is None or row[1] >= cur[0]:
                        latest[row[0]] = row[1:]
                        self._snapshot = None

    def snapshot_json(self, nodes_by_id: dict[int, Node]) -> bytes:
        """The latest reading of every node as a JSON array ordered by node name.

        Encoded once per change: between commits, dashboards polling ``/api/live_data``
        get the same bytes back.
        """
        if self._snapshot is None:
            views = [row_view(nodes_by_id[node_id], row) for node_id, row in self._latest.items()]
            views.sort(key=lambda v: v["node"])
            self._snapshot = msgspec.json.encode(views)
        return self._snapshot

    def forget(self, node_id: int) -> None:
        self._latest.pop(node_id, None)
        self._snapshot = None

    def get(self, node_id: int) -> tuple | None:
        return self._latest.get(node_id)


def row_view(node: Node, row: tuple) -> dict[str, Any]:
    """JSON view of a stored ``(ts, seq, temperature, ..., extra)`` row."""
    ts, seq, t, h, p, ci, alert, source, extra = row
    return reading_view(node.name, node.role, ts, seq, t, h, p, ci, alert, source,
                        _decode_extra(extra) if extra else None)
