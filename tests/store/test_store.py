"""The SQLite store: migrations, WAL, indexes, failure handling."""

import sqlite3

import aiosqlite
import pytest

from fogd.store import Store
from fogd.store.migrations import SCHEMA_VERSION
from fogd.store.sqlite import HISTORY_SQL, LATEST_SQL, migrate
from tests.helpers import assert_error, stored_rows


async def test_a_new_database_is_wal_at_the_latest_schema(tmp_path):
    path = tmp_path / "sub" / "dir" / "fogd.sqlite3"
    store = await Store.open(path)
    await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
        "nodes", "readings", "events"}


async def test_a_database_from_an_older_fogd_opens_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    async with aiosqlite.connect(path) as db:  # what fogd at schema 1 wrote
        await migrate(db, path, target=1)
        await db.execute("INSERT INTO nodes (name, role, created_ms) VALUES ('fog-1', 'fog', 1)")
        await db.execute("INSERT INTO readings (node_id, ts, seq, temperature, alert, source) "
                         "VALUES (1, 1000, 1, 21.5, 0, 'agent')")
        await db.commit()
    store = await Store.open(path)
    try:
        assert store.nodes["fog-1"].role == "fog"
        assert list(await store.history(1, None, None, 10)) == [
            (1000, 1, 21.5, None, None, None, 0, "agent", None)]
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


async def test_a_database_from_a_newer_fogd_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this fogd understands"):
        await Store.open(path)


def plan(path, sql, params):
    db = sqlite3.connect(path)
    return " | ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))


async def test_history_and_latest_queries_use_indexes_not_scans(tmp_path):
    """Cost must follow rows returned, not history size: no full scan of readings."""
    store = await Store.open(tmp_path / "f.sqlite3")
    await store.close()
    path = tmp_path / "f.sqlite3"
    history = plan(path, HISTORY_SQL, (1, 0, 10, 5))
    assert "USING INDEX readings_node_ts" in history and "TEMP B-TREE" not in history
    latest = plan(path, LATEST_SQL, ())
    assert "SCAN r" not in latest and "readings_node_ts" in latest


class FailingStore:
    """Install a trigger that makes SQLite abort the insert of a marked reading."""

    @staticmethod
    def arm(path):
        db = sqlite3.connect(path)
        db.execute("CREATE TRIGGER fail BEFORE INSERT ON readings WHEN NEW.power = 666 "
                   "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END")
        db.commit()
        db.close()


async def test_a_failed_commit_acknowledges_nothing(client):
    import asyncio

    from fogd.context import FOGD
    FailingStore.arm(client.app[FOGD].store.path)
    # Queue several requests into what becomes one group commit with the bad row.
    replies = await asyncio.gather(
        client.post("/ingest", json=[{"node": "a", "power": 1.0}, {"node": "a", "power": 666.0}]),
        *[client.post("/ingest", json={"node": "b", "seq": i, "power": 2.0}) for i in range(5)])
    statuses = [r.status for r in replies]
    await assert_error(replies[0], 503, "store_unavailable")
    stored = stored_rows(client)[0][0]
    # whatever was acknowledged (201) is stored, whatever failed (503) is not
    assert stored == statuses.count(201)
    assert set(statuses) <= {201, 503}
    # and the store keeps working afterwards
    resp = await client.post("/ingest", json={"node": "a", "power": 3.0})
    assert resp.status == 201
