"""Retention: old raw readings go (once rolled up), roll-ups keep the long view, and the
database file stops growing."""

from __future__ import annotations

import os
import time

from fogd.context import FOGD
from fogd.daemon import purge_old
from tests.helpers import stored_rows


def batch(node, hours_ago, n, seq0):
    base = time.time() - hours_ago * 3600
    return [{"node": node, "seq": seq0 + i, "temperature": 20.0 + (i % 10) / 10, "humidity": 50.0,
             "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i))} for i in range(n)]


async def test_old_readings_are_purged_only_after_they_are_rolled_up(make_client, make_config):
    client = await make_client(make_config(retention={"raw_days": 1.0, "interval": 3600}))
    fogd = client.app[FOGD]
    await client.post("/ingest", json=batch("fog-1", 48, 300, 0))      # two days old
    await client.post("/ingest", json=batch("fog-1", 1, 300, 1000))     # an hour old
    assert await purge_old(fogd.store, fogd.config) == 0               # nothing rolled up yet: keep
    while await fogd.store.rollup_step():
        pass
    assert await purge_old(fogd.store, fogd.config) == 300
    assert stored_rows(client) == [(300,)]
    node = fogd.store.nodes["fog-1"]
    now = int(time.time() * 1000)
    old = await fogd.store.series(node.id, "temperature", now - 50 * 3_600_000, now - 40 * 3_600_000, 600_000)
    assert old and abs(old[0][1] - 20.45) < 0.1  # the long view survives in the roll-ups


async def test_the_database_stops_growing_once_retention_is_reached(make_client, make_config):
    client = await make_client(make_config(retention={"raw_days": 1.0, "interval": 3600, "step_rows": 500}))
    fogd = client.app[FOGD]
    sizes = []
    for round_ in range(6):
        # a day's worth of new readings each round, with yesterday's going out
        await client.post("/ingest", json=batch("fog-1", 30, 3000, round_ * 10_000))
        while await fogd.store.rollup_step():
            pass
        await purge_old(fogd.store, fogd.config)
        await fogd.store.checkpoint("TRUNCATE")  # the WAL is bounded separately (autocheckpoint)
        sizes.append(os.path.getsize(fogd.store.path))
    assert stored_rows(client) == [(0,)]
    # after the first rounds the freed pages are reused: no growth
    assert sizes[-1] <= sizes[2] * 1.05, sizes
