"""Fixtures for node lifecycle tests: real provisioners, agents that reach the test server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import Any, Awaitable, Callable

import msgspec
import pytest

from tests.helpers import free_port, in_ci

IMAGE = "fogd-node:latest"


def docker_ready() -> str | None:
    """None when a Docker engine answers and the node image is present, else why not."""
    try:
        info = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI: {exc}"
    if info.returncode != 0:
        return f"no Docker engine or no {IMAGE} image ({info.stderr.decode().strip()[:200]}); run scripts/docker-engine.sh"
    return None


def swarm_ready() -> str | None:
    """None when the engine is a swarm manager whose host carries both tier labels."""
    why = docker_ready()
    if why:
        return why
    info = subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"],
                          capture_output=True, text=True, timeout=20).stdout.split()
    if info != ["active", "true"]:
        return f"the Docker engine is not a swarm manager ({' '.join(info)}); run FOGD_SWARM=1 scripts/docker-engine.sh"
    labels = subprocess.run(["docker", "node", "inspect", "self", "--format", "{{json .Spec.Labels}}"],
                            capture_output=True, text=True, timeout=20).stdout
    if '"fogd.fog":"true"' not in labels or '"fogd.cloud":"true"' not in labels:
        return "the swarm host lacks the labels fogd.fog=true and fogd.cloud=true; run FOGD_SWARM=1 scripts/docker-engine.sh"
    return None


@pytest.fixture(params=["process", "docker"])
def provisioner(request) -> str:
    if request.param in ("docker", "swarm"):
        why = docker_ready() if request.param == "docker" else swarm_ready()
        if why:
            if in_ci():
                pytest.fail(f"Docker tests must run in CI: {why}")
            pytest.skip(why)
    return request.param


@pytest.fixture
async def fogd_app(aiohttp_client, make_config, provisioner) -> Callable[..., Awaitable[Any]]:
    """Start fogd in-process on a fixed loopback port, so agents (host network or local
    processes) can reach it. Afterwards, whatever this test's instance left running is
    removed by label (containers) or command-line marker (processes)."""
    port = free_port()
    config = make_config(server={"listen": f"127.0.0.1:{port}"}, docker={"network": "host"},
                         swarm={"poll_interval": 1.0},
                         nodes={"provisioner": provisioner, "agent_interval": 0.2, "image": IMAGE})

    async def start(**overrides: Any) -> Any:
        from fogd.daemon import create_app
        from fogd.plugins.host import build_plugin_host

        cfg = config
        for section, values in overrides.items():
            cfg = msgspec.structs.replace(cfg, **{section: msgspec.structs.replace(getattr(cfg, section), **values)})
        client = await aiohttp_client(create_app(cfg, build_plugin_host(entrypoints=False)),
                                      server_kwargs={"port": port})
        clients.append(client)
        return client

    clients: list[Any] = []
    start.config = config  # type: ignore[attr-defined]
    yield start
    for client in clients:  # first stop fogd: its fleet reconciler would replace what we remove
        await client.close()
    remove_instance(provisioner, config.nodes.instance)


def remove_instance(provisioner: str, instance: str) -> None:
    """Remove whatever a test's fogd instance left running: containers by label, agent
    processes by their command-line marker."""
    if provisioner == "swarm":
        ids = subprocess.run(["docker", "service", "ls", "-q", "--filter", f"label=io.fogd.instance={instance}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "service", "rm", *ids], capture_output=True)
    elif provisioner == "docker":
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.fogd.instance={instance}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    else:
        subprocess.run(["pkill", "-KILL", "-f", "--", f"--fogd-instance={instance}"], capture_output=True)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def status_of(client: Any) -> dict[str, dict[str, Any]]:
    resp = await client.get("/nodes/status")
    assert resp.status == 200
    return {n["name"]: n for n in await resp.json()}


def docker_json(*args: str) -> Any:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)
