"""The provisioned Grafana stack: every panel of the Fog Console, queried exactly as its
JSON writes it (the way the plugin builds the request), against a store filled by real
node agents; and the compose and provisioning files, parsed and cross-checked."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import yaml

from tests.grafana.schema import query_errors
from tests.helpers import REPO, free_port
from tests.nodes.conftest import remove_instance

PROVISIONING = REPO / "grafana-provisioning"
DASHBOARD = PROVISIONING / "dashboards" / "fog-console.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_targets(dash: dict) -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in dash["panels"] for t in p.get("targets", [])]


def interpolate(payload: str, variables: dict[str, list[str]]) -> object:
    """The plugin's code-mode payload handling (DataSource.processPayload/cleanMatch):
    each $var becomes its JSON rendering (unquoted if it is a JSON string), then the
    text is parsed; a parse error gives {}."""
    if not payload.strip():
        return {}

    def render(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        values = variables[name]
        text = json.dumps(values)
        return json.loads(text) if text.startswith('"') else text

    replaced = re.sub(r"\$(?:\{(\w+)\}|(\w+))", render, payload)
    try:
        return json.loads(replaced)
    except ValueError:
        return {}


async def test_every_panel_query_returns_data_from_real_agents(aiohttp_client, make_config):
    from fogd.daemon import create_app
    from fogd.plugins.host import build_plugin_host

    port = free_port()
    config = make_config(server={"listen": f"127.0.0.1:{port}"},
                         nodes={"provisioner": "process", "agent_interval": 0.2, "anomaly_rate": 0.3,
                                "agent_start_jitter": 0.0},
                         analysis={"interval": 0.5, "min_points": 3})
    client = await aiohttp_client(create_app(config, build_plugin_host(entrypoints=False)),
                                  server_kwargs={"port": port})
    try:
        created = await (await client.post("/create", json={"fog": 2, "cloud": 1})).json()
        assert len(created["created"]) == 3, created

        async def ready() -> bool:
            status = await (await client.get("/nodes/status")).json()
            summary = await (await client.get("/api/analysis_summary")).json()
            return all(n["liveness"] == "online" for n in status) and bool(summary["events"])
        deadline = time.monotonic() + 60
        while not await ready():
            assert time.monotonic() < deadline, "agents did not report, or analysis found nothing"
            await asyncio.sleep(0.2)

        dash = dashboard()
        served = {m["value"] for m in await (await client.post("/metrics", json={})).json()}
        variables = {}
        for var in dash["templating"]["list"]:
            if var["type"] != "query":
                continue
            query = var["query"]
            payload = json.loads(query["query"]) if query.get("format") == "json" else {"target": query["query"]}
            options = await (await client.post("/variable", json={"payload": payload})).json()
            assert options, f"variable {var['name']} has no values"
            variables[var["name"]] = [o["__value"] for o in options]  # "All" selected
        assert sorted(variables["node"]) == ["cloud-1", "fog-1", "fog-2"]

        for title, t in panel_targets(dash):
            assert t["target"] in served, f"panel {title!r} uses target {t['target']!r}, which fogd does not serve"
            now = time.time()
            body = {"range": {"from": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 900)),
                              "to": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now + 1)),
                              "raw": {"from": "now-15m", "to": "now"}},
                    "intervalMs": 1000, "maxDataPoints": 500, "scopedVars": {},
                    "targets": [{**t, "payload": interpolate(t.get("payload", ""), variables)}]}
            resp = await client.post("/query", json=body)
            assert resp.status == 200, f"{title}: {await resp.text()}"
            frames = await resp.json()
            assert frames, f"panel {title!r} got no data"
            assert query_errors(frames) == [], title
            for frame in frames:
                assert frame["refId"] == t["refId"]
                assert frame.get("rows") or frame.get("datapoints"), f"panel {title!r}: an empty frame"
    finally:
        await client.post("/cleanup", json={})
        remove_instance("process", config.nodes.instance)


def test_datasource_provisioning():
    [ds] = yaml.safe_load((PROVISIONING / "datasources" / "fogd.yaml").read_text())["datasources"]
    assert (ds["type"], ds["uid"], ds["access"]) == ("simpod-json-datasource", "fogd", "proxy")
    url = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", ds["url"])  # Grafana's ${VAR:-default}
    assert url == "http://fogd:8000" and not url.endswith("/")
    assert ds["jsonData"]["defaultEditorMode"] == "code"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"].startswith("Bearer ")


def test_dashboard_provisioning_and_panels():
    [provider] = yaml.safe_load((PROVISIONING / "dashboards" / "fogd.yaml").read_text())["providers"]
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    host_dir = next(h for h, c in mounts.items() if provider["options"]["path"].startswith(c))
    container_root = mounts[host_dir]
    local = REPO / host_dir / Path(provider["options"]["path"]).relative_to(container_root)
    assert local.resolve() == DASHBOARD.parent.resolve() and DASHBOARD.exists()
    dash = dashboard()
    assert dash["uid"] == "fog-console" and dash["title"] == "Fog Console"
    titles = {p["title"] for p in dash["panels"]}
    assert {"Live Sensor Snapshot", "Node Health Status", "Recent Analysis Events", "System Overview"} <= titles
    assert any(p["type"] == "timeseries" and "$node" in p["title"] for p in dash["panels"])
    assert all(p["datasource"]["uid"] == "fogd" for p in dash["panels"])
    assert all(t["datasource"]["uid"] == "fogd" for _, t in panel_targets(dash))
    assert [v["name"] for v in dash["templating"]["list"]] == ["node", "Filters"]


def test_compose_file_references_what_exists():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"fogd", "grafana", "node-image"}
    for name in ("fogd", "node-image"):
        context = REPO / services[name]["build"]["context"]
        assert (context / "Dockerfile").exists(), f"{name}: no Dockerfile in {context}"
    fogd = services["fogd"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in fogd["volumes"]
    assert fogd["healthcheck"]["test"][0] == "CMD"
    assert fogd["environment"]["FOGD_DOCKER_NETWORK"] == compose["networks"]["default"]["name"]
    assert fogd["environment"]["FOGD_AGENT_URL"] == "http://fogd:8000"
    assert services["node-image"]["image"] == "fogd-node:latest"
    grafana = services["grafana"]
    assert "simpod-json-datasource" in grafana["environment"]["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    assert "GF_INSTALL_PLUGINS" not in grafana["environment"]
    for volume in grafana["volumes"]:
        host = volume.split(":")[0]
        assert (REPO / host).exists(), f"grafana mounts {host}, which does not exist"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/etc/grafana/provisioning/dashboards/fog-console.json"
    assert grafana["depends_on"]["fogd"]["condition"] == "service_healthy"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.12-slim" in dockerfile and 'CMD ["fogd", "serve"]' in dockerfile
