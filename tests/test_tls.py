"""HTTPS end to end: `fogd serve` with a certificate, the CLI and an agent verifying it."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from tests.helpers import free_port, need_tool
from tests.nodes.conftest import remove_instance

pytestmark = pytest.mark.slow


def make_cert(tmp_path):
    openssl = need_tool("openssl")
    cert, key = tmp_path / "fogd.pem", tmp_path / "fogd.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=fogd",
                    "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def fogd(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fogd", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_https_with_a_verified_certificate(tmp_path):
    cert, key = make_cert(tmp_path)
    port = free_port()
    instance = f"t{uuid.uuid4().hex[:12]}"
    config = tmp_path / "fogd.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
                      f'tls_ca = "{cert}"\n[nodes]\nprovisioner = "process"\ninstance = "{instance}"\n'
                      'agent_interval = 0.2\nagent_start_jitter = 0.0\n')
    env = {"FOGD_CONFIG": str(config), "FOGD_DB": str(tmp_path / "fogd.sqlite3")}
    proc = subprocess.Popen([sys.executable, "-m", "fogd", "serve"], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(cert))
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1, context=context).read()
                break
            except OSError:
                time.sleep(0.05)
        out = fogd("ingest", "fog-9", "--temperature", "21", "--url", url, "--cafile", str(cert))
        assert out.returncode == 0, out.stderr
        refused = fogd("live", "--url", url)  # no CA: the certificate is not trusted
        assert refused.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        plain = fogd("live", "--url", f"http://127.0.0.1:{port}")
        assert plain.returncode != 0
        # an agent started by fogd gets the CA and delivers over HTTPS
        made = fogd("create", "--fog", "1", "--url", url, "--cafile", str(cert), "--json")
        assert made.returncode == 0, made.stderr
        [node] = [n["name"] for n in json.loads(made.stdout)["created"]]
        assert node == "fog-10"  # numbering continues after the sensor fog-9
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(fogd("status", "--json", "--url", url, "--cafile", str(cert)).stdout)
            if any(n["name"] == node and n["liveness"] == "online" for n in status):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        # ... over its stream (a WebSocket through TLS), not the POST fallback
        with urllib.request.urlopen(url + "/metrics", context=context, timeout=5) as resp:
            metrics = resp.read().decode()
        assert "\nfogd_ingest_streams 1.0\n" in metrics, metrics
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        remove_instance("process", instance)


def test_a_certificate_without_its_key_is_a_config_error(tmp_path):
    config = tmp_path / "fogd.toml"
    config.write_text('[server]\ntls_cert = "/nope.pem"\n')
    out = fogd("serve", "--config", str(config))
    assert out.returncode == 2 and "tls_cert and tls_key go together" in out.stderr
    config.write_text('[server]\ntls_cert = "/nope.pem"\ntls_key = "/nope.key"\n')
    out = fogd("serve", "--config", str(config), "--db", str(tmp_path / "x.sqlite3"))
    assert out.returncode == 2 and "cannot load /nope.pem" in out.stderr
