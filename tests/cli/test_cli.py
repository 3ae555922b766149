"""The `fogd` command against a real `fogd serve` process."""

import json
import subprocess
import sys

import pytest

from tests.helpers import free_port


def fogd(*args, url=None, stdin=None):
    cmd = [sys.executable, "-m", "fogd", *args]
    if url:
        cmd += ["--url", url]
    return subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=60)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    from tests.helpers import Daemon
    d = Daemon(tmp_path_factory.mktemp("cli") / "fogd.sqlite3").start()
    yield d
    assert d.stop() == 0  # SIGTERM is a clean exit


def test_ingest_prints_the_stored_reading(running):
    out = fogd("ingest", "fog-1", "--temperature", "24.5", "--humidity", "60", "--power", "110",
               "--seq", "1", "--extra", "cpu=0.25", url=running.url)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NODE", "TIMESTAMP", "TEMPERATURE"]
    assert row.split()[0] == "fog-1" and "24.50" in row and "normal" in row and "cli" in row
    again = fogd("ingest", "fog-1", "--temperature", "24.5", "--seq", "1", "--json", url=running.url)
    body = json.loads(again.stdout)
    assert body["duplicate"] is True and body["node"] == "fog-1"


def test_ingest_file_and_data_and_live(running):
    batch = [{"node": "cloud-1", "role": "cloud", "seq": i, "power": 200.0 + i,
              "timestamp": f"2026-12-04T12:00:0{i}Z"} for i in range(5)]
    out = fogd("ingest", "--file", "-", url=running.url, stdin=json.dumps(batch))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "received 5, stored 5, duplicates 0"
    data = fogd("data", "cloud-1", "--limit", "2", "--json", url=running.url)
    body = json.loads(data.stdout)
    assert body["role"] == "cloud" and [r["power"] for r in body["history"]] == [204.0, 203.0]
    human = fogd("data", "cloud-1", url=running.url).stdout
    assert human.startswith("cloud-1 (cloud), 5 readings shown")
    live = fogd("live", "--json", url=running.url)
    nodes = {r["node"] for r in json.loads(live.stdout)}
    assert "cloud-1" in nodes
    assert "cloud-1" in fogd("live", url=running.url).stdout


def test_the_daemon_saying_no_is_a_clear_error(running):
    out = fogd("ingest", "fog-1", "--humidity", "140", url=running.url)
    assert out.returncode == 1
    assert "fogd answered 422: validation: $.humidity" in out.stderr
    out = fogd("data", "nobody", url=running.url)
    assert out.returncode == 1 and "404" in out.stderr and "nobody" in out.stderr
    out = fogd("ingest", "fog-1", "--extra", "cpu", url=running.url)
    assert out.returncode == 1 and "NAME=NUMBER" in out.stderr


def test_an_unreachable_daemon_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    out = fogd("live", url=url)
    assert out.returncode == 3
    assert out.stderr.startswith(f"fogd: cannot reach fogd at {url}")
    assert "fogd serve" in out.stderr


def test_serve_with_a_bad_config_exits_with_one_line(tmp_path):
    path = tmp_path / "fogd.toml"
    path.write_text("[server]\nport = 1\n")
    out = fogd("serve", "--config", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"fogd: config error: {path}: server.port: unknown field"


def test_serve_refuses_a_public_address_without_allow_remote(tmp_path):
    out = fogd("serve", "--listen", "0.0.0.0:8000", "--db", str(tmp_path / "x.db"))
    assert out.returncode == 2 and "allow_remote" in out.stderr


def test_python_dash_m_and_version():
    out = fogd("--version")
    assert out.returncode == 0 and out.stdout.startswith("fogd ")
