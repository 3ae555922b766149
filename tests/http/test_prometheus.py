"""GET /metrics: fogd's own counters, valid for promtool."""

import subprocess

from tests.helpers import need_tool


async def exposition(client) -> str:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return await resp.text()


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in exposition")


async def test_counters_follow_ingest(client):
    await client.post("/ingest", json=[{"node": "a", "seq": 1, "power": 1.0}, {"node": "b", "power": 2.0}])
    await client.post("/ingest", json={"node": "a", "seq": 1, "power": 1.0})
    await client.post("/ingest", data=b"{", headers={"Content-Type": "application/json"})
    await client.post("/ingest", json={"node": "a"})
    await client.get("/nodes/zzz/data")
    text = await exposition(client)
    assert sample(text, "fogd_readings_stored_total") == 2
    assert sample(text, "fogd_readings_duplicate_total") == 1
    assert sample(text, 'fogd_ingest_rejected_total{reason="malformed"}') == 1
    assert sample(text, 'fogd_ingest_rejected_total{reason="validation"}') == 1
    assert sample(text, 'fogd_http_requests_total{method="POST",route="/ingest",status="201"}') == 1
    assert sample(text, 'fogd_http_requests_total{method="GET",route="/nodes/{node}/data",status="404"}') == 1
    assert sample(text, "fogd_ingest_latency_seconds_count") == 2
    assert sample(text, 'fogd_nodes{liveness="online",role="fog",status="external"}') == 2


async def test_exposition_passes_promtool(client):
    promtool = need_tool("promtool")
    await client.post("/ingest", json={"node": "a", "power": 1.0})
    await client.get("/healthz")
    text = await exposition(client)
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
