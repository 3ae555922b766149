"""Node agents through a fogd outage, and fogd through a Docker engine outage."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.helpers import assert_error
from tests.nodes.conftest import IMAGE, remove_instance, status_of, wait_for

pytestmark = pytest.mark.slow


def call(url: str, method: str = "GET", body: object = None) -> object:
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


async def test_agents_lose_nothing_while_fogd_is_down_for_20_s(provisioner, daemon, tmp_path):
    interval = 0.5
    instance = f"t{uuid.uuid4().hex[:12]}"
    config = tmp_path / "fogd.toml"
    config.write_text(f'[nodes]\nprovisioner = "{provisioner}"\ninstance = "{instance}"\n'
                      f'agent_interval = {interval}\nimage = "{IMAGE}"\n[docker]\nnetwork = "host"\n')
    d = daemon(env={"FOGD_CONFIG": str(config)}).start()
    try:
        created = call(d.url + "/create", "POST", {"fog": 2})["created"]
        names = [n["name"] for n in created]

        def online() -> bool:
            status = {n["name"]: n for n in call(d.url + "/nodes/status")}
            return all(status[n]["liveness"] == "online" for n in names)
        await wait_for(_async(online), 30, "both agents online")

        assert d.stop() == 0
        down_from = time.time()
        await asyncio.sleep(20)
        down_until = time.time()
        d.start()

        def caught_up() -> bool:
            status = {n["name"]: n for n in call(d.url + "/nodes/status")}
            return all(status[n]["liveness"] == "online" for n in names)
        await wait_for(_async(caught_up), 30, "the agents to deliver their backlog")
        await asyncio.sleep(2 * interval)

        db = sqlite3.connect(d.db)
        for name in names:
            rows = db.execute("SELECT r.ts, r.seq FROM readings r JOIN nodes n ON n.id = r.node_id "
                              "WHERE n.name = ? ORDER BY r.ts", (name,)).fetchall()
            ts = [r[0] for r in rows]
            assert ts[0] < down_from * 1000 and ts[-1] > down_until * 1000, "history must span the outage"
            gaps = [b - a for a, b in zip(ts, ts[1:])]
            # an agent reading every 0.5 s: no gap anywhere, the outage included
            assert max(gaps) <= 3 * interval * 1000, f"{name}: a gap of {max(gaps)} ms: readings were lost"
            assert len({r[1] for r in rows}) == len(rows), "duplicates stored"
            assert sum(1 for t in ts if down_from * 1000 <= t <= down_until * 1000) >= 0.8 * 20 / interval
        db.close()
    finally:
        if d.proc and d.proc.poll() is None:
            call(d.url + "/cleanup", "POST", {})
        d.kill()
        remove_instance(provisioner, instance)


def _async(fn):
    async def wrapper() -> bool:
        return await asyncio.to_thread(fn)
    return wrapper


class DockerProxy:
    """A unix-socket proxy to the real Docker engine that a test can take down."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._handle, str(self.path))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        await self.server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self.writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_fogd_degrades_and_recovers_with_the_docker_engine(fogd_app, provisioner, tmp_path):
    if provisioner != "docker":
        return  # the process backend cannot go away
    proxy = DockerProxy(tmp_path / "docker.sock")
    await proxy.start()
    client = await fogd_app(docker={"host": f"unix://{proxy.path}", "network": "host"})
    health = await (await client.get("/healthz")).json()
    assert health["provisioner"] == {"name": "docker", "status": "ok"}

    await proxy.stop()  # the engine "goes away"

    async def degraded() -> bool:
        body = await (await client.get("/healthz")).json()
        return body["status"] == "degraded" and body["provisioner"]["status"] == "unavailable"
    await wait_for(degraded, 10, "healthz to report Docker as degraded")
    body = await assert_error(await client.post("/create", json={"fog": 1}), 503, "unavailable")
    assert "reconnects by itself" in body["detail"]
    resp = await client.post("/ingest", json={"node": "sensor-1", "temperature": 21.0})
    assert resp.status == 201  # ingest and queries go on
    assert (await client.get("/nodes/sensor-1/data")).status == 200

    await proxy.start()  # the engine is back

    async def recovered() -> bool:
        body = await (await client.get("/healthz")).json()
        return body["provisioner"]["status"] == "ok"
    await wait_for(recovered, 10, "fogd to reconnect to Docker")
    resp = await client.post("/create", json={"fog": 1})
    assert resp.status == 201, await resp.text()

    async def online() -> bool:
        return (await status_of(client))["fog-1"]["liveness"] == "online"
    await wait_for(online, 30, "the new node's telemetry")
    await proxy.stop()
    await proxy.start()
    await wait_for(recovered, 10, "fogd to reconnect again")
    assert (await client.post("/cleanup", json={})).status == 200
    await proxy.stop()
