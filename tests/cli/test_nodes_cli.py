"""`fogd create / nodes / status / cleanup` against a real daemon (process provisioner)."""

import json
import subprocess
import sys
import time
import uuid

from tests.helpers import Daemon
from tests.nodes.conftest import remove_instance


def fogd(*args, url):
    return subprocess.run([sys.executable, "-m", "fogd", *args, "--url", url], capture_output=True, text=True,
                          timeout=120)


def test_create_status_cleanup(tmp_path):
    instance = f"t{uuid.uuid4().hex[:12]}"
    config = tmp_path / "fogd.toml"
    config.write_text(f'[nodes]\nprovisioner = "process"\ninstance = "{instance}"\nagent_interval = 0.2\n')
    d = Daemon(tmp_path / "fogd.sqlite3", env={"FOGD_CONFIG": str(config)}).start()
    try:
        out = fogd("create", "--fog", "2", "--cloud", "1", url=d.url)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert sorted(line.split("]")[1].split()[0] for line in lines[:3]) == ["cloud-1", "fog-1", "fog-2"]
        assert all("started" in line for line in lines[:3])
        assert lines[3].startswith("3 created, 0 failed with process in ")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = json.loads(fogd("status", "--json", url=d.url).stdout)
            if all(n["liveness"] == "online" for n in status):
                break
            time.sleep(0.2)
        assert [n["name"] for n in status] == ["cloud-1", "fog-1", "fog-2"]
        assert all(n["liveness"] == "online" and n["status"] == "running" for n in status)
        human = fogd("status", url=d.url).stdout.splitlines()
        assert human[0].split()[:4] == ["NAME", "ROLE", "STATUS", "LIVENESS"]
        ids = json.loads(fogd("nodes", "--json", url=d.url).stdout)
        assert ids == {n["name"]: n["container_id"] for n in status}
        out = fogd("cleanup", url=d.url)
        assert out.returncode == 0 and out.stdout.startswith("removed 3 nodes (process); history cleared")
        assert fogd("nodes", url=d.url).stdout.strip() == "no nodes"
        bad = fogd("create", url=d.url)
        assert bad.returncode == 1 and "at least one node" in bad.stderr
    finally:
        d.kill()
        remove_instance("process", instance)
