"""schemathesis against fogd's own OpenAPI document: no 5xx, no crash, and the
database passes PRAGMA integrity_check afterwards."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.helpers import Daemon
from tests.nodes.conftest import remove_instance

pytestmark = pytest.mark.slow

_state: dict = {}


def _daemon(tmp_path_factory) -> Daemon:
    if "daemon" not in _state:
        tmp = tmp_path_factory.mktemp("fuzz")
        instance = f"fuzz{uuid.uuid4().hex[:8]}"
        config = tmp / "fogd.toml"
        # few nodes at most: fuzzed /create calls start real agent processes
        config.write_text(f'[nodes]\nprovisioner = "process"\ninstance = "{instance}"\nmax_nodes = 2\n'
                          '[analysis]\ninterval = 0\n')
        _state["daemon"] = Daemon(tmp / "fogd.sqlite3", env={"FOGD_CONFIG": str(config)}).start()
        _state["instance"] = instance
    return _state["daemon"]


@pytest.fixture(scope="module")
def fogd_url(tmp_path_factory):
    d = _daemon(tmp_path_factory)
    yield d.url
    d.stop()
    remove_instance("process", _state["instance"])
    with sqlite3.connect(d.db) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    _state.clear()


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema(fogd_url):
    return schemathesis.openapi.from_url(fogd_url + "/openapi.json")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_fogd_fail(case):
    response = case.call(timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)
