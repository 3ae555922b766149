"""fogd's Grafana JSON datasource routes against the plugin's own OpenAPI contract, and
replays of the request bodies Grafana really sends."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.grafana.schema import errors, query_errors, response_schema
from tests.helpers import assert_error


def iso(seconds_ago: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds_ago, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
async def seeded(make_client, make_config):
    client = await make_client(make_config(analysis={"interval": 0}))
    batch = []
    for node, role, base in (("fog-1", "fog", 22.0), ("fog-2", "fog", 24.0), ("cloud-1", "cloud", 26.0)):
        for i in range(120):
            batch.append({"node": node, "role": role, "timestamp": iso(600 - i * 5), "temperature": base + (i % 7) / 10,
                          "humidity": 45.0 + i % 5, "power": 100.0 + i, "extra": {"cpu_load": 0.3, "fan_rpm": 1200.0}})
    batch.append({"node": "fog-2", "timestamp": iso(0), "temperature": 37.0, "humidity": 45.0, "power": 150.0})
    assert (await client.post("/ingest", json=batch)).status == 201
    assert (await client.post("/analyze")).status == 200
    from fogd.context import FOGD
    while await client.app[FOGD].store.rollup_step():  # what the roll-up loop does each second
        pass
    return client


def grafana_query(*targets, **extra):
    """A DataQueryRequest as Grafana 11 sends it, undocumented keys included."""
    return {
        "app": "dashboard", "requestId": "SQR101", "timezone": "browser", "panelId": 4, "dashboardUID": "fog-console",
        "range": {"from": iso(3600), "to": iso(0), "raw": {"from": "now-1h", "to": "now"}},
        "timeInfo": "", "interval": "5s", "intervalMs": 5000, "maxDataPoints": 300,
        "targets": list(targets), "scopedVars": {"__interval": {"text": "5s", "value": "5s"},
                                                 "__interval_ms": {"text": "5000", "value": 5000}},
        "startTime": int(time.time() * 1000), "rangeRaw": {"from": "now-1h", "to": "now"},
        "adhocFilters": [], "filters": [], **extra,
    }


def target(name, payload=None, ref="A", **extra):
    t = {"refId": ref, "datasource": {"type": "simpod-json-datasource", "uid": "fogd"}, "target": name,
         "editorMode": "code", "key": "Q-7f0c-0"}
    if payload is not None:
        t["payload"] = payload
    return {**t, **extra}


async def post(client, path, body):
    resp = await client.post(path, json=body)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_health_check_is_any_200(seeded):
    resp = await seeded.get("/")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"


async def test_metrics_lists_every_target_per_the_contract(seeded):
    body = await post(seeded, "/metrics", {"metric": "", "payload": {}})
    assert errors(body, response_schema("/metrics")) == []
    names = {m["value"] for m in body}
    assert names >= {"live_data", "health_map", "analysis_summary", "system_overview", "alert_buckets",
                     "temperature", "humidity", "power", "comfortIndex", "extra"}
    temperature = next(m for m in body if m["value"] == "temperature")
    assert [p["name"] for p in temperature["payloads"]] == ["node", "role"]
    assert (await seeded.post("/metrics", data=b"")).status == 200  # empty body: still the list


async def test_metric_payload_options_per_the_contract(seeded):
    nodes = await post(seeded, "/metric-payload-options", {"metric": "temperature", "payload": {}, "name": "node"})
    assert errors(nodes, response_schema("/metric-payload-options")) == []
    assert [o["value"] for o in nodes] == ["cloud-1", "fog-1", "fog-2"]
    extras = await post(seeded, "/metric-payload-options", {"metric": "extra", "payload": {"node": "fog-1"},
                                                            "name": "metric"})
    assert [o["value"] for o in extras] == ["cpu_load", "fan_rpm"]
    assert await post(seeded, "/metric-payload-options", {"metric": "nope", "payload": {}, "name": "x"}) == []


@pytest.mark.parametrize("name", ["live_data", "health_map", "analysis_summary", "system_overview",
                                  "alert_buckets", "temperature", "humidity", "power", "comfortIndex", "extra"])
async def test_every_target_answers_per_the_contract_and_echoes_refid(seeded, name):
    frames = await post(seeded, "/query", grafana_query(target(name, "", ref="Z")))
    assert frames, f"{name} returned no frames"
    assert query_errors(frames) == []
    assert all(f["refId"] == "Z" for f in frames)


async def test_time_series_are_value_then_epoch_ms_and_downsampled_to_max_data_points(seeded):
    frames = await post(seeded, "/query", grafana_query(target("temperature", {"node": "fog-1"}), maxDataPoints=20))
    [series] = frames
    assert series["target"] == "fog-1 temperature"
    points = series["datapoints"]
    assert 0 < len(points) <= 20
    now_ms = time.time() * 1000
    for value, ts in points:
        assert 20 < value < 25 and now_ms - 3_700_000 < ts <= now_ms and isinstance(ts, int)
    assert [p[1] for p in points] == sorted(p[1] for p in points)
    # the range is honoured: the last 2 minutes only
    recent = grafana_query(target("temperature", {"node": "fog-1"}))
    recent["range"] = {"from": iso(120), "to": iso(0)}
    [series] = await post(seeded, "/query", recent)
    assert all(ts >= now_ms - 125_000 for _, ts in series["datapoints"])


async def test_tables_carry_iso_timestamps(seeded):
    [table] = await post(seeded, "/query", grafana_query(target("live_data")))
    assert table["columns"][0] == {"text": "Time", "type": "time"}
    assert [r[1] for r in table["rows"]] == ["cloud-1", "fog-1", "fog-2"]
    assert all(r[0].endswith("Z") and "T" in r[0] for r in table["rows"])


@pytest.mark.parametrize("payload, nodes", [
    ({"node": "fog-1"}, ["fog-1"]),                      # code mode, parsed JSON
    ({"node": ["fog-1", "cloud-1"]}, ["cloud-1", "fog-1"]),  # multi-value variable, json format
    ({"role": "cloud"}, ["cloud-1"]),
    ('{"node": "fog-2"}', ["fog-2"]),                    # a JSON string
    ("", ["cloud-1", "fog-1", "fog-2"]),                 # older dashboards: ""
    ({}, ["cloud-1", "fog-1", "fog-2"]),                 # a parse error in the plugin gives {}
    ({"node": "$__all"}, ["cloud-1", "fog-1", "fog-2"]),
    ({"node": "fog-1,fog-2"}, ["fog-1", "fog-2"]),       # a text box
    ({"limit": "100", "node": "fog-1"}, ["fog-1"]),      # builder mode: every value a string
    ("not json", ["cloud-1", "fog-1", "fog-2"]),
])
async def test_payload_shapes_grafana_sends(seeded, payload, nodes):
    frames = await post(seeded, "/query", grafana_query(target("humidity", payload)))
    assert sorted(f["target"].split()[0] for f in frames) == nodes
    assert query_errors(frames) == []


async def test_ad_hoc_filters_apply_to_every_target(seeded):
    body = grafana_query(target("live_data", ref="A"), target("temperature", ref="B"), target("health_map", ref="C"),
                         filters=[{"key": "role", "operator": "=", "value": "fog"},
                                  {"key": "node", "operator": "!=", "value": "fog-1"}])
    frames = await post(seeded, "/query", body)
    live = next(f for f in frames if f["refId"] == "A")
    assert [r[1] for r in live["rows"]] == ["fog-2"]
    assert [f["target"] for f in frames if f["refId"] == "B"] == ["fog-2 temperature"]
    health = next(f for f in frames if f["refId"] == "C")
    assert [r[0] for r in health["rows"]] == ["fog-2"]
    critical = await post(seeded, "/query", grafana_query(
        target("live_data"), filters=[{"key": "alertStatus", "operator": "=", "value": "critical"}]))
    assert [r[1] for r in critical[0]["rows"]] == ["fog-2"]
    # on a series, an alertStatus filter keeps only readings of that tier
    [series] = await post(seeded, "/query", grafana_query(
        target("temperature", {"node": "fog-2"}), filters=[{"key": "alertStatus", "operator": "=", "value": "critical"}]))
    assert [round(v, 1) for v, _ in series["datapoints"]] == [37.0]


async def test_hidden_and_placeholder_targets_are_skipped(seeded):
    frames = await post(seeded, "/query", grafana_query(target("live_data", hide=True), {"refId": "B"},
                                                        target("alert_buckets", ref="C")))
    assert [f["refId"] for f in frames] == ["C"]
    assert await post(seeded, "/query", grafana_query()) == []


async def test_query_errors_are_json(seeded):
    body = await assert_error(await seeded.post("/query", json=grafana_query(target("no_such_target"))),
                              422, "validation")
    assert body["target"] == "no_such_target" and body["refId"] == "A"
    await assert_error(await seeded.post("/query", data=b"{oops", headers={"Content-Type": "application/json"}),
                       400, "malformed")
    await assert_error(await seeded.post("/query", json={"targets": "everything"}), 422, "validation")


async def test_variable_per_the_contract(seeded):
    nodes = await post(seeded, "/variable", {"payload": {"target": "node"}, "range": {"from": iso(60), "to": iso(0)}})
    assert errors(nodes, response_schema("/variable")) == []
    assert [v["__value"] for v in nodes] == ["cloud-1", "fog-1", "fog-2"]
    assert all(v["__text"] == v["__value"] for v in nodes)
    roles = await post(seeded, "/variable", {"payload": {"target": "role"}})
    assert [v["__value"] for v in roles] == ["cloud", "fog"]
    fog = await post(seeded, "/variable", {"payload": {"target": "node", "role": "fog"}})  # raw JSON mode
    assert [v["__value"] for v in fog] == ["fog-1", "fog-2"]
    await assert_error(await seeded.post("/variable", json={"payload": {"target": "colour"}}), 422, "validation")


async def test_tag_keys_and_values_per_the_contract(seeded):
    keys = await post(seeded, "/tag-keys", {})
    assert errors(keys, response_schema("/tag-keys")) == []
    assert keys == [{"type": "string", "text": "role"}, {"type": "string", "text": "node"},
                    {"type": "string", "text": "alertStatus"}]
    assert await post(seeded, "/tag-values", {"key": "role"}) == [{"text": "cloud"}, {"text": "fog"}]
    assert await post(seeded, "/tag-values", {"key": "node"}) == [{"text": "cloud-1"}, {"text": "fog-1"},
                                                                  {"text": "fog-2"}]
    assert await post(seeded, "/tag-values", {"key": "alertStatus"}) == [
        {"text": "normal"}, {"text": "warning"}, {"text": "critical"}]


async def test_get_metrics_stays_prometheus(seeded):
    resp = await seeded.get("/metrics")
    assert resp.status == 200 and "fogd_readings_stored_total" in await resp.text()


async def test_dashboard_json_routes_for_infinity(seeded):
    health = await (await seeded.get("/api/health_map")).json()
    fog2 = next(h for h in health if h["node"] == "fog-2")
    assert fog2["alertStatus"] == "critical" and fog2["colour"] == "red" and fog2["icon"]
    overview = await (await seeded.get("/api/system_overview")).json()
    assert overview["ingest"]["stored"] == 361 and overview["analysis"]["runs"] == 1
    assert overview["nodes"]["by_role"] == {"cloud": 1, "fog": 2}
    assert overview["alerts"]["nodes_by_tier"]["critical"] == 1
    assert overview["generated"].endswith("Z")
    start = await (await seeded.get("/dashboard/start")).json()
    assert start["dashboard_url"] == "http://127.0.0.1:3000/d/fog-console/fog-console"
    assert (await seeded.post("/dashboard/start")).status == 200


async def test_long_ranges_come_from_roll_ups_and_agree_with_the_readings(seeded):
    from fogd.context import FOGD
    store = seeded.app[FOGD].store
    node = store.nodes["fog-1"]
    now = int(time.time() * 1000)
    rolled = await store.series(node.id, "temperature", now - 3_600_000, now, 120_000)
    raw = await store.series(node.id, "temperature", now - 3_600_000, now, 120_000, alerts=(0, 1, 2))
    assert len(rolled) == len(raw) > 3
    for (t1, v1), (t2, v2) in zip(rolled, raw):
        assert t1 == t2 and abs(v1 - v2) < 1e-9
