"""The SQLite store: one write connection (behind a lock), one read connection.

(Plus a connection for background WAL checkpoints and a read-only one that the event
loop's thread uses for analysis windows; small commits and roll-up steps use the write
connection from the event loop's thread while the lock is free.)

WAL mode lets the read connection serve queries while the writer commits. With
``synchronous = normal`` (the default) a committed transaction survives a crash of
fogd (``kill -9``); ``full`` also survives a power cut, at some throughput.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import aiosqlite
import msgspec

from fogd.errors import FogdError, Unavailable
from fogd.store.migrations import MIGRATIONS, SCHEMA_VERSION
from fogd.store.recent import RecentReadings

log = logging.getLogger("fogd.store")

#: A reading as the store writes it.
ReadingRow = tuple[int, int, int | None, float | None, float | None, float | None, float | None, int, str, str | None]
_ROW_COLUMNS = "node_id, ts, seq, temperature, humidity, power, comfort, alert, source, extra"
_SELECT = "ts, seq, temperature, humidity, power, comfort, alert, source, extra"
#: Seconds between background WAL checkpoints while readings arrive quickly...
CHECKPOINT_INTERVAL = 0.5
#: ...meaning at least this many rows since the last one; fewer rows wait up to
#: CHECKPOINT_MAX_INTERVAL (a trickle of small commits adds a few pages a second).
CHECKPOINT_ROWS = 2000
CHECKPOINT_MAX_INTERVAL = 5.0
#: Rows per INSERT statement: 10 variables each, well under SQLite's 32,766.
INSERT_CHUNK = 1000
#: Group commits up to this many rows run on the event loop's own thread (see
#: :meth:`Store.insert_readings_now`); bigger ones go to the writer connection's thread.
SYNC_COMMIT_ROWS = 16
#: Roll-up steps of up to this many readings also run on the event loop's thread.
SYNC_ROLLUP_ROWS = 1000
#: Analysis windows of up to this many readings are read on the event loop's thread.
SYNC_WINDOW_ROWS = 1000
HISTORY_SQL = (f"SELECT {_SELECT} FROM readings WHERE node_id = ? AND ts BETWEEN ? AND ? "
               "ORDER BY ts DESC LIMIT ?")
SERIES_COLUMNS = ("temperature", "humidity", "power", "comfort")
ROLLUP_CHUNK = 20_000
ROLLUP_SQL = (
    "INSERT INTO rollup_1m (node_id, minute, n_temperature, s_temperature, n_humidity, s_humidity, "
    "n_power, s_power, n_comfort, s_comfort) "
    "SELECT node_id, ts / 60000, COUNT(temperature), TOTAL(temperature), COUNT(humidity), TOTAL(humidity), "
    "COUNT(power), TOTAL(power), COUNT(comfort), TOTAL(comfort) FROM readings WHERE id > ? AND id <= ? "
    "GROUP BY node_id, ts / 60000 "
    "ON CONFLICT (node_id, minute) DO UPDATE SET "
    "n_temperature = n_temperature + excluded.n_temperature, s_temperature = s_temperature + excluded.s_temperature, "
    "n_humidity = n_humidity + excluded.n_humidity, s_humidity = s_humidity + excluded.s_humidity, "
    "n_power = n_power + excluded.n_power, s_power = s_power + excluded.s_power, "
    "n_comfort = n_comfort + excluded.n_comfort, s_comfort = s_comfort + excluded.s_comfort")
WINDOW_SQL = ("SELECT ts, temperature, humidity, power, comfort FROM readings "
              "WHERE node_id = ? AND ts BETWEEN ? AND ? ORDER BY ts DESC LIMIT ?")
#: Has a node readings after a window's end (an agent clock running ahead)? Then its
#: window is not held in memory: the held rows must be the node's newest.
LATER_SQL = "SELECT 1 FROM readings WHERE node_id = ? AND ts > ? LIMIT 1"
ALERT_COLUMNS = ("id, node_id, rule, severity, state, message, evidence, opened_ms, updated_ms, cleared_ms, "
                 "acked_ms, findings, normal_streak")
LATEST_SQL = (f"SELECT n.id, {_SELECT} FROM nodes n JOIN readings r ON r.id = "
              "(SELECT id FROM readings WHERE node_id = n.id ORDER BY ts DESC LIMIT 1)")




@functools.lru_cache(maxsize=INSERT_CHUNK)
def _insert_sql(n: int) -> str:
    return (f"INSERT OR IGNORE INTO readings ({_ROW_COLUMNS}) VALUES "
            + ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * n) + " RETURNING node_id, seq")


def _rollup(conn: sqlite3.Connection, max_rows: int, only_if_all: bool = False) -> int | None:
    """One roll-up step on a raw connection; with ``only_if_all``, None (nothing done)
    when more than ``max_rows`` readings wait."""
    (upto,), = conn.execute("SELECT value FROM meta WHERE key = 'rollup_upto'").fetchall()
    (last, count), = conn.execute(
        "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM readings WHERE id > ? ORDER BY id LIMIT ?)",
        (upto, max_rows + 1 if only_if_all else max_rows)).fetchall()
    if not count:
        return 0
    if only_if_all and count > max_rows:
        return None
    conn.execute("BEGIN")
    conn.execute(ROLLUP_SQL, (upto, last))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'rollup_upto'", (last,))
    conn.execute("COMMIT")
    return count


def _stored_flags(groups: list[list[ReadingRow]], inserted: set[tuple[int, int | None]]) -> list[list[bool]]:
    """Which rows were stored, given the (node_id, seq) pairs RETURNING produced.

    SQLite inserts in order, so of two rows with the same (node, seq) the first is the
    stored one. Rows without seq are never duplicates.
    """
    seen: set[tuple[int, int]] = set()
    flags = []
    for group in groups:
        f = []
        for row in group:
            if row[2] is None:
                f.append(True)
                continue
            key = (row[0], row[2])
            f.append(key in inserted and key not in seen)
            seen.add(key)
        flags.append(f)
    return flags


class TokenExists(FogdError):
    status = 409
    kind = "conflict"


class StoreFailed(Unavailable):
    """SQLite refused a write (disk full, I/O error, locked); nothing was acknowledged."""

    kind = "store_unavailable"


@dataclass
class Node:
    """A node as the store knows it."""

    id: int
    name: str
    role: str
    provisioner: str
    created_ms: int
    runtime: dict[str, Any] = field(default_factory=dict)


class Store:
    """Open with :meth:`open`; all writes go through the single write connection."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection,
                 checkpointer: aiosqlite.Connection, window_reader: sqlite3.Connection | None = None) -> None:
        self.path = path
        self._w = writer
        self._r = reader
        self._ckpt = checkpointer
        # A plain read-only connection used only from the event loop's thread (window()).
        self._wr = window_reader
        self.recent = RecentReadings()  # analysis windows from memory (fogd/store/recent.py)
        self._ckpt_task: asyncio.Task[None] | None = None
        self._ckpt_last = 0.0
        self._ckpt_rows = 0
        self._write_lock = asyncio.Lock()
        self.nodes: dict[str, Node] = {}
        self.nodes_by_id: dict[int, Node] = {}

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(cls, path: Path, synchronous: str = "normal") -> "Store":
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each write statement is its own transaction unless we BEGIN.
        # check_same_thread=False: small commits run on the event loop's thread
        # (insert_readings_now); every use of the connection is under _write_lock.
        writer = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        try:
            await writer.execute("PRAGMA journal_mode = WAL")
            await writer.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            await writer.execute("PRAGMA busy_timeout = 5000")
            # Checkpoints mostly run beside the writer (checkpoint_soon); the writer's own
            # automatic checkpoint is the backstop that bounds the WAL (~40 MB). A large
            # WAL also lets hot index pages rewritten by many commits be copied back once
            # (+15% on 1,000-row commits, docs/NOTES.md).
            await writer.execute("PRAGMA wal_autocheckpoint = 10000")
            await migrate(writer, path)
            reader = await aiosqlite.connect(path)
            checkpointer = await aiosqlite.connect(path)
        except BaseException:
            await writer.close()
            raise
        await reader.execute("PRAGMA query_only = 1")
        for conn in (reader, checkpointer):
            await conn.execute("PRAGMA busy_timeout = 5000")
        window_reader = sqlite3.connect(path, check_same_thread=False)
        window_reader.execute("PRAGMA query_only = 1")
        window_reader.execute("PRAGMA busy_timeout = 5000")
        store = cls(path, writer, reader, checkpointer, window_reader)
        await store._load_nodes()
        return store

    async def close(self) -> None:
        if self._ckpt_task is not None:
            await asyncio.gather(self._ckpt_task, return_exceptions=True)
        if self._wr is not None:
            self._wr.close()
        for conn in (self._ckpt, self._r, self._w):
            await conn.close()

    def checkpoint_soon(self, rows: int = CHECKPOINT_ROWS, interval: float = CHECKPOINT_INTERVAL) -> None:
        """After a commit of ``rows``: start a passive WAL checkpoint on its own connection,
        at most every ``interval`` s, and only every CHECKPOINT_MAX_INTERVAL s while fewer
        than CHECKPOINT_ROWS rows were committed since the last one.

        A passive checkpoint never blocks the writer, so commits do not stall copying the
        WAL back into the database (the cause of 25 ms p99 spikes when the writer's own
        automatic checkpoint did that work inside a commit). At low rates checkpointing
        every 0.5 s cost a thread hop, page copies and two fsyncs for a few new pages.
        """
        self._ckpt_rows += rows
        now = time.monotonic()
        if (self._ckpt_task is not None and not self._ckpt_task.done()) or now - self._ckpt_last < interval:
            return
        if self._ckpt_rows < CHECKPOINT_ROWS and now - self._ckpt_last < CHECKPOINT_MAX_INTERVAL:
            return
        self._ckpt_rows = 0
        self._ckpt_last = now
        self._ckpt_task = asyncio.create_task(self.checkpoint(), name="fogd-wal-checkpoint")

    async def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL back into the database (``TRUNCATE`` also empties the WAL file)."""
        try:
            await self._ckpt.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error as exc:  # the writer's automatic checkpoint still bounds the WAL
            log.warning("WAL checkpoint failed: %s", exc)

    async def _load_nodes(self) -> None:
        rows = await self._r.execute_fetchall(
            "SELECT id, name, role, provisioner, created_ms, runtime FROM nodes ORDER BY id")
        for id_, name, role, prov, created, runtime in rows:
            self._remember(Node(id_, name, role, prov, created, msgspec.json.decode(runtime)))

    def _remember(self, node: Node) -> None:
        self.nodes[node.name] = node
        self.nodes_by_id[node.id] = node

    # ------------------------------------------------------------------ writes
    async def register_nodes(self, wanted: dict[str, str], created_ms: int, provisioner: str = "external") -> None:
        """Make sure every ``name -> role`` in ``wanted`` exists (existing ones are kept)."""
        async with self._write_lock:
            missing = [(n, role, provisioner, created_ms) for n, role in wanted.items() if n not in self.nodes]
            if not missing:
                return
            try:
                # One autocommitted statement: all or none, and RETURNING gives the ids.
                rows = await self._w.execute_fetchall(
                    "INSERT INTO nodes (name, role, provisioner, created_ms) VALUES "
                    + ",".join(["(?,?,?,?)"] * len(missing))
                    + " ON CONFLICT(name) DO NOTHING RETURNING id, name, role, provisioner, created_ms",
                    [v for row in missing for v in row])
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not register nodes: {exc}") from exc
            for id_, name, role, prov, created in rows:
                self._remember(Node(id_, name, role, prov, created))

    async def save_node(self, name: str, role: str, provisioner: str, runtime: dict[str, Any],
                        created_ms: int) -> Node:
        """Create or update a node record with its provisioner and runtime facts."""
        encoded = msgspec.json.encode(runtime).decode()
        async with self._write_lock:
            try:
                rows = await self._w.execute_fetchall(
                    "INSERT INTO nodes (name, role, provisioner, created_ms, runtime) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET role = excluded.role, provisioner = excluded.provisioner, "
                    "runtime = excluded.runtime RETURNING id, created_ms",
                    (name, role, provisioner, created_ms, encoded))
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not save node {name!r}: {exc}") from exc
        (id_, created), = rows
        node = Node(id_, name, role, provisioner, created, runtime)
        self._remember(node)
        return node

    async def delete_nodes(self, names: list[str]) -> None:
        """Forget nodes with their readings and events.

        Readings go in chunks, each its own short transaction, so a node with a long
        history never holds the writer (and ingest) for long.
        """
        nodes = [self.nodes[n] for n in names if n in self.nodes]
        for node in nodes:
            while True:
                async with self._write_lock:
                    try:
                        cur = await self._w.execute(
                            "DELETE FROM readings WHERE id IN "
                            "(SELECT id FROM readings WHERE node_id = ? LIMIT 5000)", (node.id,))
                    except sqlite3.Error as exc:
                        raise StoreFailed(f"could not delete readings of {node.name!r}: {exc}") from exc
                self.recent.forget(node.id)
                if cur.rowcount < 5000:
                    break
            async with self._write_lock:
                try:
                    await self._w.execute("BEGIN")
                    await self._w.execute("DELETE FROM events WHERE node_id = ?", (node.id,))
                    await self._w.execute("DELETE FROM alerts WHERE node_id = ?", (node.id,))
                    await self._w.execute("DELETE FROM rollup_1m WHERE node_id = ?", (node.id,))
                    await self._w.execute("DELETE FROM readings WHERE node_id = ?", (node.id,))
                    await self._w.execute("DELETE FROM nodes WHERE id = ?", (node.id,))
                    await self._w.execute("COMMIT")
                except sqlite3.Error as exc:
                    await self._safe_rollback()
                    raise StoreFailed(f"could not delete node {node.name!r}: {exc}") from exc
            del self.nodes[node.name]
            del self.nodes_by_id[node.id]
            self.recent.forget(node.id)

    async def insert_readings(self, groups: list[list[ReadingRow]]) -> list[list[bool]]:
        """Insert several requests' rows atomically; return stored flags per row.

        A row whose (node, seq) is already stored, or appears earlier in ``groups``, is
        a duplicate (flag False). Rows go in as multi-row ``INSERT OR IGNORE ...
        RETURNING`` statements: what comes back is exactly what was stored, and up to
        :data:`INSERT_CHUNK` rows cost one autocommitted statement — one trip to the
        SQLite thread per group commit, which is what single-reading throughput hinges on.
        """
        rows = [row for group in groups for row in group]
        chunks = [rows[i:i + INSERT_CHUNK] for i in range(0, len(rows), INSERT_CHUNK)]
        inserted: set[tuple[int, int | None]] = set()
        async with self._write_lock:
            try:
                if len(chunks) > 1:
                    await self._w.execute("BEGIN")
                for chunk in chunks:
                    inserted.update(await self._w.execute_fetchall(
                        _insert_sql(len(chunk)), [v for row in chunk for v in row]))
                if len(chunks) > 1:
                    await self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    await self._safe_rollback()
                raise StoreFailed(f"could not store readings: {exc}") from exc
            flags = _stored_flags(groups, inserted)
            self._feed_recent(groups, flags)  # still under the lock: see RecentReadings
        return flags

    def insert_readings_now(self, groups: list[list[ReadingRow]]) -> list[list[bool]] | None:
        """:meth:`insert_readings` for a small group commit, run right here on the event
        loop's thread; None (nothing done) when the writer is busy or the group is big.

        At low rates every commit is a handful of rows, and the trip to the connection's
        thread and back (a queue wake-up there, a self-pipe write and an extra loop
        iteration here) costs more CPU than SQLite's own work: a one-row autocommitted
        insert in WAL mode with ``synchronous = normal`` writes the WAL without an fsync.
        Same statement, same atomicity, same stored flags; only the thread differs.
        """
        if self._write_lock.locked():
            return None  # a transaction may be open on the writer (roll-up, purge...)
        rows = [row for group in groups for row in group]
        if len(rows) > SYNC_COMMIT_ROWS:
            return None
        conn: sqlite3.Connection = self._w._conn  # aiosqlite's sqlite3 connection (private, stable since 0.17)
        try:
            inserted = set(conn.execute(_insert_sql(len(rows)), [v for row in rows for v in row]).fetchall())
        except sqlite3.Error as exc:
            raise StoreFailed(f"could not store readings: {exc}") from exc
        flags = _stored_flags(groups, inserted)
        self._feed_recent(groups, flags)
        return flags

    def _feed_recent(self, groups: list[list[ReadingRow]], flags: list[list[bool]]) -> None:
        if len(self.recent):
            self.recent.feed(row for group, fl in zip(groups, flags) for row, ok in zip(group, fl) if ok)

    # ------------------------------------------------------------------ analysis
    async def window(self, node_id: int, since_ms: int, until_ms: int, limit: int) -> list[tuple]:
        """The newest ``limit`` readings of one node in ``[since_ms, until_ms]``, oldest
        first: ``(ts, temperature, humidity, power, comfort)``.

        An analysis window (up to SYNC_WINDOW_ROWS) is read right here on the event
        loop's thread, after yielding once so a pass over many nodes never holds the loop
        for more than one node: a pass made one trip to the reader thread per node, ~20 %
        of its CPU. Long reads (backtests) still go to the reader thread. Once read, a
        node's window is held in memory and kept up to date (``self.recent``).
        """
        if self._wr is not None and limit <= SYNC_WINDOW_ROWS:
            await asyncio.sleep(0)
            held = self.recent.window(node_id, since_ms, until_ms, limit)
            if held is not None:
                return held
            rows = self._wr.execute(WINDOW_SQL, (node_id, since_ms, until_ms, limit)).fetchall()
            rows.reverse()
            if not self._write_lock.locked() and node_id in self.nodes_by_id \
                    and not self.recent.holds(node_id, limit) \
                    and not self._wr.execute(LATER_SQL, (node_id, until_ms)).fetchone():
                self.recent.seed(node_id, rows, since_ms, limit)
            return rows
        else:
            rows = await self._r.execute_fetchall(WINDOW_SQL, (node_id, since_ms, until_ms, limit))
        return list(reversed(rows))

    async def rollup_step(self, max_rows: int = ROLLUP_CHUNK) -> int:
        """Fold up to ``max_rows`` readings past the watermark into ``rollup_1m``, in one
        short transaction; returns how many were folded (0: caught up).

        A step of at most SYNC_ROLLUP_ROWS readings (the usual case: a second's worth at
        modest rates) runs right here on the event loop's thread, like small group
        commits; bigger ones go to the writer connection's thread.
        """
        if not self._write_lock.locked():
            conn: sqlite3.Connection = self._w._conn
            try:
                folded = _rollup(conn, min(max_rows, SYNC_ROLLUP_ROWS), only_if_all=True)
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise StoreFailed(f"could not roll up readings: {exc}") from exc
            if folded is not None:
                return folded
        async with self._write_lock:
            try:
                (upto,), = await self._w.execute_fetchall("SELECT value FROM meta WHERE key = 'rollup_upto'")
                rows = await self._w.execute_fetchall(
                    "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM readings WHERE id > ? ORDER BY id LIMIT ?)",
                    (upto, max_rows))
                last, count = rows[0]
                if not count:
                    return 0
                await self._w.execute("BEGIN")
                await self._w.execute(ROLLUP_SQL, (upto, last))
                await self._w.execute("UPDATE meta SET value = ? WHERE key = 'rollup_upto'", (last,))
                await self._w.execute("COMMIT")
                return count
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    await self._safe_rollback()
                raise StoreFailed(f"could not roll up readings: {exc}") from exc

    async def purge_step(self, raw_before_ms: int | None, rollup_before_ms: int | None, max_rows: int) -> int:
        """Delete up to ``max_rows`` old readings (only rolled-up ones) per node, and old
        roll-ups; each node's deletion is its own short transaction. Returns rows deleted."""
        deleted = 0
        for node_id in list(self.nodes_by_id):
            async with self._write_lock:
                try:
                    if raw_before_ms is not None:
                        cur = await self._w.execute(
                            "DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE node_id = ? AND ts < ? "
                            "AND id <= (SELECT value FROM meta WHERE key = 'rollup_upto') LIMIT ?)",
                            (node_id, raw_before_ms, max_rows))
                        deleted += cur.rowcount
                        if cur.rowcount:
                            self.recent.forget(node_id)
                    if rollup_before_ms is not None:
                        cur = await self._w.execute(
                            "DELETE FROM rollup_1m WHERE node_id = ? AND minute < ?",
                            (node_id, rollup_before_ms // 60_000))
                        deleted += cur.rowcount
                except sqlite3.Error as exc:
                    raise StoreFailed(f"could not purge old readings: {exc}") from exc
        return deleted

    async def rollup_lag(self) -> int:
        """Readings stored but not yet folded into the roll-ups."""
        rows = await self._r.execute_fetchall(
            "SELECT COALESCE((SELECT MAX(id) FROM readings), 0) - (SELECT value FROM meta WHERE key = 'rollup_upto')")
        return max(0, rows[0][0])

    async def series(self, node_id: int, metric: str, from_ms: int, to_ms: int, bucket_ms: int,
                     alerts: tuple[int, ...] | None = None) -> list[tuple[int, float]]:
        """One metric of one node averaged per ``bucket_ms``, in SQL: ``[(bucket_start, avg)]``.

        ``metric`` is a column name (temperature, humidity, power, comfort) or
        ``extra.<name>``; ``alerts`` restricts to readings of those alert tiers. Buckets of
        a minute or more of a core metric come from the per-minute roll-ups (their
        newest minute lags the readings by at most the roll-up interval, ~1 s).
        """
        if metric in SERIES_COLUMNS and alerts is None and bucket_ms >= 60_000:
            bucket = -(-bucket_ms // 60_000)  # whole minutes
            return list(await self._r.execute_fetchall(
                f"SELECT (minute / ?) * ? * 60000 AS t, SUM(s_{metric}) / SUM(n_{metric}) FROM rollup_1m "
                f"WHERE node_id = ? AND minute BETWEEN ? AND ? GROUP BY minute / ? HAVING SUM(n_{metric}) > 0 "
                "ORDER BY t", (bucket, bucket, node_id, from_ms // 60_000, to_ms // 60_000, bucket)))
        if metric in SERIES_COLUMNS:
            expr, params = metric, []
        elif metric.startswith("extra."):
            expr, params = "json_extract(extra, ?)", [f"$.{metric[6:]}"]
        else:
            raise ValueError(f"unknown metric {metric!r}")
        where = "node_id = ? AND ts BETWEEN ? AND ?"
        args: list[Any] = [*params, node_id, from_ms, to_ms]
        if alerts is not None:
            where += f" AND alert IN ({','.join('?' * len(alerts))})"
            args += list(alerts)
        sql = (f"SELECT (ts / ?) * ? AS t, AVG(v) FROM (SELECT ts, {expr} AS v FROM readings WHERE {where}) "
               "WHERE v IS NOT NULL GROUP BY ts / ? ORDER BY t")
        return list(await self._r.execute_fetchall(sql, (bucket_ms, bucket_ms, *args, bucket_ms)))

    async def live_alerts(self) -> list[tuple]:
        """Alerts not cleared: ``(id, node_id, rule, severity, state, findings, normal_streak,
        message, evidence)``."""
        return list(await self._r.execute_fetchall(
            "SELECT id, node_id, rule, severity, state, findings, normal_streak, message, evidence FROM alerts "
            "WHERE state != 'cleared'"))

    async def record_analysis(self, events: list[tuple], opened: list[tuple], updated: list[tuple],
                              cleared: list[tuple]) -> list[int]:
        """Write one analysis pass atomically; returns the ids of the opened alerts.

        ``events``: ``(ts, node_id, kind, rule, severity, message, evidence_json)``;
        ``opened``: ``(node_id, rule, severity, message, evidence_json, ts)``;
        ``updated``: ``(severity, message, evidence_json, ts, findings, normal_streak, id)``;
        ``cleared``: ``(ts, id)``.
        """
        ids: list[int] = []
        async with self._write_lock:
            try:
                await self._w.execute("BEGIN")
                if events:
                    await self._w.executemany(
                        "INSERT INTO events (ts, node_id, kind, rule, severity, message, evidence) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", events)
                for row in opened:
                    cur = await self._w.execute(
                        "INSERT INTO alerts (node_id, rule, severity, state, message, evidence, opened_ms, "
                        "updated_ms) VALUES (?, ?, ?, 'open', ?, ?, ?, ?)", (*row, row[-1]))
                    ids.append(cur.lastrowid)  # type: ignore[arg-type]
                if updated:
                    await self._w.executemany(
                        "UPDATE alerts SET severity = ?, message = ?, evidence = ?, updated_ms = ?, "
                        "findings = ?, normal_streak = ? WHERE id = ?", updated)
                if cleared:
                    await self._w.executemany(
                        "UPDATE alerts SET state = 'cleared', cleared_ms = ?, updated_ms = ? WHERE id = ?",
                        [(ts, ts, id_) for ts, id_ in cleared])
                await self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._safe_rollback()
                raise StoreFailed(f"could not record the analysis: {exc}") from exc
        return ids

    async def ack_alert(self, alert_id: int, ts: int) -> tuple | None:
        """Acknowledge a live alert; returns the alert row, or None when there is none."""
        async with self._write_lock:
            try:
                rows = await self._w.execute_fetchall(
                    f"UPDATE alerts SET state = 'acknowledged', acked_ms = ? WHERE id = ? AND state != 'cleared' "
                    f"RETURNING {ALERT_COLUMNS}", (ts, alert_id))
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not acknowledge alert {alert_id}: {exc}") from exc
        return rows[0] if rows else None

    async def alerts(self, states: tuple[str, ...], node_id: int | None, severity: str | None,
                     limit: int) -> list[tuple]:
        where = [f"state IN ({','.join('?' * len(states))})"]
        params: list[Any] = list(states)
        if node_id is not None:
            where.append("node_id = ?")
            params.append(node_id)
        if severity is not None:
            where.append("severity = ?")
            params.append(severity)
        return list(await self._r.execute_fetchall(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} ORDER BY updated_ms DESC, id DESC "
            "LIMIT ?", (*params, limit)))

    async def alert(self, alert_id: int) -> tuple | None:
        rows = await self._r.execute_fetchall(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return rows[0] if rows else None

    async def events(self, node_id: int | None, since_ms: int | None, until_ms: int | None,
                     limit: int) -> list[tuple]:
        """Events newest first: ``(id, ts, node_id, kind, rule, severity, message, evidence)``."""
        lo = -(2**63) if since_ms is None else since_ms
        hi = 2**63 - 1 if until_ms is None else until_ms
        if node_id is None:
            sql = ("SELECT id, ts, node_id, kind, rule, severity, message, evidence FROM events "
                   "WHERE ts BETWEEN ? AND ? ORDER BY ts DESC, id DESC LIMIT ?")
            params: tuple = (lo, hi, limit)
        else:
            sql = ("SELECT id, ts, node_id, kind, rule, severity, message, evidence FROM events "
                   "WHERE node_id = ? AND ts BETWEEN ? AND ? ORDER BY ts DESC, id DESC LIMIT ?")
            params = (node_id, lo, hi, limit)
        return list(await self._r.execute_fetchall(sql, params))

    async def alert_counts(self) -> dict[tuple[str, str], int]:
        """Live alerts by (state, severity)."""
        rows = await self._r.execute_fetchall(
            "SELECT state, severity, COUNT(*) FROM alerts WHERE state != 'cleared' GROUP BY state, severity")
        return {(state, sev): n for state, sev, n in rows}

    async def add_event(self, event: tuple) -> None:
        """One event ``(ts, node_id, kind, rule, severity, message, evidence_json)``."""
        await self.record_analysis([event], [], [], [])

    # ------------------------------------------------------------------ tokens, audit
    async def save_token(self, name: str, role: str, node: str | None, digest: str, ts: int) -> None:
        async with self._write_lock:
            try:
                await self._w.execute(
                    "INSERT INTO tokens (name, role, node, hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                    (name, role, node, digest, ts))
            except sqlite3.IntegrityError:
                raise TokenExists(f"a token named {name!r} exists; revoke it or pick another name",
                                  field="name", name=name) from None
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not save token {name!r}: {exc}") from exc

    async def token_by_hash(self, digest: str) -> tuple | None:
        """``(name, role, node, revoked_ms)`` of the token with this hash, if any."""
        rows = await self._r.execute_fetchall(
            "SELECT name, role, node, revoked_ms FROM tokens WHERE hash = ?", (digest,))
        return rows[0] if rows else None

    async def tokens(self) -> list[tuple]:
        return list(await self._r.execute_fetchall(
            "SELECT name, role, node, created_ms, revoked_ms FROM tokens ORDER BY name"))

    async def revoke_token(self, name: str, ts: int) -> bool:
        async with self._write_lock:
            try:
                cur = await self._w.execute(
                    "UPDATE tokens SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL", (ts, name))
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not revoke token {name!r}: {exc}") from exc
        return cur.rowcount > 0

    async def revoke_agent_tokens(self, node: str, ts: int) -> int:
        """Revoke every live agent token of ``node`` (its agent is gone)."""
        async with self._write_lock:
            try:
                cur = await self._w.execute(
                    "UPDATE tokens SET revoked_ms = ? WHERE role = 'agent' AND node = ? AND revoked_ms IS NULL",
                    (ts, node))
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not revoke the agent tokens of {node!r}: {exc}") from exc
        return cur.rowcount

    async def add_audit(self, row: tuple) -> None:
        """``(ts, actor, role, method, path, params_json, status, outcome)``."""
        async with self._write_lock:
            try:
                await self._w.execute(
                    "INSERT INTO audit (ts, actor, role, method, path, params, status, outcome) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not write the audit log: {exc}") from exc

    async def audit(self, since_ms: int | None, actor: str | None, limit: int) -> list[tuple]:
        where, params = ["ts >= ?"], [since_ms if since_ms is not None else -(2**63)]
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)  # type: ignore[arg-type]
        return list(await self._r.execute_fetchall(
            "SELECT id, ts, actor, role, method, path, params, status, outcome FROM audit "
            f"WHERE {' AND '.join(where)} ORDER BY ts DESC, id DESC LIMIT ?", (*params, limit)))

    # ------------------------------------------------------------------ fleet
    async def fleet(self) -> tuple[str, int, int] | None:
        """The declared fleet: ``(spec_json, revision, updated_ms)``, or None."""
        rows = await self._w.execute_fetchall("SELECT spec, revision, updated_ms FROM fleet WHERE id = 1")
        return tuple(rows[0]) if rows else None  # type: ignore[return-value]

    async def save_fleet(self, spec_json: str, ts: int) -> int:
        """Store the declaration; returns its new revision."""
        async with self._write_lock:
            try:
                rows = await self._w.execute_fetchall(
                    "INSERT INTO fleet (id, spec, revision, updated_ms) VALUES (1, ?, 1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, revision = revision + 1, "
                    "updated_ms = excluded.updated_ms RETURNING revision", (spec_json, ts))
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not save the fleet declaration: {exc}") from exc
        return int(rows[0][0])

    async def delete_fleet(self) -> bool:
        async with self._write_lock:
            try:
                cur = await self._w.execute("DELETE FROM fleet")
            except sqlite3.Error as exc:
                raise StoreFailed(f"could not delete the fleet declaration: {exc}") from exc
        return cur.rowcount > 0

    async def _safe_rollback(self) -> None:
        try:
            await self._w.rollback()
        except sqlite3.Error as exc:  # the connection may be unusable; the next write reports it
            log.warning("rollback failed: %s", exc)

    # ------------------------------------------------------------------ reads
    async def history(self, node_id: int, since_ms: int | None, until_ms: int | None, limit: int) -> Iterable[tuple]:
        """Readings of one node, newest first: ``(ts, seq, temperature, humidity, power,
        comfort, alert, source, extra)``."""
        lo = -(2**63) if since_ms is None else since_ms
        hi = 2**63 - 1 if until_ms is None else until_ms
        return await self._r.execute_fetchall(HISTORY_SQL, (node_id, lo, hi, limit))

    async def latest_per_node(self) -> dict[int, tuple]:
        """The newest reading of every node that has one, by node id."""
        rows = await self._r.execute_fetchall(LATEST_SQL)
        return {row[0]: tuple(row[1:]) for row in rows}

    async def ping(self) -> None:
        await self._r.execute_fetchall("SELECT 1")

    async def integrity_check(self) -> str:
        rows = await self._r.execute_fetchall("PRAGMA integrity_check")
        return "; ".join(r[0] for r in rows)


async def migrate(db: aiosqlite.Connection, path: Path, target: int = SCHEMA_VERSION) -> None:
    """Bring the database to schema ``target`` (tests build "older" databases with it)."""
    (version,), = await db.execute_fetchall("PRAGMA user_version")
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"{path}: database schema version {version} is newer than this fogd understands "
            f"({SCHEMA_VERSION}); upgrade fogd or use another database")
    for v in range(version, target):
        log.info("migrating %s to schema version %d", path, v + 1)
        try:
            await db.executescript(f"BEGIN;\n{MIGRATIONS[v]}\nPRAGMA user_version = {v + 1};\nCOMMIT;")
        except sqlite3.Error:
            await db.rollback()
            raise
