"""The Docker engine restarted under fogd: fogd degrades, recovers by itself, and its
view matches Docker's afterwards (no orphans, no duplicates). Runs last among the node
tests (file name) because it restarts the engine the others use."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from tests.helpers import REPO
from tests.nodes.conftest import status_of, wait_for

pytestmark = pytest.mark.slow


def engine_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


async def test_fogd_survives_a_docker_engine_restart(fogd_app, provisioner):
    if provisioner != "docker":
        return
    client = await fogd_app()
    body = await (await client.post("/create", json={"fog": 2})).json()
    names = [n["name"] for n in body["created"]]

    async def online() -> bool:
        status = await status_of(client)
        return all(status[n]["liveness"] == "online" for n in names)
    await wait_for(online, 30, "the agents' first readings")

    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=True)
    try:
        for _ in range(300):
            if not engine_up():
                break
            await asyncio.sleep(0.1)
        assert not engine_up()

        async def degraded() -> bool:
            return (await (await client.get("/healthz")).json())["status"] == "degraded"
        await wait_for(degraded, 15, "healthz to report the engine gone")
        assert (await client.post("/ingest", json={"node": "sensor-1", "power": 1.0})).status == 201
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "docker-engine.sh")], check=True, capture_output=True,
                       env={**os.environ, "FOGD_SKIP_IMAGE": "1"})

    async def recovered() -> bool:
        return (await (await client.get("/healthz")).json())["provisioner"]["status"] == "ok"
    await wait_for(recovered, 20, "fogd to reconnect")
    # unless-stopped containers come back with the engine, and report again
    await wait_for(online, 60, "the agents to report after the restart")
    instance = fogd_app.config.nodes.instance
    docker_ids = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=io.fogd.instance={instance}"],
                                capture_output=True, text=True).stdout.split()
    fogd_ids = {k: v for k, v in (await (await client.get("/nodes")).json()).items() if v}  # sensor-1: none
    assert sorted(fogd_ids) == sorted(names)
    assert sorted(i[:12] for i in docker_ids) == sorted(fogd_ids.values())
