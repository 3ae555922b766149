"""Roles and tokens: every route × every role × no token; agents write only their node;
the audit log records who did what."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from fogd.auth import OPEN, POLICY, digest, new_token
from fogd.context import FOGD
from tests.helpers import assert_error, stored_rows

PRINCIPALS = ("operator", "analyst", "viewer", "agent")


@pytest.fixture
async def secured(make_client, make_config):
    client = await make_client(make_config(auth={"enabled": True}, analysis={"interval": 0}))
    store = client.app[FOGD].store
    tokens = {}
    for role in PRINCIPALS:
        token = new_token()
        await store.save_token(f"t-{role}", role, "fog-1" if role == "agent" else None, digest(token), 0)
        tokens[role] = token
    client.tokens = tokens
    return client


def auth(token):
    return {"Authorization": f"Bearer {token}"}


BODIES = {("POST", "/ingest"): {"node": "fog-1", "temperature": 20.0}}


async def call(client, method, path, headers):
    body = BODIES.get((method, path), {})
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    return await client.request(method, concrete, json=body, headers=headers)


async def test_every_route_has_a_policy(secured):
    routes = {(r.method, r.resource.canonical) for r in secured.app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    assert routes - set(POLICY) == set(), "routes without a policy in fogd/auth.py"
    assert set(POLICY) - routes == set(), "policies for routes that do not exist"


async def test_authorization_matrix(secured):
    for (method, path), allowed in sorted(POLICY.items()):
        for who in (None, "bogus", *PRINCIPALS):
            token = secured.tokens.get(who, "fogd_not-a-real-token") if who else None
            resp = await call(secured, method, path, auth(token) if token else {})
            where = f"{method} {path} as {who}"
            if allowed is OPEN:
                assert resp.status not in (401, 403), where
            elif who is None or who == "bogus":
                assert resp.status == 401, where
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                await assert_error(resp, 401, "unauthorized")
            elif who in allowed:
                assert resp.status not in (401, 403), f"{where}: {resp.status} {await resp.text()}"
            else:
                body = await assert_error(resp, 403, "forbidden")
                assert body["role"] == who, where


async def test_an_agent_writes_only_its_own_node(secured):
    agent = auth(secured.tokens["agent"])
    assert (await secured.post("/ingest", json={"node": "fog-1", "power": 1.0}, headers=agent)).status == 201
    resp = await secured.post("/ingest", json=[{"node": "fog-1", "power": 1.0}, {"node": "fog-2", "power": 1.0}],
                              headers=agent)
    body = await assert_error(resp, 403, "forbidden", field="$[1].node")
    assert body["index"] == 1
    assert stored_rows(secured) == [(1,)]  # nothing of the rejected batch


async def test_a_revoked_token_stops_working(secured):
    operator = auth(secured.tokens["operator"])
    made = await (await secured.post("/tokens", json={"name": "grafana", "role": "viewer"}, headers=operator)).json()
    viewer = auth(made["token"])
    assert (await secured.get("/api/live_data", headers=viewer)).status == 200
    listed = await (await secured.get("/tokens", headers=operator)).json()
    assert "token" not in listed[0] and {t["name"] for t in listed} >= {"grafana", "t-operator"}
    assert (await secured.post("/tokens/grafana/revoke", headers=operator)).status == 200
    await assert_error(await secured.get("/api/live_data", headers=viewer), 401, "unauthorized")
    await assert_error(await secured.post("/tokens", json={"name": "x", "role": "agent"}, headers=operator),
                       422, "validation", field="node")
    await assert_error(await secured.post("/tokens", json={"name": "grafana", "role": "viewer"},
                                          headers=operator), 409, "conflict")


async def test_the_audit_log_records_who_did_what(secured):
    operator, analyst = auth(secured.tokens["operator"]), auth(secured.tokens["analyst"])
    await secured.post("/ingest", json={"node": "fog-1", "temperature": 20.0}, headers=operator)
    await secured.post("/ingest", json={"node": "fog-2", "temperature": 21.0}, headers=operator)
    await secured.post("/analyze", params={"node": "fog-1"}, headers=analyst)
    await secured.post("/transfer", json={"source": "fog-1", "destination": "fog-2"}, headers=operator)
    await secured.post("/transfer", json={"source": "fog-1", "destination": "fog-1"}, headers=operator)
    await secured.post("/create", json={"fog": 0}, headers=operator)
    await secured.post("/cleanup", json={}, headers=auth(secured.tokens["viewer"]))  # refused: audited too
    entries = await (await secured.get("/audit", headers=operator)).json()
    got = [(e["actor"], e["path"], e["status"], e["outcome"]) for e in entries][::-1]
    assert got == [("t-analyst", "/analyze", 200, "ok"), ("t-operator", "/transfer", 201, "ok"),
                   ("t-operator", "/transfer", 422, "validation"), ("t-operator", "/create", 422, "validation"),
                   ("t-viewer", "/cleanup", 403, "forbidden")]
    transfer = next(e for e in entries if e["status"] == 201)
    assert transfer["params"]["body"] == {"source": "fog-1", "destination": "fog-2"}
    assert transfer["timestamp"].endswith("Z") and transfer["role"] == "operator"
    assert [e["path"] for e in await (await secured.get("/audit", params={"actor": "t-analyst"},
                                                        headers=operator)).json()] == ["/analyze"]


async def test_provisioned_agents_get_their_own_tokens(aiohttp_client, make_config):
    from fogd.daemon import create_app
    from fogd.plugins.host import build_plugin_host
    from tests.helpers import free_port
    from tests.nodes.conftest import remove_instance

    port = free_port()
    config = make_config(server={"listen": f"127.0.0.1:{port}"}, auth={"enabled": True},
                         nodes={"provisioner": "process", "agent_interval": 0.2, "agent_start_jitter": 0.0})
    client = await aiohttp_client(create_app(config, build_plugin_host(entrypoints=False)),
                                  server_kwargs={"port": port})
    store = client.app[FOGD].store
    token = new_token()
    await store.save_token("root", "operator", None, digest(token), 0)
    operator = auth(token)
    try:
        resp = await client.post("/create", json={"fog": 2}, headers=operator)
        assert resp.status == 201, await resp.text()
        deadline = time.monotonic() + 30
        while True:
            status = await (await client.get("/nodes/status", headers=operator)).json()
            if all(n["liveness"] == "online" for n in status):
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
        tokens = {t["node"]: t for t in await (await client.get("/tokens", headers=operator)).json()
                  if t["role"] == "agent"}
        assert set(tokens) == {"fog-1", "fog-2"} and all(t["revoked"] is None for t in tokens.values())
        await client.post("/cleanup", json={}, headers=operator)
        tokens = [t for t in await (await client.get("/tokens", headers=operator)).json() if t["role"] == "agent"]
        assert tokens and all(t["revoked"] for t in tokens)
    finally:
        remove_instance("process", config.nodes.instance)
