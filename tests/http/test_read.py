"""Reading data back: /nodes/{node}/data, /api/live_data, /healthz."""

import pytest

from tests.helpers import assert_error


async def seed(client, node="fog-1", n=10, start_minute=0):
    batch = [{"node": node, "seq": i, "timestamp": f"2026-12-04T10:{start_minute + i:02d}:00Z",
              "temperature": 20.0 + i, "humidity": 50.0} for i in range(n)]
    resp = await client.post("/ingest", json=batch)
    assert resp.status == 201


async def test_node_data_gives_latest_and_history_newest_first(client):
    await seed(client)
    resp = await client.get("/nodes/fog-1/data", params={"limit": "3"})
    assert resp.status == 200
    body = await resp.json()
    assert body["node"] == "fog-1" and body["role"] == "fog" and body["provisioner"] == "external"
    assert body["latest"]["timestamp"] == "2026-12-04T10:09:00.000Z"
    assert body["count"] == 3
    assert [r["temperature"] for r in body["history"]] == [29.0, 28.0, 27.0]
    assert set(body["history"][0]) >= {"node", "timestamp", "temperature", "humidity", "power",
                                       "comfortIndex", "alertStatus", "source", "seq", "extra"}


async def test_node_data_since_until_are_inclusive(client):
    await seed(client)
    resp = await client.get("/nodes/fog-1/data", params={
        "since": "2026-12-04T10:02:00Z", "until": "2026-12-04T10:04:00Z"})
    body = await resp.json()
    assert [r["timestamp"][11:16] for r in body["history"]] == ["10:04", "10:03", "10:02"]
    # epoch milliseconds work too
    resp = await client.get("/nodes/fog-1/data", params={"since": "1796378940000"})  # 10:09
    assert [r["seq"] for r in (await resp.json())["history"]] == [9]


async def test_unknown_node_is_404(client):
    resp = await client.get("/nodes/ghost/data")
    body = await assert_error(resp, 404, "not_found")
    assert body["node"] == "ghost"


@pytest.mark.parametrize("params, field", [
    ({"limit": "many"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "10001"}, "limit"),
    ({"since": "last tuesday"}, "since"), ({"until": "2026-13-01"}, "until"),
    ({"since": "2026-12-05T00:00:00Z", "until": "2026-12-04T00:00:00Z"}, "since"),
])
async def test_bad_query_parameters_are_422(client, params, field):
    await seed(client, n=1)
    resp = await client.get("/nodes/fog-1/data", params=params)
    await assert_error(resp, 422, "validation", field=field)


async def test_live_data_is_the_newest_reading_per_node(client):
    await seed(client, "fog-2", n=3)
    await seed(client, "fog-1", n=5)
    # a late, older reading (an agent flushing its buffer) does not replace the newest
    await client.post("/ingest", json={"node": "fog-1", "timestamp": "2026-12-04T09:00:00Z", "temperature": 1.0})
    resp = await client.get("/api/live_data")
    assert resp.status == 200
    body = await resp.json()
    assert [(r["node"], r["timestamp"], r["temperature"]) for r in body] == [
        ("fog-1", "2026-12-04T10:04:00.000Z", 24.0), ("fog-2", "2026-12-04T10:02:00.000Z", 22.0)]


async def test_live_data_survives_a_restart(make_client, make_config):
    config = make_config()
    first = await make_client(config)
    await seed(first, "fog-1", n=4)
    await first.close()
    second = await make_client(config)
    body = await (await second.get("/api/live_data")).json()
    assert [(r["node"], r["seq"]) for r in body] == [("fog-1", 3)]
    history = await (await second.get("/nodes/fog-1/data")).json()
    assert history["count"] == 4


async def test_healthz(client):
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok" and body["store"] == "ok"
