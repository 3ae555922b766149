"""The plugin host: built-ins as plugins, entry points, disabling, failures by name."""

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fogd import hookimpl
from fogd.config import Config
from fogd.daemon import create_app
from fogd.errors import ConfigError
from fogd.plugins.host import build_plugin_host
from tests.helpers import assert_error, stored_rows

FIXTURE = Path(__file__).parent / "fixtures" / "fogd-test-units"


@pytest.fixture(scope="session")
def installed_plugin(tmp_path_factory) -> Path:
    """pip-install the fixture distribution into its own directory (a real install, with
    its entry points in a dist-info), returned for sys.path / PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / FIXTURE.name
    shutil.copytree(FIXTURE, source)  # setuptools builds in the source tree: not in ours
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    return target


@pytest.fixture
def with_plugin(installed_plugin, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(installed_plugin))
    yield installed_plugin
    for mod in ("fogd_test_units", "fogd_test_units_broken"):
        sys.modules.pop(mod, None)


def test_builtins_are_registered_like_plugins():
    host = build_plugin_host(entrypoints=False)
    info = host.infos["default_normalize"]
    assert (info.origin, info.status, info.hooks) == ("builtin", "loaded", ["fogd_normalize_readings"])


async def test_entry_point_plugin_changes_normalization(with_plugin, make_client, make_config, caplog):
    host = build_plugin_host(entrypoints=True)
    assert host.infos["units"].origin == "fogd-test-units 1.0"
    assert host.infos["units"].hooks == ["fogd_normalize_readings", "fogd_register_rules"]
    assert host.infos["broken"].status == "failed"
    assert "broken on purpose" in host.infos["broken"].error

    client = await make_client(make_config(), entrypoints=True)
    resp = await client.post("/ingest", json={"node": "us-1", "humidity": 50.0, "extra": {"temperature_f": 95.0}})
    body = await resp.json()
    assert resp.status == 201
    assert body["temperature"] == 35.0 and body["extra"] == {}
    # the built-in normalizer ran after the plugin: comfort index and tier use 35 °C
    assert body["comfortIndex"] == pytest.approx(35 - 0.55 * 0.5 * 20.5, abs=0.01)
    assert body["alertStatus"] == "critical"


async def test_plugins_can_be_disabled_by_name(with_plugin, make_client, make_config):
    config = make_config(plugins={"disabled": ["default_normalize", "units"]})
    host = build_plugin_host(config.plugins.disabled, entrypoints=True)
    assert host.infos["default_normalize"].status == "disabled"
    assert host.infos["units"].status == "disabled"
    client = await make_client(config)
    body = await (await client.post("/ingest", json={"node": "n", "temperature": 50.0, "humidity": 50.0})).json()
    assert body["comfortIndex"] is None and body["alertStatus"] == "normal"


class Raiser:
    @hookimpl
    def fogd_normalize_readings(self, readings):
        readings[0].power = 1.0
        raise RuntimeError("boom")


async def test_a_normalizer_that_raises_is_reported_and_ingest_goes_on(make_client, caplog):
    client = await make_client(plugins=[Raiser()])
    with caplog.at_level(logging.ERROR, logger="fogd.plugins"):
        resp = await client.post("/ingest", json={"node": "n", "temperature": 40.0})
    assert resp.status == 201
    assert (await resp.json())["alertStatus"] == "critical"  # the built-in still ran
    assert any("raised in fogd_normalize_readings: RuntimeError: boom" in r.getMessage() for r in caplog.records)
    metrics = await (await client.get("/metrics")).text()
    assert 'fogd_plugin_errors_total{hook="fogd_normalize_readings",plugin="' in metrics
    assert (await client.get("/healthz")).status == 200


class Corrupter:
    @hookimpl
    def fogd_normalize_readings(self, readings):
        readings[0].temperature = "warm"


async def test_a_normalizer_that_corrupts_values_stores_nothing(make_client):
    client = await make_client(plugins=[Corrupter()])
    resp = await client.post("/ingest", json=[{"node": "n", "temperature": 1.0}, {"node": "n", "power": 1.0}])
    body = await assert_error(resp, 500, "internal", field="$[0].temperature")
    assert "normalizer plugin" in body["detail"]
    assert stored_rows(client) == [(0,)]


class Typo:
    @hookimpl
    def fogd_normalise_readings(self, readings):
        pass


def test_a_misspelled_hook_stops_start_up_naming_the_plugin():
    with pytest.raises(ConfigError, match="plugin 'Typo'.*fogd_normalise_readings"):
        build_plugin_host(entrypoints=False, extra=[Typo()])


class Named:
    def __init__(self, name):
        self.name = name


class RulesA:
    @hookimpl
    def fogd_register_rules(self):
        return [Named("spike")]


class RulesB:
    @hookimpl
    def fogd_register_rules(self, config):
        return [Named("spike")]


def test_registries_collect_by_name_and_refuse_duplicates():
    host = build_plugin_host(entrypoints=False, extra=[RulesA()])
    host.collect_registries(Config())
    assert "spike" in host.registries["rules"] and "temperature_anomaly" in host.registries["rules"]
    host = build_plugin_host(entrypoints=False, extra=[RulesA(), RulesB()])
    with pytest.raises(ConfigError, match="plugins 'RulesB' and 'RulesA' both register rule 'spike'"):
        create_app(Config(), host)


class Wrapper:
    @hookimpl(wrapper=True)
    def fogd_normalize_readings(self, readings):
        return (yield)


def test_hook_wrappers_are_refused():
    with pytest.raises(ConfigError, match="plugin 'Wrapper': hook wrappers are not supported"):
        build_plugin_host(entrypoints=False, extra=[Wrapper()])


class StartupRaiser:
    @hookimpl
    def fogd_startup(self, app):
        raise RuntimeError("cannot start")

    @hookimpl
    async def fogd_shutdown(self, app):
        raise RuntimeError("cannot stop")


async def test_lifecycle_hooks_that_raise_do_not_stop_the_daemon(make_client, caplog):
    client = await make_client(plugins=[StartupRaiser()])
    assert (await client.get("/healthz")).status == 200
    assert any("raised in fogd_startup" in r.getMessage() for r in caplog.records)
    await client.close()
    assert any("raised in fogd_shutdown" in r.getMessage() for r in caplog.records)


def test_fogd_plugins_cli_lists_plugins_and_hooks(with_plugin, tmp_path):
    import os
    env = {**os.environ, "PYTHONPATH": f"{with_plugin}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "fogd", "plugins"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ORIGIN", "STATUS", "HOOKS"]
    assert any(line.split()[:3] == ["default_normalize", "builtin", "loaded"] for line in lines)
    assert any(line.startswith("units") and "fogd-test-units 1.0" in line and "fogd_register_rules" in line
               for line in lines)
    assert any(line.startswith("broken") and "failed" in line for line in lines)
    assert "units-rule" in out.stdout.split("rules: ")[1].splitlines()[0]
