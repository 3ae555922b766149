"""The node lifecycle against real backends: a real Docker engine and real processes.

The same scenario runs for both built-in provisioners (the `provisioner` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from fogd.context import FOGD
from tests.helpers import assert_error
from tests.nodes.conftest import docker_json, status_of, wait_for


async def test_create_streams_telemetry_and_cleanup_removes_exactly_ours(fogd_app, provisioner):
    client = await fogd_app()
    resp = await client.post("/create", json={"fog": 3, "cloud": 1})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["provisioner"] == provisioner and body["failed"] == []
    created = {n["name"]: n for n in body["created"]}
    assert sorted(created) == ["cloud-1", "fog-1", "fog-2", "fog-3"]
    for node in created.values():
        assert node["status"] == "running" and node["container_id"]

    async def all_online() -> bool:
        status = await status_of(client)
        return all(status[n]["liveness"] == "online" for n in created)
    await wait_for(all_online, 30, "telemetry from all four agents")
    # each agent holds one stream (GET /ingest): the container image's aiohttp too
    assert client.app[FOGD].metrics.ingest_streams._value.get() == 4
    for name, node in created.items():
        data = await (await client.get(f"/nodes/{name}/data")).json()
        assert data["count"] > 0 and data["latest"]["source"] == "agent"
        assert data["role"] == node["role"]
        assert data["latest"]["comfortIndex"] is not None and "cpu_load" in data["latest"]["extra"]
    ids = await (await client.get("/nodes")).json()
    assert ids == {name: n["container_id"] for name, n in created.items()}

    instance = fogd_app.config.nodes.instance
    if provisioner == "docker":
        info = docker_json("inspect", created["fog-2"]["container_id"])[0]
        assert info["Config"]["Labels"] == {"io.fogd.instance": instance, "io.fogd.role": "fog",
                                            "io.fogd.node": "fog-2"}
        assert info["HostConfig"]["Init"] is True
        # Bystanders: a container without fogd labels and one of another fogd instance.
        foreign = [subprocess.run(["docker", "run", "-d", "--network", "none", *labels, "fogd-node:latest",
                                   "sleep", "600"], capture_output=True, text=True, check=True).stdout.strip()
                   for labels in ([], ["--label", "io.fogd.instance=someone-else", "--label", "io.fogd.node=fog-1"])]
    else:
        foreign = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])
                   for marker in ("--fogd-node=fog-1", "--fogd-instance=someone-else")]

    try:
        resp = await client.post("/cleanup", json={})
        assert resp.status == 200
        removed = await resp.json()
        assert sorted(r["name"] for r in removed["removed"]) == sorted(created)
        assert removed["failed"] == [] and removed["history"] == "cleared"
        await assert_error(await client.get("/nodes/fog-1/data"), 404, "not_found")
        assert await (await client.get("/nodes")).json() == {}
        if provisioner == "docker":
            left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.fogd.instance={instance}"],
                                  capture_output=True, text=True).stdout.split()
            assert left == []
            for cid in foreign:
                assert docker_json("inspect", cid)[0]["State"]["Running"] is True
        else:
            assert all(p.poll() is None for p in foreign)
    finally:
        if provisioner == "docker":
            subprocess.run(["docker", "rm", "-f", *foreign], capture_output=True)
        else:
            for p in foreign:
                p.kill()
                p.wait()


async def test_a_killed_node_shows_as_exited_and_then_lost(fogd_app, provisioner):
    client = await fogd_app()
    body = await (await client.post("/create", json={"fog": 2})).json()
    victim = body["created"][0]

    async def online() -> bool:
        return (await status_of(client))[victim["name"]]["liveness"] == "online"
    await wait_for(online, 30, "the node's first readings")
    if provisioner == "docker":
        subprocess.run(["docker", "kill", victim["container_id"]], check=True, capture_output=True)
    else:
        os.kill(int(victim["container_id"]), signal.SIGKILL)

    async def exited() -> bool:
        return (await status_of(client))[victim["name"]]["status"] == "exited"
    await wait_for(exited, 10, "the killed node to show as exited")

    async def lost() -> bool:  # lost_after = 10 intervals of 0.2 s
        return (await status_of(client))[victim["name"]]["liveness"] == "lost"
    await wait_for(lost, 10, "the killed node to be lost")
    other = (await status_of(client))[body["created"][1]["name"]]
    assert (other["status"], other["liveness"]) == ("running", "online")
    metrics = await (await client.get("/metrics")).text()
    assert 'fogd_nodes{liveness="lost",role="fog",status="exited"} 1.0' in metrics


async def test_a_restarted_fogd_adopts_running_nodes(fogd_app, provisioner):
    first = await fogd_app()
    body = await (await first.post("/create", json={"fog": 2, "cloud": 1})).json()
    ids = {n["name"]: n["container_id"] for n in body["created"]}
    await first.close()  # fogd stops; its nodes keep running

    second = await fogd_app()
    assert await (await second.get("/nodes")).json() == ids
    status = await status_of(second)
    assert all(status[n]["status"] == "running" for n in ids)
    more = await (await second.post("/create", json={"fog": 1})).json()
    assert [n["name"] for n in more["created"]] == ["fog-3"]
    assert len(await (await second.get("/nodes")).json()) == 4


async def test_create_validates_its_request(fogd_app, provisioner):
    client = await fogd_app(nodes={"max_nodes": 3})
    await assert_error(await client.post("/create", json={"fog": 0}), 422, "validation", field="fog")
    await assert_error(await client.post("/create", json={"fog": -1}), 422, "validation", field="$.fog")
    await assert_error(await client.post("/create", json={"fog": "2"}), 422, "validation", field="$.fog")
    await assert_error(await client.post("/create", json={"edge": 2}), 422, "validation", field="$.edge")
    body = await assert_error(await client.post("/create", json={"fog": 3, "cloud": 1}), 422, "validation")
    assert body["max_nodes"] == 3 and "nodes.max_nodes" in body["detail"]
    await assert_error(await client.post("/create", data=b"{", headers={"Content-Type": "application/json"}),
                       400, "malformed")
    assert await (await client.get("/nodes")).json() == {}


async def test_a_missing_image_is_a_clear_error(fogd_app, provisioner):
    if provisioner != "docker":
        return  # the process provisioner needs no image
    client = await fogd_app(nodes={"image": "fogd-node:no-such-tag"})
    body = await assert_error(await client.post("/create", json={"fog": 1}), 409, "image_missing")
    assert "docker build -t fogd-node:no-such-tag node_agent/" in body["detail"]
    assert await (await client.get("/nodes")).json() == {}


async def test_cleanup_can_keep_history(fogd_app, provisioner):
    client = await fogd_app()
    await client.post("/create", json={"fog": 1})

    async def has_data() -> bool:
        return (await status_of(client))["fog-1"]["last_reading"] is not None
    await wait_for(has_data, 30, "a first reading")
    body = await (await client.post("/cleanup", json={"keep_history": True})).json()
    assert [r["name"] for r in body["removed"]] == ["fog-1"] and body["history"] == "kept"
    data = await (await client.get("/nodes/fog-1/data")).json()
    assert data["count"] > 0
    assert (await status_of(client))["fog-1"]["status"] == "removed"
    # the name stays taken by the kept history: the next node is fog-2
    more = await (await client.post("/create", json={"fog": 1})).json()
    assert [n["name"] for n in more["created"]] == ["fog-2"]


async def test_auto_picks_docker_when_it_answers_and_processes_otherwise(fogd_app, provisioner, tmp_path):
    if provisioner != "docker":
        return
    client = await fogd_app(nodes={"provisioner": "auto"})
    assert (await (await client.get("/healthz")).json())["provisioner"]["name"] == "docker"
    await client.close()
    client = await fogd_app(nodes={"provisioner": "auto"}, docker={"host": f"unix://{tmp_path}/nothing.sock"})
    assert (await (await client.get("/healthz")).json())["provisioner"] == {"name": "process", "status": "ok"}


async def test_a_named_network_is_created_and_labelled(fogd_app, provisioner):
    if provisioner != "docker":
        return
    network = f"fogd-{fogd_app.config.nodes.instance}"
    client = await fogd_app(docker={"network": network})
    try:
        body = await (await client.post("/create", json={"fog": 1})).json()
        assert body["failed"] == [], body
        net = docker_json("network", "inspect", network)[0]
        assert net["Labels"]["io.fogd.instance"] == fogd_app.config.nodes.instance
        info = docker_json("inspect", body["created"][0]["container_id"])[0]
        assert list(info["NetworkSettings"]["Networks"]) == [network]
        env = dict(e.split("=", 1) for e in info["Config"]["Env"])
        assert env["FOGD_URL"].startswith("http://host.docker.internal:")  # no traffic is sent there here
    finally:
        await client.post("/cleanup", json={})
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
