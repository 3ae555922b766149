"""Disk full: SQLite cannot write. Ingest answers an error, nothing acknowledged is lost,
the database stays intact, and fogd recovers when space returns (a small tmpfs)."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest

from fogd.context import FOGD
from tests.helpers import in_ci

pytestmark = pytest.mark.slow


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        if in_ci():
            pytest.fail(f"cannot mount a tmpfs for the disk-full test: {result.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


async def test_disk_full_loses_nothing_acknowledged_and_recovers(make_client, make_config, small_fs):
    db = small_fs / "fogd.sqlite3"
    client = await make_client(make_config(store={"path": str(db)}, analysis={"interval": 0}))
    filler = small_fs / "filler"
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 600_000))  # leave ~600 kB

    acked = 0
    refused = None
    for i in range(400):
        batch = [{"node": f"n{j % 5}", "seq": i * 500 + j, "temperature": 20.0, "humidity": 50.0,
                  "extra": {"pad": float(j)}} for j in range(500)]
        resp = await client.post("/ingest", json=batch)
        if resp.status == 201:
            acked += (await resp.json())["stored"]
            continue
        refused = resp
        break
    assert refused is not None, "the filesystem never filled"
    assert refused.status == 503
    body = await refused.json()
    assert body["error"] == "store_unavailable" and "full" in body["detail"]
    assert acked > 0

    # reads go on while the disk is full
    assert (await client.get("/api/live_data")).status == 200

    filler.unlink()  # space returns
    resp = await client.post("/ingest", json={"node": "n0", "seq": 10**9, "temperature": 21.0})
    assert resp.status == 201, await resp.text()

    store = client.app[FOGD].store
    assert await store.integrity_check() == "ok"
    await client.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == acked + 1
