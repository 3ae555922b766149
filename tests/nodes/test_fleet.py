"""The declared fleet against real backends: local processes, a real Docker engine and a
real single-node Docker Swarm (services on host networking, images local, never pulled).

Each scenario runs for every provisioner that can run it (the `provisioner` fixture,
made indirect here to add ``swarm``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fogd.model import parse_time
from tests.helpers import assert_error
from tests.nodes.conftest import IMAGE, docker_json, status_of, wait_for

ALL = pytest.mark.parametrize("provisioner", ["process", "docker", "swarm"], indirect=True)
CONTAINERS = pytest.mark.parametrize("provisioner", ["docker", "swarm"], indirect=True)
GOOD_IMAGE = "fogd-node:fleet-v2"      # the same agent under another tag
SILENT_IMAGE = "fogd-node:fleet-silent"  # runs, never reports


def containers_of(instance: str, node: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.fogd.instance={instance}",
                           "--filter", f"label=io.fogd.node={node}"], capture_output=True, text=True).stdout.split()


def services_of(instance: str) -> list[str]:
    return sorted(subprocess.run(["docker", "service", "ls", "--filter", f"label=io.fogd.instance={instance}",
                                  "--format", "{{.Name}}"], capture_output=True, text=True).stdout.split())


async def reporting_since(client, names, since_ms: float, timeout: float, what: str) -> None:
    """Wait until every node in ``names`` has a reading taken after ``since_ms``."""
    async def fresh() -> bool:
        for name in names:
            latest = (await (await client.get(f"/nodes/{name}/data?limit=1")).json())["latest"]
            if latest is None or parse_time(latest["timestamp"]) <= since_ms:
                return False
        return True
    await wait_for(fresh, timeout, what)


async def apply(client, spec: dict, status: int = 200) -> dict:
    resp = await client.post("/fleet", json=spec)
    body = await resp.json()
    assert resp.status == status, body
    return body


@ALL
async def test_apply_plan_scale_and_cleanup(fogd_app, provisioner):
    client = await fogd_app()
    instance = fogd_app.config.nodes.instance
    # plan changes nothing
    plan = await (await client.post("/fleet/plan", json={"fog": {"count": 3}, "cloud": {"count": 1}})).json()
    assert plan["fog"]["create"] == ["fog-1", "fog-2", "fog-3"] and plan["cloud"]["create"] == ["cloud-1"]
    assert not plan["in_sync"] and await (await client.get("/nodes")).json() == {}
    assert (await (await client.get("/fleet")).json())["declared"] is None

    started = time.time() * 1000
    body = await apply(client, {"fog": {"count": 3}, "cloud": {"count": 1, "interval": 0.4}})
    assert body["ok"] and body["revision"] == 1 and body["failed"] == [], body
    assert sorted(body["created"]) == ["cloud-1", "fog-1", "fog-2", "fog-3"]
    assert body["plan"]["in_sync"]
    await reporting_since(client, ["fog-1", "fog-2", "fog-3", "cloud-1"], started, 40, "telemetry from all four")
    status = await status_of(client)
    assert {s["status"] for s in status.values()} == {"running"}
    if provisioner == "swarm":
        host = subprocess.run(["docker", "info", "--format", "{{.Name}}"], capture_output=True, text=True).stdout.strip()
        assert {s["host"] for s in status.values()} == {host}
        assert (await (await client.get("/fleet")).json())["hosts"] == {host: {"fog": 3, "cloud": 1}}
        assert services_of(instance) == [f"fogd-{instance}-{n}" for n in ("cloud-1", "fog-1", "fog-2", "fog-3")]
        spec = docker_json("service", "inspect", f"fogd-{instance}-cloud-1")[0]["Spec"]
        assert spec["Labels"] == {"io.fogd.instance": instance, "io.fogd.role": "cloud", "io.fogd.node": "cloud-1"}
        assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.fogd.cloud==true"]
        assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"
        assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 128 * 1024 * 1024
        assert "FOGD_INTERVAL=0.4" in spec["TaskTemplate"]["ContainerSpec"]["Env"]

    metrics = await (await client.get("/metrics")).text()
    assert 'fogd_fleet_desired_nodes{role="fog"} 3.0' in metrics
    assert 'fogd_fleet_actions_total{action="create",outcome="ok"} 4.0' in metrics
    # /create would fight the reconciler
    await assert_error(await client.post("/create", json={"fog": 1}), 409, "fleet_declared")
    # scale up and down: extra nodes go highest number first, their history stays
    body = await (await client.post("/fleet/scale", json={"fog": 5})).json()
    assert body["ok"] and body["created"] == ["fog-4", "fog-5"] and body["revision"] == 2
    body = await (await client.post("/fleet/scale", json={"fog": 2, "cloud": 1})).json()
    assert body["ok"] and sorted(body["removed"]) == ["fog-3", "fog-4", "fog-5"]
    status = await status_of(client)
    assert [n for n, s in status.items() if s["status"] == "removed"] == ["fog-3", "fog-4", "fog-5"]
    assert (await (await client.get("/nodes/fog-3/data")).json())["count"] > 0
    if provisioner == "swarm":
        assert services_of(instance) == [f"fogd-{instance}-{n}" for n in ("cloud-1", "fog-1", "fog-2")]
    view = await (await client.get("/fleet")).json()
    assert view["declared"] == {"fog": {"count": 2}, "cloud": {"count": 1, "interval": 0.4}}
    assert view["plan"]["in_sync"] and view["revision"] == 3
    # scaling up again brings the old names back
    body = await (await client.post("/fleet/scale", json={"fog": 3})).json()
    assert body["ok"] and body["replaced"] == ["fog-3"] and body["created"] == []

    # cleanup withdraws the declaration first, so nothing comes back
    resp = await client.post("/cleanup", json={})
    body = await resp.json()
    assert resp.status == 200 and body["fleet_withdrawn"] is True
    assert sorted(r["name"] for r in body["removed"]) == ["cloud-1", "fog-1", "fog-2", "fog-3", "fog-4", "fog-5"]
    await asyncio.sleep(2 * fogd_app.config.fleet.reconcile_interval / 5)
    assert await (await client.get("/nodes")).json() == {}, await status_of(client)
    assert (await (await client.get("/fleet")).json())["declared"] is None
    if provisioner == "swarm":
        assert services_of(instance) == []


@ALL
async def test_a_killed_node_reports_again_and_a_restarted_fogd_keeps_reconciling(fogd_app, provisioner):
    client = await fogd_app(fleet={"reconcile_interval": 1.0})
    instance = fogd_app.config.nodes.instance
    started = time.time() * 1000
    assert (await apply(client, {"fog": {"count": 2}}))["ok"]
    await reporting_since(client, ["fog-1", "fog-2"], started, 40, "first telemetry")

    victim = (await status_of(client))["fog-1"]
    killed = time.time() * 1000
    if provisioner == "process":
        os.kill(int(victim["container_id"]), signal.SIGKILL)
    else:
        subprocess.run(["docker", "kill", *containers_of(instance, "fog-1")], check=True, capture_output=True)
    await reporting_since(client, ["fog-1"], killed + 1000, 15, "the killed node to report again")

    async def running() -> bool:  # Swarm's task states are polled every swarm.poll_interval
        return (await status_of(client))["fog-1"]["status"] == "running"
    await wait_for(running, 5, "fog-1 to show as running again")
    status = await status_of(client)
    if provisioner != "swarm":  # fogd replaced it; Swarm restarts the task in the same service
        assert status["fog-1"]["container_id"] != victim["container_id"]
        assert (await (await client.get("/fleet")).json())["last_reconcile"]["replaced"] == ["fog-1"]

    # fogd stops; a node disappears behind its back; the restarted fogd brings it back
    await client.close()
    if provisioner == "process":
        os.kill(int(status["fog-2"]["container_id"]), signal.SIGKILL)
    elif provisioner == "docker":
        subprocess.run(["docker", "rm", "-f", *containers_of(instance, "fog-2")], check=True, capture_output=True)
    else:
        subprocess.run(["docker", "service", "rm", f"fogd-{instance}-fog-2"], check=True, capture_output=True)
        deadline = time.monotonic() + 20
        while containers_of(instance, "fog-2") and time.monotonic() < deadline:  # Swarm stops it a bit later
            await asyncio.sleep(0.2)
    gone = time.time() * 1000
    client = await fogd_app(fleet={"reconcile_interval": 1.0})
    assert (await (await client.get("/fleet")).json())["declared"]["fog"] == {"count": 2}
    await reporting_since(client, ["fog-2"], gone + 1000, 30, "the restarted fogd to replace fog-2")
    if provisioner == "swarm":
        assert services_of(instance) == [f"fogd-{instance}-fog-1", f"fogd-{instance}-fog-2"]


@pytest.fixture(scope="module")
def upgrade_images() -> None:
    subprocess.run(["docker", "tag", IMAGE, GOOD_IMAGE], check=True)
    subprocess.run(["docker", "build", "-q", "-t", SILENT_IMAGE, "-"], check=True, capture_output=True,
                   input=f'FROM {IMAGE}\nCMD ["sleep", "1000000"]\n'.encode(), env={**os.environ, "DOCKER_BUILDKIT": "0"})
    yield
    subprocess.run(["docker", "rmi", GOOD_IMAGE, SILENT_IMAGE], capture_output=True)


@CONTAINERS
async def test_upgrade_rolls_in_batches_and_rolls_back_when_nodes_go_silent(fogd_app, provisioner, upgrade_images):
    client = await fogd_app()
    started = time.time() * 1000
    names = ["fog-1", "fog-2", "fog-3", "cloud-1"]
    assert (await apply(client, {"fog": {"count": 3}, "cloud": {"count": 1}}))["ok"]
    await reporting_since(client, names, started, 40, "first telemetry")

    # an image that runs but never reports: the first batch goes silent, everything rolls back
    resp = await client.post("/fleet/upgrade", json={"image": SILENT_IMAGE, "batch": 2, "timeout_s": 6},
                             headers={"Accept": "application/x-ndjson"})
    lines = [line for line in (await resp.text()).splitlines() if line]
    events = [json.loads(line) for line in lines]
    done = events[-1]
    assert done["event"] == "done" and done["ok"] is False
    assert done["upgrade"]["silent"] == ["cloud-1", "fog-1"]  # the first batch, in name order
    assert done["upgrade"]["rolled_back"] == ["cloud-1", "fog-1"]
    assert [(e["action"], e["name"], e["ok"]) for e in events[:-1]] == [
        ("upgrade", "cloud-1", False), ("upgrade", "fog-1", False), ("rollback", "cloud-1", True),
        ("rollback", "fog-1", True)]
    view = await (await client.get("/fleet")).json()
    assert view["declared"].get("image", "") == "" and view["plan"]["in_sync"]
    assert view["upgrade"]["state"] == "rolled back"
    status = await status_of(client)
    assert {status[n]["image"] for n in names} == {IMAGE}  # fog-2 and fog-3 were never touched
    rolled = time.time() * 1000
    await reporting_since(client, names, rolled, 20, "every node reporting after the rollback")

    # a good image rolls through, two at a time
    resp = await client.post("/fleet/upgrade", json={"image": GOOD_IMAGE, "batch": 2})
    body = await resp.json()
    assert resp.status == 200 and body["ok"], body
    assert body["upgrade"]["upgraded"] == ["cloud-1", "fog-1", "fog-2", "fog-3"]
    status = await status_of(client)
    assert {status[n]["image"] for n in names} == {GOOD_IMAGE}
    view = await (await client.get("/fleet")).json()
    assert view["declared"]["image"] == GOOD_IMAGE and view["plan"]["in_sync"]


@pytest.mark.parametrize("provisioner", ["process"], indirect=True)
async def test_fleet_requests_are_validated(fogd_app):
    client = await fogd_app(nodes={"max_nodes": 4})
    await assert_error(await client.post("/fleet", json={"fog": {"count": -1}}), 422, "validation",
                       field="$.fog.count")
    await assert_error(await client.post("/fleet", json={"edge": {"count": 1}}), 422, "validation", field="$.edge")
    await assert_error(await client.post("/fleet", json={"fog": {"count": 2, "colour": "red"}}), 422,
                       "validation", field="$.fog.colour")
    await assert_error(await client.post("/fleet", json={"fog": {"interval": 0}}), 422, "validation",
                       field="$.fog.interval")
    body = await assert_error(await client.post("/fleet", json={"fog": {"count": 4}, "cloud": {"count": 1}}),
                              422, "validation")
    assert "nodes.max_nodes (4)" in body["detail"]
    # the process provisioner runs no images
    await assert_error(await client.post("/fleet", json={"image": "x:1", "fog": {"count": 1}}), 422, "validation",
                       field="image")
    await assert_error(await client.post("/fleet/upgrade", json={"image": "x:1"}), 409, "no_fleet")
    await assert_error(await client.post("/fleet/plan"), 409, "no_fleet")
    await assert_error(await client.post("/fleet/upgrade", json={}), 422, "validation", field="$.image")
    await assert_error(await client.post("/fleet/scale", json={"fog": "many"}), 422, "validation", field="$.fog")
    await assert_error(await client.post("/fleet", data=b"{", headers={"Content-Type": "application/json"}),
                       400, "malformed")
    # nothing was declared or started by any of that
    assert (await (await client.get("/fleet")).json())["declared"] is None
    assert await (await client.get("/nodes")).json() == {}


@pytest.mark.parametrize("provisioner", ["process"], indirect=True)
async def test_cli_apply_plan_fleet_scale(fogd_app, tmp_path):
    client = await fogd_app()
    url = f"http://127.0.0.1:{client.port}"
    fleet = tmp_path / "fleet.toml"
    fleet.write_text("[fog]\ncount = 2\n\n[cloud]\ncount = 1\nanomaly_rate = 0.0\n")

    async def fogd(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fogd", *args, "--url", url,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode, out.decode()

    code, out = await fogd("plan", str(fleet))
    assert code == 0 and "fog-1,fog-2" in out and "cloud-1" in out
    code, out = await fogd("apply", str(fleet))
    assert code == 0, out
    assert "create fog-1" in out and "fleet revision 1: created 3" in out and "in sync" in out
    code, out = await fogd("fleet")
    assert code == 0 and "fleet revision 1 (process)" in out and "in sync" in out
    assert f"hosts: {os.uname().nodename} 1 cloud, 2 fog" in out
    code, out = await fogd("scale", "--fog", "1")
    assert code == 0 and "remove fog-2" in out and "removed 1" in out
    code, out = await fogd("create", "--fog", "1")
    assert code == 1 and "fleet_declared" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[fog]\ncount = 'two'\n")
    code, out = await fogd("apply", str(bad))
    assert code == 1 and "$.fog.count" in out
    code, out = await fogd("apply", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read" in out


@pytest.mark.parametrize("provisioner", ["swarm"], indirect=True)
async def test_swarm_cleanup_leaves_foreign_services_and_placement_errors_are_clear(fogd_app, provisioner):
    client = await fogd_app(swarm={"start_timeout": 4.0})
    instance = fogd_app.config.nodes.instance
    foreign = []
    for name, labels in ((f"foreign-{instance}", []),
                         (f"other-{instance}", ["--label", "io.fogd.instance=someone-else",
                                                "--label", "io.fogd.node=fog-1"])):
        subprocess.run(["docker", "service", "create", "-d", "--name", name, "--network", "host", "--no-resolve-image",
                        *labels, IMAGE, "sleep", "600"], check=True, capture_output=True)
        foreign.append(name)
    try:
        # no host is labelled for this tier: the node fails with Swarm's own reason
        body = await apply(client, {"fog": {"count": 1, "placement": ["node.labels.fogd.tier==nowhere"]}})
        assert body["ok"] is False and body["created"] == []
        assert "no suitable node" in body["failed"][0]["error"] and "placement" in body["failed"][0]["error"]
        assert services_of(instance) == []  # the half-made service is gone
        body = await apply(client, {"fog": {"count": 2}})
        assert body["ok"] and sorted(body["created"] + body["replaced"]) == ["fog-1", "fog-2"]
        resp = await client.post("/cleanup", json={})
        assert resp.status == 200 and sorted(r["name"] for r in (await resp.json())["removed"]) == ["fog-1", "fog-2"]
        assert services_of(instance) == []
        left = subprocess.run(["docker", "service", "ls", "--format", "{{.Name}}"], capture_output=True,
                              text=True).stdout.split()
        assert set(foreign) <= set(left)
    finally:
        subprocess.run(["docker", "service", "rm", *foreign], capture_output=True)


@pytest.mark.parametrize("provisioner", ["process"], indirect=True)
async def test_scale_without_a_declaration_starts_from_what_runs(fogd_app):
    client = await fogd_app()
    assert (await client.post("/create", json={"fog": 1, "cloud": 1})).status == 201
    body = await (await client.post("/fleet/scale", json={"fog": 2})).json()
    assert body["ok"] and body["created"] == ["fog-2"] and body["removed"] == []
    view = await (await client.get("/fleet")).json()
    assert view["declared"] == {"fog": {"count": 2}, "cloud": {"count": 1}} and view["plan"]["in_sync"]
    resp = await client.delete("/fleet")
    assert (await resp.json()) == {"withdrawn": True}
    assert (await (await client.get("/fleet")).json())["declared"] is None
    assert (await client.post("/create", json={"fog": 1})).status == 201  # no fleet: /create is back
