"""The node agent as a real process: buffering, spooling to disk, delivery, config errors."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fogd.context import FOGD
from fogd.daemon import create_app
from fogd.plugins.host import build_plugin_host
from node_agent.telemetry import Telemetry
from tests.helpers import free_port


def run_agent(env, seconds):
    proc = subprocess.Popen([sys.executable, "-m", "node_agent"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def spooled(directory):
    return [r for p in sorted(directory.glob("*.json")) for r in json.loads(p.read_bytes())]


async def test_spooled_readings_survive_an_outage_and_are_delivered_later(make_client, make_config, tmp_path):
    spool = tmp_path / "spool"
    port = free_port()
    env = {"FOGD_URL": f"http://127.0.0.1:{port}", "FOGD_NODE": "fog-9", "FOGD_INTERVAL": "0.02",
           "FOGD_SPOOL_DIR": str(spool), "FOGD_BUFFER_MAX": "10", "FOGD_BATCH_MAX": "5",
           "FOGD_FLUSH_TIMEOUT": "0.3", "FOGD_SEED": "1"}
    code, out = await asyncio.to_thread(run_agent, env, 1.5)  # nobody listens on port
    assert code == 0, out
    first = spooled(spool)
    assert len(first) > 30 and "spooled to" in out
    assert len({r["seq"] for r in first}) == len(first)

    config = make_config()
    server = TestServer(create_app(config, build_plugin_host(entrypoints=False)), port=port)
    await server.start_server()
    try:
        code, out = await asyncio.to_thread(run_agent, env, 1.0)
        assert code == 0, out
        delivered = int(out.rsplit("stopped: ", 1)[1].split(" delivered")[0])
        db = sqlite_count(config.store.resolved_path())
        assert list(spool.glob("*.json")) == []
        assert db == delivered and db >= len(first)
        stored_seqs = sqlite_seqs(config.store.resolved_path())
        assert {r["seq"] for r in first} <= stored_seqs  # every spooled reading arrived
    finally:
        await server.close()


def sqlite_count(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]


def sqlite_seqs(path):
    with sqlite3.connect(path) as db:
        return {s for (s,) in db.execute("SELECT seq FROM readings")}


def test_without_a_spool_an_overflow_is_counted_not_hidden():
    env = {"FOGD_URL": f"http://127.0.0.1:{free_port()}", "FOGD_NODE": "fog-1", "FOGD_INTERVAL": "0.01",
           "FOGD_BUFFER_MAX": "8", "FOGD_FLUSH_TIMEOUT": "0.2"}
    code, out = run_agent(env, 1.0)
    assert code == 0
    assert "buffer full (8 readings): dropped the 4 oldest" in out
    dropped = int(out.rsplit("delivered, ", 1)[1].split(" dropped")[0])
    assert dropped > 0


def test_bad_configuration_is_one_clear_line():
    out = subprocess.run([sys.executable, "-m", "node_agent"], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("FOGD_")})
    assert out.returncode == 2 and out.stderr.strip() == "node_agent: set FOGD_URL and FOGD_NODE"
    out = subprocess.run([sys.executable, "-m", "node_agent"], capture_output=True, text=True,
                         env={**os.environ, "FOGD_URL": "http://x", "FOGD_NODE": "n", "FOGD_INTERVAL": "fast"})
    assert out.returncode == 2 and "FOGD_INTERVAL='fast': expected float" in out.stderr


def test_telemetry_is_smooth_with_anomalies_at_the_configured_rate():
    quiet = Telemetry("fog", anomaly_rate=0.0, seed=3)
    temps = [quiet.reading(1_796_400_000 + i, 1.0)["temperature"] for i in range(600)]
    assert max(abs(b - a) for a, b in zip(temps, temps[1:])) < 1.5  # a walk, not noise
    assert 10 < min(temps) and max(temps) < 35
    noisy = Telemetry("fog", anomaly_rate=0.05, seed=3)
    readings = [noisy.reading(1_796_400_000 + i, 1.0) for i in range(2000)]
    jumps = sum(1 for a, b in zip(readings, readings[1:])
                if b["temperature"] - a["temperature"] > 5 or b["humidity"] - a["humidity"] > 15
                or b["power"] > 1.6 * a["power"])
    assert 20 < jumps < 250
    assert set(readings[0]["extra"]) == {"cpu_load", "mem_used_mb", "uptime_s"}


def requests_to_ingest(app):
    """(route, method, status) -> count for /ingest, from fogd's own request counter."""
    metrics = app[FOGD].metrics
    return {(s.labels["method"], s.labels["status"]): s.value
            for family in metrics.http_requests.collect() for s in family.samples
            if s.name.endswith("_total") and s.labels["route"] == "/ingest"}


@pytest.mark.parametrize("transport", ["stream", "post"])
async def test_the_agent_streams_by_default_and_posts_when_told(make_config, transport):
    port = free_port()
    config = make_config(analysis={"interval": 0})
    app = create_app(config, build_plugin_host(entrypoints=False))
    server = TestServer(app, port=port)
    await server.start_server()
    try:
        env = {"FOGD_URL": f"http://127.0.0.1:{port}", "FOGD_NODE": "fog-3", "FOGD_INTERVAL": "0.05",
               "FOGD_SEED": "2", **({"FOGD_TRANSPORT": "post"} if transport == "post" else {})}
        code, out = await asyncio.to_thread(run_agent, env, 1.0)
        assert code == 0, out
        delivered = int(out.rsplit("stopped: ", 1)[1].split(" delivered")[0])
        assert delivered >= 10 and sqlite_count(config.store.resolved_path()) == delivered
        counts = requests_to_ingest(app)
        if transport == "stream":
            assert counts == {("GET", "101"): 1.0}, counts  # one connection for every reading
        else:
            assert counts.get(("GET", "101")) is None and counts[("POST", "201")] >= 10, counts
    finally:
        await server.close()


async def test_the_agent_posts_to_a_fogd_that_does_not_stream():
    """An older fogd (or a proxy that drops upgrades) answers GET /ingest with 405: the
    agent says so once and posts every batch instead, losing none."""
    got: list[dict] = []

    async def old_ingest(request):
        got.extend(json.loads(await request.read()))
        return web.json_response({"ok": True}, status=201)

    app = web.Application()
    app.router.add_post("/ingest", old_ingest)
    port = free_port()
    server = TestServer(app, port=port)
    await server.start_server()
    try:
        env = {"FOGD_URL": f"http://127.0.0.1:{port}", "FOGD_NODE": "fog-4", "FOGD_INTERVAL": "0.05"}
        code, out = await asyncio.to_thread(run_agent, env, 1.0)
    finally:
        await server.close()
    assert code == 0, out
    assert out.count("did not open a stream") == 1 and "(405); posting instead" in out
    delivered = int(out.rsplit("stopped: ", 1)[1].split(" delivered")[0])
    assert delivered >= 10 and len(got) == delivered and len({r["seq"] for r in got}) == delivered
