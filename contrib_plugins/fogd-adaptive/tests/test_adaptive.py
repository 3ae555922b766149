"""fogd-adaptive, installed with pip, against a real fogd (aiohttp server + SQLite file)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from fogd.config import Config
from fogd.daemon import create_app
from fogd.plugins.host import build_plugin_host

HERE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install` this plugin into its own directory (real dist-info, real entry point)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "fogd-adaptive"
    shutil.copytree(HERE, source, ignore=shutil.ignore_patterns("tests", "*.egg-info", "build"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    return target


@pytest.fixture
def plugin_on_path(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    yield
    sys.modules.pop("fogd_adaptive", None)


def config(tmp_path, **adaptive) -> Config:
    return msgspec.convert({"store": {"path": str(tmp_path / "fogd.sqlite3")},
                            "analysis": {"interval": 0},
                            "nodes": {"provisioner": "process", "instance": f"adaptive{time.time_ns()}"},
                            "plugin": {"adaptive": adaptive} if adaptive else {}}, Config)


def iso(ago):
    return datetime.fromtimestamp(time.time() - ago, timezone.utc).isoformat()


async def step_history(client):
    """A node that is normally very steady (6 °C ± 0.05), then steps up by 0.6 °C."""
    batch = [{"node": "cold-1", "timestamp": iso(300 - i * 3), "humidity": 50.0,
              "temperature": 6.0 + 0.05 * ((i * 7) % 3 - 1), "power": 80.0} for i in range(100)]
    batch += [{"node": "cold-1", "timestamp": iso(0), "temperature": 6.6, "humidity": 50.0, "power": 80.0}]
    assert (await client.post("/ingest", json=batch)).status == 201


async def rules_that_fired(client):
    body = await (await client.post("/analyze", params={"node": "cold-1"})).json()
    assert body["errors"] == []
    return body, {f["rule"]: f for f in body["nodes"]["cold-1"]["findings"]}


async def test_without_the_plugin_the_step_goes_unnoticed(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(config(tmp_path), build_plugin_host(entrypoints=False)))
    await step_history(client)
    body, fired = await rules_that_fired(client)
    assert "adaptive_thresholds" not in body["rules"]
    assert fired == {}  # inside every fixed band, and under the baseline check's std floor


async def test_installed_with_pip_it_changes_what_fires(plugin_on_path, aiohttp_client, tmp_path):
    host = build_plugin_host(entrypoints=True)
    assert host.infos["adaptive"].origin == "fogd-adaptive 0.1.0"
    client = await aiohttp_client(create_app(config(tmp_path), host))
    await step_history(client)
    body, fired = await rules_that_fired(client)
    assert "adaptive_thresholds" in body["rules"]
    finding = fired["adaptive_thresholds"]
    # 0.6 °C over a spread of 1.4826 * 0.05: about 8 spreads, beyond k = 5, within 2k
    assert finding["severity"] == "warning"
    assert finding["evidence"]["metric"] == "temperature" and 5 < finding["evidence"]["score"] < 10
    assert abs(finding["evidence"]["center"] - 6.0) < 0.06
    assert "learned normal" in finding["message"]


async def test_settings_come_from_fogd_toml(plugin_on_path, aiohttp_client, tmp_path):
    lenient = config(tmp_path, k=1000.0, method="ewma")
    client = await aiohttp_client(create_app(lenient, build_plugin_host(entrypoints=True)))
    await step_history(client)
    _, fired = await rules_that_fired(client)
    assert "adaptive_thresholds" not in fired


async def test_a_bad_setting_is_reported_by_rule_name(plugin_on_path, aiohttp_client, tmp_path):
    bad = config(tmp_path, method="magic")
    client = await aiohttp_client(create_app(bad, build_plugin_host(entrypoints=True)))
    await step_history(client)
    body = await (await client.post("/analyze")).json()
    assert body["errors"][0]["rule"] == "adaptive_thresholds"
    assert "[plugin.adaptive]" in body["errors"][0]["error"] and "method" in body["errors"][0]["error"]


def test_mad_ignores_a_past_spike_that_widens_the_standard_deviation():
    import importlib
    sys.path.insert(0, str(HERE))
    try:
        mod = importlib.import_module("fogd_adaptive")
        values = [10.0] * 50 + [30.0] + [10.0] * 49
        center, spread = mod.baseline(values, mod.Settings())
        assert center == 10.0 and spread == 0.01  # the spike does not move the learned range
        ewma_center, ewma_spread = mod.baseline(values, mod.Settings(method="ewma", alpha=0.2))
        assert ewma_spread > spread
    finally:
        sys.path.remove(str(HERE))
        sys.modules.pop("fogd_adaptive", None)
