"""`fogd analyze / alerts / ack / transfer` against a real daemon."""

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from tests.helpers import Daemon


def fogd(*args, url, stdin=None):
    return subprocess.run([sys.executable, "-m", "fogd", *args, "--url", url], capture_output=True, text=True,
                          input=stdin, timeout=60)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analysis-cli")
    config = tmp / "fogd.toml"
    config.write_text('[analysis]\ninterval = 0\n[nodes]\nprovisioner = "process"\ninstance = "cli-analysis"\n')
    d = Daemon(tmp / "fogd.sqlite3", env={"FOGD_CONFIG": str(config)}).start()
    yield d
    d.kill()


def iso(ago):
    return datetime.fromtimestamp(time.time() - ago, timezone.utc).isoformat()


def test_analyze_alerts_ack_transfer(running):
    url = running.url
    batch = [{"node": "fog-1", "timestamp": iso(200 - i * 2), "temperature": 22.0 + 0.01 * (i % 3),
              "humidity": 45.0} for i in range(100)] + [{"node": "fog-1", "temperature": 37.0, "humidity": 45.0}]
    assert fogd("ingest", "--file", "-", url=url, stdin=json.dumps(batch)).returncode == 0
    out = fogd("analyze", url=url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("analyzed 1 nodes in ")
    assert "CRITICAL fog-1 temperature 37" in out.stdout and "temperature_anomaly opened" in out.stdout
    alerts = json.loads(fogd("alerts", "--json", url=url).stdout)
    assert [(a["node"], a["rule"], a["state"]) for a in alerts] == [("fog-1", "temperature_anomaly", "open")]
    table = fogd("alerts", url=url).stdout.splitlines()
    assert table[0].split()[:5] == ["ID", "NODE", "RULE", "SEVERITY", "STATE"]
    out = fogd("ack", str(alerts[0]["id"]), url=url)
    assert out.returncode == 0 and "acknowledged" in out.stdout
    assert fogd("ack", "999", url=url).returncode == 1
    backtest = json.loads(fogd("analyze", "--backtest", "--since", iso(300), "--step", "20", "--json",
                               url=url).stdout)
    assert backtest["nodes"]["fog-1"]["opened"] == 1
    assert fogd("analyze", "--backtest", url=url).returncode == 2

    assert fogd("ingest", "fog-2", "--temperature", "20", url=url).returncode == 0
    out = fogd("transfer", "fog-1", "fog-2", url=url)
    assert out.returncode == 0 and out.stdout.startswith("copied fog-1's latest reading")
    assert "transfer:fog-1" in out.stdout
    bad = fogd("transfer", "fog-1", "fog-1", url=url)
    assert bad.returncode == 1 and "422" in bad.stderr
