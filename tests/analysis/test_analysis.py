"""Analysis over real stored histories: rules, alert lifecycle, summary, backtest, transfer."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from fogd import hookimpl
from tests.helpers import assert_error


def iso(seconds_ago: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds_ago, timezone.utc).isoformat()


async def store(client, node, readings):
    """readings: [(seconds_ago, {metric: value})], oldest first."""
    batch = [{"node": node, "timestamp": iso(ago), **values} for ago, values in readings]
    resp = await client.post("/ingest", json=batch)
    assert resp.status == 201, await resp.text()


def steady(n=100, every=2.0, start=0.0, temperature=22.0, humidity=45.0, power=120.0):
    """n readings, one every `every` s, ending `start` s ago, with a little deterministic noise."""
    return [(start + (n - i) * every, {"temperature": temperature + 0.05 * ((i * 7) % 5 - 2),
                                       "humidity": humidity + 0.2 * ((i * 3) % 5 - 2),
                                       "power": power + 0.5 * ((i * 11) % 5 - 2)}) for i in range(n)]


async def analyze(client, **params):
    resp = await client.post("/analyze", params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.fixture
async def quiet(make_client, make_config):
    """fogd without the background loop, so every analysis in a test is one it asked for."""
    return await make_client(make_config(analysis={"interval": 0}))


async def test_a_steady_node_raises_nothing(quiet):
    await store(quiet, "fog-1", steady())
    body = await analyze(quiet)
    assert body["analyzed"] == 1 and body["errors"] == []
    assert body["rules"] == ["humidity_anomaly", "power_anomaly", "temperature_anomaly"]
    assert body["nodes"]["fog-1"]["findings"] == [] and body["nodes"]["fog-1"]["points"] == 100
    assert await (await quiet.get("/alerts")).json() == []


async def test_a_spike_raises_the_temperature_rule_with_evidence(quiet):
    await store(quiet, "fog-1", steady(start=2) + [(0, {"temperature": 36.5, "humidity": 45.0, "power": 120.0})])
    body = await analyze(quiet)
    [finding] = body["nodes"]["fog-1"]["findings"]
    assert finding["rule"] == "temperature_anomaly" and finding["severity"] == "critical"
    checks = finding["evidence"]["checks"]
    assert checks["absolute"] == {"severity": "critical", "threshold": 35.0, "side": "above"}
    assert checks["baseline"]["zscore"] > 8 and abs(checks["baseline"]["mean"] - 22.0) < 0.1
    assert checks["rate"]["per_minute"] > 2.0
    assert finding["evidence"]["value"] == 36.5 and finding["evidence"]["window"]["points"] == 101
    assert "above critical 35" in finding["message"]
    [alert] = await (await quiet.get("/alerts")).json()
    assert (alert["node"], alert["rule"], alert["severity"], alert["state"]) == (
        "fog-1", "temperature_anomaly", "critical", "open")


async def test_a_drift_raises_the_drift_check_only(quiet):
    # +0.5 °C per minute for 5 minutes: under every threshold, but a clear trend
    await store(quiet, "fog-1", [(300 - i * 3, {"temperature": 22.0 + 0.5 * (i * 3) / 60, "humidity": 45.0,
                                                "power": 120.0}) for i in range(101)])
    [finding] = (await analyze(quiet))["nodes"]["fog-1"]["findings"]
    assert finding["rule"] == "temperature_anomaly" and finding["severity"] == "warning"
    assert set(finding["evidence"]["checks"]) == {"drift"}
    drift = finding["evidence"]["checks"]["drift"]
    assert drift["per_minute"] == pytest.approx(0.5, abs=0.01) and drift["r2"] > 0.99


async def test_a_humidity_excursion_raises_the_humidity_rule(quiet):
    await store(quiet, "fog-1", steady(start=6) + [(ago, {"temperature": 22.0, "humidity": 82.0, "power": 120.0})
                                                   for ago in (4, 2, 0)])
    findings = (await analyze(quiet))["nodes"]["fog-1"]["findings"]
    assert [f["rule"] for f in findings] == ["humidity_anomaly"]
    assert findings[0]["evidence"]["checks"]["absolute"]["threshold"] == 70.0
    assert findings[0]["evidence"]["metric"] == "humidity"


async def hover(client, rounds):
    """A temperature alternating just above and below the 30 °C warning bound, analysed
    after every new reading."""
    await store(client, "fog-1", steady(n=30, temperature=29.9))
    for i in range(rounds):
        await store(client, "fog-1", [(0, {"temperature": 30.1 if i % 2 == 0 else 29.9, "humidity": 45.0})])
        await analyze(client)
    return await (await client.get("/alerts", params={"state": "all"})).json()


async def test_a_value_hovering_at_the_threshold_does_not_flap(quiet):
    alerts = await hover(quiet, 10)
    assert len(alerts) == 1 and alerts[0]["state"] == "open" and alerts[0]["findings"] == 5
    summary = await (await quiet.get("/api/analysis_summary")).json()
    assert not [e for e in summary["events"] if e["kind"] == "alert_cleared"]


async def test_without_hysteresis_the_same_hovering_would_flap(make_client, make_config):
    client = await make_client(make_config(analysis={"interval": 0, "clear_after": 1}))
    alerts = await hover(client, 10)
    assert len(alerts) == 5  # what clear_after protects against


async def test_alerts_clear_by_themselves_and_can_be_acknowledged(quiet):
    await store(quiet, "fog-1", steady(start=2) + [(0, {"temperature": 36.5})])
    await analyze(quiet)
    [alert] = await (await quiet.get("/alerts")).json()
    resp = await quiet.post(f"/alerts/{alert['id']}/ack")
    assert resp.status == 200 and (await resp.json())["state"] == "acknowledged"
    assert [a["id"] for a in await (await quiet.get("/alerts", params={"state": "acknowledged"})).json()] == [
        alert["id"]]
    # normal again: the acknowledged alert clears after clear_after (3) clean evaluations
    for i in range(3):
        assert [a["id"] for a in await (await quiet.get("/alerts")).json()] == [alert["id"]]
        await store(quiet, "fog-1", [(0, {"temperature": 22.0, "humidity": 45.0, "power": 120.0})])
        body = await analyze(quiet)
        assert body["nodes"]["fog-1"]["findings"] == []
    assert await (await quiet.get("/alerts")).json() == []
    [cleared] = await (await quiet.get("/alerts", params={"state": "cleared"})).json()
    assert cleared["id"] == alert["id"] and cleared["acknowledged"] and cleared["cleared"]
    await assert_error(await quiet.post(f"/alerts/{alert['id']}/ack"), 409, "conflict")
    await assert_error(await quiet.post("/alerts/999/ack"), 404, "not_found")
    await assert_error(await quiet.post("/alerts/abc/ack"), 422, "validation", field="id")
    await assert_error(await quiet.get("/alerts", params={"state": "sleepy"}), 422, "validation", field="state")
    kinds = [e["kind"] for e in (await (await quiet.get("/api/analysis_summary")).json())["events"]]
    assert kinds[0] == "alert_cleared" and "alert_acknowledged" in kinds and "alert_opened" in kinds
    assert body["nodes"]["fog-1"]["alerts"][0]["change"] == "cleared"


class Broken:
    name = "broken_rule"

    def evaluate(self, window, config):
        raise ZeroDivisionError("oops")


class BrokenRules:
    @hookimpl
    def fogd_register_rules(self):
        return [Broken()]


async def test_a_rule_that_raises_is_reported_by_name_and_the_others_run(make_client, make_config):
    client = await make_client(make_config(analysis={"interval": 0}), plugins=[BrokenRules()])
    await store(client, "fog-1", steady(start=2) + [(0, {"temperature": 36.5})])
    body = await analyze(client)
    assert body["errors"] == [{"rule": "broken_rule", "error": "ZeroDivisionError: oops"}]
    assert [f["rule"] for f in body["nodes"]["fog-1"]["findings"]] == ["temperature_anomaly"]
    metrics = await (await client.get("/metrics")).text()
    assert 'fogd_rule_errors_total{rule="broken_rule"} 1.0' in metrics


async def test_analysis_summary_lists_events_newest_first_with_counts(quiet):
    await store(quiet, "fog-1", steady(start=2) + [(0, {"temperature": 36.5})])
    await store(quiet, "fog-2", steady())
    await analyze(quiet)
    body = await (await quiet.get("/api/analysis_summary")).json()
    assert [e["kind"] for e in body["events"]] == ["alert_opened", "finding"]  # newest first
    assert all(e["timestamp"].endswith("Z") and e["node"] == "fog-1" for e in body["events"])
    assert body["alerts"]["nodes_by_tier"] == {"normal": 1, "warning": 0, "critical": 1}
    assert body["alerts"]["live_alerts"] == {"warning": 0, "critical": 1}
    assert body["analysis"]["runs"] == 1
    only = await (await quiet.get("/api/analysis_summary", params={"node": "fog-2"})).json()
    assert only["events"] == []
    await assert_error(await quiet.get("/api/analysis_summary", params={"node": "nope"}), 404, "not_found")


async def test_only_fog_nodes_are_analyzed_unless_named(quiet):
    await store(quiet, "cloud-1", [(ago, {**v, "role": "cloud"}) for ago, v in steady()])
    await store(quiet, "fog-1", steady())
    assert list((await analyze(quiet))["nodes"]) == ["fog-1"]
    assert list((await analyze(quiet, node="cloud-1"))["nodes"]) == ["cloud-1"]
    await assert_error(await quiet.post("/analyze", params={"node": "ghost"}), 404, "not_found")


async def test_backtest_reports_what_would_have_fired_and_writes_nothing(quiet):
    # an hour ago: a 3-minute heat episode; now: calm
    history = steady(n=600, every=6.0)
    history = [(ago, {**v, "temperature": 37.0}) if 1800 <= ago <= 1980 else (ago, v) for ago, v in history]
    await store(quiet, "fog-1", history)
    resp = await quiet.post("/analyze", params={"backtest": "1", "since": iso(3500), "step": "30"})
    assert resp.status == 200
    body = await resp.json()
    fired = body["nodes"]["fog-1"]["fired"]
    assert [(e["rule"], e["change"]) for e in fired] == [("temperature_anomaly", "opened"),
                                                          ("temperature_anomaly", "cleared")]
    assert fired[0]["severity"] == "critical" and body["nodes"]["fog-1"]["opened"] == 1
    assert await (await quiet.get("/alerts", params={"state": "all"})).json() == []
    summary = await (await quiet.get("/api/analysis_summary")).json()
    assert summary["events"] == []
    await assert_error(await quiet.post("/analyze", params={"backtest": "1"}), 422, "validation", field="since")


async def test_the_background_loop_analyzes_by_itself(make_client, make_config):
    client = await make_client(make_config(analysis={"interval": 0.1}))
    await store(client, "fog-1", steady(start=2) + [(0, {"temperature": 36.5})])
    for _ in range(50):
        if await (await client.get("/alerts")).json():
            break
        await asyncio.sleep(0.1)
    [alert] = await (await client.get("/alerts")).json()
    assert alert["rule"] == "temperature_anomaly"


async def test_transfer_copies_exactly_the_latest_metrics(quiet):
    await store(quiet, "fog-1", [(5, {"temperature": 20.0, "humidity": 40.0}),
                                 (1, {"temperature": 23.25, "humidity": 51.5, "power": 99.5,
                                      "extra": {"cpu_load": 0.42}})])
    await store(quiet, "fog-2", [(3, {"temperature": 18.0})])
    resp = await quiet.post("/transfer", json={"source": "fog-1", "destination": "fog-2"})
    assert resp.status == 201
    body = await resp.json()
    metrics = ("temperature", "humidity", "power", "extra")
    assert {k: body["copied"][k] for k in metrics} == {"temperature": 23.25, "humidity": 51.5, "power": 99.5,
                                                       "extra": {"cpu_load": 0.42}}
    assert {k: body["stored"][k] for k in metrics} == {k: body["copied"][k] for k in metrics}
    assert body["stored"]["source"] == "transfer:fog-1" and body["stored"]["node"] == "fog-2"
    latest = (await (await quiet.get("/nodes/fog-2/data")).json())["latest"]
    assert {k: latest[k] for k in metrics} == {k: body["copied"][k] for k in metrics}
    assert latest["source"] == "transfer:fog-1"
    events = (await (await quiet.get("/api/analysis_summary", params={"node": "fog-2"})).json())["events"]
    assert events[0]["kind"] == "transfer" and events[0]["evidence"]["source"] == "fog-1"


@pytest.mark.parametrize("body, status, kind", [
    ({"source": "ghost", "destination": "fog-2"}, 404, "not_found"),
    ({"source": "fog-1", "destination": "ghost"}, 404, "not_found"),
    ({"source": "empty", "destination": "fog-2"}, 409, "no_data"),
    ({"source": "fog-1", "destination": "fog-1"}, 422, "validation"),
    ({"source": "fog-1"}, 422, "validation"),
    ({"source": "fog-1", "destination": "fog-2", "mode": "x"}, 422, "validation"),
])
async def test_transfer_errors(quiet, body, status, kind):
    await store(quiet, "fog-1", [(1, {"temperature": 20.0})])
    await store(quiet, "fog-2", [(1, {"temperature": 20.0})])
    from fogd.context import FOGD
    await quiet.app[FOGD].store.register_nodes({"empty": "fog"}, 0)
    await assert_error(await quiet.post("/transfer", json=body), status, kind)
