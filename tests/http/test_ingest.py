"""POST /ingest against a real aiohttp server and a real SQLite file."""

import asyncio

import pytest

from fogd.context import FOGD
from tests.helpers import assert_error, stored_rows


async def test_single_reading_reply_is_the_stored_reading(client):
    resp = await client.post("/ingest", json={
        "node": "fog-1", "timestamp": "2026-12-04T10:00:00.250Z", "temperature": 31.0,
        "humidity": 40.0, "power": 120.5, "seq": 7, "source": "agent", "extra": {"cpu": 0.5}})
    assert resp.status == 201
    body = await resp.json()
    assert body == {
        "node": "fog-1", "role": "fog", "timestamp": "2026-12-04T10:00:00.250Z",
        "temperature": 31.0, "humidity": 40.0, "power": 120.5,
        # Thom: 31 - 0.55 * (1 - 0.40) * (31 - 14.5) = 25.555
        "comfortIndex": 25.55, "alertStatus": "warning", "source": "agent", "seq": 7,
        "extra": {"cpu": 0.5}, "duplicate": False}
    assert stored_rows(client, "SELECT ts, seq, temperature, alert, source, extra FROM readings") == [
        (1796378400250, 7, 31.0, 1, "agent", '{"cpu":0.5}')]


async def test_timestamp_is_set_by_fogd_when_absent_and_naive_means_utc(client):
    resp = await client.post("/ingest", json={"node": "s1", "temperature": 20.0})
    body = await resp.json()
    assert body["timestamp"].endswith("Z") and body["source"] == "api"
    resp = await client.post("/ingest", json={"node": "s1", "temperature": 20.0, "timestamp": "2026-01-01T00:00:00"})
    assert (await resp.json())["timestamp"] == "2026-01-01T00:00:00.000Z"
    resp = await client.post("/ingest", json={"node": "s1", "temperature": 20.0,
                                              "timestamp": "2026-01-01T02:00:00+02:00"})
    assert (await resp.json())["timestamp"] == "2026-01-01T00:00:00.000Z"


async def test_alert_tiers_follow_the_configured_thresholds(make_client, make_config):
    client = await make_client(make_config(alerts={"power": {"warning_high": 50.0, "critical_high": 60.0}}))
    tiers = []
    for power in (10.0, 50.0, 59.9, 60.0):
        resp = await client.post("/ingest", json={"node": "p", "power": power})
        tiers.append((await resp.json())["alertStatus"])
    assert tiers == ["normal", "warning", "warning", "critical"]
    resp = await client.post("/ingest", json={"node": "p", "temperature": 20.0, "humidity": 50.0})
    body = await resp.json()
    assert body["comfortIndex"] == pytest.approx(20 - 0.55 * 0.5 * 5.5, abs=0.01)
    resp = await client.post("/ingest", json={"node": "p", "temperature": -1.0})
    assert (await resp.json())["alertStatus"] == "critical"


