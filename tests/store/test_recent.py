"""Analysis windows served from memory (fogd/store/recent.py) are exactly what SQLite
returns: in order and late readings, duplicates, commits on the writer's thread racing
window reads, agents with clocks ahead, retention and /cleanup deleting readings."""

from __future__ import annotations

import asyncio
import random
import sqlite3

from fogd.store import Store
from fogd.store.sqlite import WINDOW_SQL
from fogd.store.writer import GroupCommitWriter

NOW = 1_796_400_000_000
WINDOW_MS, LIMIT = 120_000, 40


def sql_window(store, node_id, until):
    db = sqlite3.connect(store.path)
    try:
        return list(reversed(db.execute(WINDOW_SQL, (node_id, until - WINDOW_MS, until, LIMIT)).fetchall()))
    finally:
        db.close()


async def check(store, ids, until):
    for node_id in ids:
        got = await store.window(node_id, until - WINDOW_MS, until, LIMIT)
        assert got == sql_window(store, node_id, until), (node_id, until)


async def read_while_committing(store, ids, until):
    """Window reads (and seeds, for nodes dropped) while commits run on the writer's
    thread; compared only once they are done, as a read racing a commit may see it or
    not, like any reader that is not the writer."""
    for _ in range(3):
        for node_id in ids:
            await store.window(node_id, until - WINDOW_MS, until, LIMIT)


async def test_windows_from_memory_match_sqlite_through_everything(tmp_path):
    store = await Store.open(tmp_path / "fogd.sqlite3")
    writer = GroupCommitWriter(store, 20_000, delay=0.0)
    writer.start()
    try:
        await store.register_nodes({"a": "fog", "b": "fog", "c": "cloud"}, NOW)
        ids = [store.nodes[n].id for n in ("a", "b", "c")]
        rng = random.Random(7)
        used: set[tuple[int, int]] = set()
        seq = {i: 0 for i in ids}
        clock = NOW

        def row(node_id, ts, dup=False):
            if not dup:
                seq[node_id] += 1
            while (node_id, ts) in used:  # unique timestamps per node: SQL orders ties arbitrarily
                ts += 1
            used.add((node_id, ts))
            v = rng.uniform(10, 30)
            return (node_id, ts, seq[node_id], v, v + 20, v * 5, v - 1, 0, "agent", None)

        await check(store, ids, clock)  # first reads seed the held windows
        assert len(store.recent) == 3
        for step in range(120):
            clock += 1000
            batches = []
            for _ in range(rng.randint(1, 4)):
                n = rng.choice([1, 1, 2, 30])  # 30 rows: committed on the writer's thread
                rows = []
                for _ in range(n):
                    node_id = rng.choice(ids)
                    kind = rng.random()
                    if kind < 0.1:
                        ts = clock - rng.randint(1000, 200_000)  # late: an agent's backlog
                    elif kind < 0.11:
                        ts = clock + rng.randint(1000, 5_000)  # a clock running ahead
                    else:
                        ts = clock - rng.randint(0, 900)
                    rows.append(row(node_id, ts, dup=kind > 0.97 and seq[node_id] > 0))
                batches.append(rows)
            # commits and window reads interleave (a read may run while a thread commit is open)
            if step % 10 == 5:
                store.recent.forget()  # so that some seeds race thread commits
            await asyncio.gather(*(writer.submit(b) for b in batches), read_while_committing(store, ids, clock))
            await check(store, ids, clock)
        assert store.recent.hits > 500  # most windows came from memory
        for node_id in ids:  # a window starting before the held ones (a plugin's): SQLite's answer
            hits = store.recent.hits
            got = await store.window(node_id, clock - 4 * WINDOW_MS, clock, LIMIT)
            db = sqlite3.connect(store.path)
            assert got == list(reversed(db.execute(WINDOW_SQL, (node_id, clock - 4 * WINDOW_MS, clock,
                                                                LIMIT)).fetchall()))
            db.close()
            assert store.recent.hits == hits

        # retention deletes old readings: the nodes concerned are read from SQLite again
        assert await store.rollup_step() > 0
        assert await store.purge_step(clock - 5_000, None, 10_000) > 0  # into every window
        await check(store, ids, clock)
        await check(store, ids, clock + 30_000)

        # /cleanup: a removed node's readings go; a new node may get its id back
        await store.delete_nodes(["c"])
        await store.register_nodes({"d": "fog"}, clock)
        d = store.nodes["d"].id
        await check(store, [ids[0], ids[1], d], clock)
        await writer.submit([row(d, clock - 10), row(d, clock - 5)])
        await check(store, [d], clock)
        assert [r[0] for r in await store.window(d, clock - WINDOW_MS, clock, LIMIT)] == [clock - 10, clock - 5]
    finally:
        await writer.close()
        await store.close()