async def test_batch_of_ten_thousand_replies_with_counts(client):
    batch = [{"node": f"fog-{i % 100}", "seq": i // 100, "temperature": 20 + i % 7, "humidity": 50.0}
             for i in range(10_000)]
    resp = await client.post("/ingest", json=batch)
    assert resp.status == 201
    assert await resp.json() == {"received": 10_000, "stored": 10_000, "duplicates": 0}
    assert stored_rows(client) == [(10_000,)]
    assert stored_rows(client, "SELECT COUNT(*) FROM nodes") == [(100,)]


async def test_same_node_and_seq_is_stored_once_and_reported_as_duplicate(client):
    reading = {"node": "fog-1", "seq": 1, "temperature": 20.0}
    first = await client.post("/ingest", json=reading)
    again = await client.post("/ingest", json=reading)
    assert (first.status, (await first.json())["duplicate"]) == (201, False)
    assert (again.status, (await again.json())["duplicate"]) == (200, True)
    # a batch mixing old and new, with a repeat inside the batch itself
    batch = [reading, {**reading, "seq": 2}, {**reading, "seq": 2}, {**reading, "seq": 3},
             {"node": "fog-2", "seq": 1, "temperature": 1.0}, {"node": "fog-1", "temperature": 5.0}]
    resp = await client.post("/ingest", json=batch)
    assert await resp.json() == {"received": 6, "stored": 4, "duplicates": 2}
    assert stored_rows(client, "SELECT n.name, r.seq FROM readings r JOIN nodes n ON n.id = r.node_id "
                               "ORDER BY r.id") == [
        ("fog-1", 1), ("fog-1", 2), ("fog-1", 3), ("fog-2", 1), ("fog-1", None)]
    again = await client.post("/ingest", json=batch)
    assert await again.json() == {"received": 6, "stored": 1, "duplicates": 5}  # the seq-less one is new


async def test_a_batch_with_one_bad_reading_is_rejected_whole(client):
    batch = [{"node": "fog-1", "temperature": 20.0}] * 5
    batch.insert(3, {"node": "fog-1", "temperature": "hot"})
    resp = await client.post("/ingest", json=batch)
    body = await assert_error(resp, 422, "validation", field="$[3].temperature")
    assert body["index"] == 3
    assert stored_rows(client) == [(0,)]
    assert stored_rows(client, "SELECT COUNT(*) FROM nodes") == [(0,)]


@pytest.mark.parametrize("payload, field", [
    ({"node": "fog-1", "temprature": 20.0}, "$.temprature"),
    ({"temperature": 20.0}, "$.node"),
    ({"node": "", "temperature": 20.0}, "$.node"),
    ({"node": "bad node!", "temperature": 20.0}, "$.node"),
    ({"node": "n", "humidity": 101.0}, "$.humidity"),
    ({"node": "n", "power": -1.0}, "$.power"),
    ({"node": "n", "seq": -1, "power": 1.0}, "$.seq"),
    ({"node": "n", "role": "edge", "power": 1.0}, "$.role"),
    ({"node": "n", "timestamp": "yesterday", "power": 1.0}, "$.timestamp"),
    ({"node": "n", "extra": {"cpu": "high"}}, "$.extra[...]"),
    ({"node": "n", "extra": {"bad key": 1.0}}, "$.extra"),
    ({"node": "n"}, "$[0]"),
    ([], "$"),
    ([{"node": "n", "power": 1.0}, {"node": "n"}], "$[1]"),
    ("fog-1", "$"),
])
async def test_invalid_readings_get_422_naming_the_field(client, payload, field):
    resp = await client.post("/ingest", json=payload)
    await assert_error(resp, 422, "validation", field=field)
    assert stored_rows(client) == [(0,)]


@pytest.mark.parametrize("body", [b"", b"{", b'{"node": "n",}', b"\xff\xfe", b"[{\"node\": \"n\""])
async def test_malformed_json_gets_400(client, body):
    resp = await client.post("/ingest", data=body, headers={"Content-Type": "application/json"})
    await assert_error(resp, 400, "malformed")


async def test_body_over_the_limit_gets_413(make_client, make_config):
    client = await make_client(make_config(server={"max_body_bytes": 4096}))
    batch = [{"node": "fog-1", "temperature": 20.0}] * 200
    resp = await client.post("/ingest", json=batch)
    body = await assert_error(resp, 413, "too_large")
    assert body["limit"] == 4096 and "server.max_body_bytes" in body["detail"]
    assert stored_rows(client) == [(0,)]


async def test_batch_over_max_batch_gets_413(make_client, make_config):
    client = await make_client(make_config(ingest={"max_batch": 3}))
    resp = await client.post("/ingest", json=[{"node": "a", "power": 1.0}] * 4)
    body = await assert_error(resp, 413, "too_large")
    assert "ingest.max_batch" in body["detail"]


async def test_unknown_node_registers_with_its_role(client):
    resp = await client.post("/ingest", json=[{"node": "gw-1", "role": "cloud", "power": 3.0},
                                              {"node": "sensor-9", "temperature": 1.0}])
    assert resp.status == 201
    assert stored_rows(client, "SELECT name, role, provisioner FROM nodes ORDER BY name") == [
        ("gw-1", "cloud", "external"), ("sensor-9", "fog", "external")]


async def test_concurrent_requests_share_commits(client):
    writer = client.app[FOGD].writer
    before = writer.commits
    replies = await asyncio.gather(*[
        client.post("/ingest", json={"node": f"n{i % 5}", "seq": i, "power": float(i)}) for i in range(200)])
    assert [r.status for r in replies] == [201] * 200
    assert stored_rows(client) == [(200,)]
    assert writer.commits - before < 200


async def test_a_full_queue_answers_503_with_retry_after_and_stores_nothing_of_it(make_client, make_config):
    client = await make_client(make_config(ingest={"max_queue_rows": 5}))
    resp = await client.post("/ingest", json=[{"node": "a", "power": 1.0}] * 6)
    body = await assert_error(resp, 503, "overloaded")
    assert resp.headers["Retry-After"] == "1" and "ingest.max_queue_rows" in body["detail"]
    assert stored_rows(client) == [(0,)]
    # under concurrency: whatever was accepted is stored, whatever was refused is not
    replies = await asyncio.gather(*[
        client.post("/ingest", json=[{"node": "a", "seq": i * 3 + j, "power": 1.0} for j in range(3)])
        for i in range(30)])
    statuses = [r.status for r in replies]
    assert set(statuses) <= {201, 503} and 201 in statuses
    assert stored_rows(client) == [(3 * statuses.count(201),)]
