import tomllib

import msgspec
import pytest

from fogd.config import ENV_OVERRIDES, Config, load_config
from fogd.daemon import check_listen
from fogd.errors import ConfigError
from tests.helpers import REPO


def _keys(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            out |= _keys(v, f"{prefix}{k}.") if isinstance(v, (dict, msgspec.Struct)) and v else {f"{prefix}{k}"}
        return out
    return {prefix.rstrip(".")}


def test_repo_fogd_toml_documents_every_key_with_its_default():
    with open(REPO / "fogd.toml", "rb") as f:
        documented = tomllib.load(f)
    assert load_config(REPO / "fogd.toml", env={}) == Config()
    text = (REPO / "fogd.toml").read_text()
    for key in _keys(Config()) - _keys(documented):
        # TOML cannot write "unset": such keys are documented as comments.
        assert f"# {key.rsplit('.', 1)[-1]} =" in text, f"{key} is not documented in fogd.toml"
    assert not _keys(documented) - _keys(Config())


def test_defaults_listen_on_loopback_and_keep_data_in_a_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    config = load_config(env={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8000)
    assert config.store.resolved_path() == tmp_path / "fogd" / "fogd.sqlite3"
    check_listen(config)  # loopback: fine


@pytest.mark.parametrize("text, message", [
    ('[server]\nlisen = "127.0.0.1:1"', "server.lisen: unknown field"),
    ('[server]\nmax_body_bytes = "big"', "server.max_body_bytes: Expected `int`, got `str`"),
    ('[store]\nsynchronous = "sometimes"', "store.synchronous: Invalid enum value 'sometimes'"),
    ('[alerts.humidity]\nwarning_high = "x"', "alerts.humidity.warning_high: Expected `float | null`, got `str`"),
    ('[server]\nlisten = "8000"', "server: listen must be HOST:PORT"),
    ('[server]\nevent_loop = "trio"', "server.event_loop: Invalid enum value 'trio'"),
    ("zap = 1", "zap: unknown field"),
    ("[server\n", "not valid TOML"),
])
def test_bad_config_stops_with_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "fogd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", env={})


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "fogd.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:9000"\n[store]\npath = "/tmp/a.db"\n')
    env = {"FOGD_LISTEN": "127.0.0.1:9100", "FOGD_DB": str(tmp_path / "b.db"), "FOGD_LOG_LEVEL": "debug",
           "FOGD_DATA_DIR": str(tmp_path / "d"), "FOGD_SYNCHRONOUS": "full", "FOGD_PROVISIONER": "process",
           "FOGD_INSTANCE": "lab-2", "FOGD_NODE_IMAGE": "fogd-node:test", "FOGD_DOCKER_NETWORK": "host",
           "FOGD_GRAFANA_URL": "http://grafana:3000", "FOGD_AGENT_URL": "http://fogd:8000",
           "FOGD_ALLOW_REMOTE": "true", "FOGD_AUTH": "true", "FOGD_TLS_CERT": "/c.pem", "FOGD_TLS_KEY": "/k.pem"}
    config = load_config(path, env=env)
    assert config.server.port == 9100
    assert config.store.resolved_path() == tmp_path / "b.db"
    assert config.store.resolved_data_dir() == tmp_path / "d"
    assert (config.log.level, config.store.synchronous) == ("debug", "full")
    assert (config.nodes.provisioner, config.nodes.instance, config.nodes.image, config.docker.network) == (
        "process", "lab-2", "fogd-node:test", "host")
    assert (config.grafana.url, config.nodes.fogd_url, config.server.allow_remote) == (
        "http://grafana:3000", "http://fogd:8000", True)
    assert config.auth.enabled is True and config.server.scheme == "https"
    assert set(env) == set(ENV_OVERRIDES)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"^environment FOGD_LOG_LEVEL: log.level"):
        load_config(env={"FOGD_LOG_LEVEL": "loud"})


def test_non_loopback_listen_needs_explicit_allow_remote():
    config = load_config(env={"FOGD_LISTEN": "0.0.0.0:8000"})
    with pytest.raises(ConfigError, match="allow_remote"):
        check_listen(config)
    check_listen(msgspec.structs.replace(
        config, server=msgspec.structs.replace(config.server, allow_remote=True)))


def test_plugin_sections_are_free_form(tmp_path):
    path = tmp_path / "fogd.toml"
    path.write_text('[plugin.adaptive]\nwindow = 50\nmode = "mad"\n')
    assert load_config(path, env={}).plugin == {"adaptive": {"window": 50, "mode": "mad"}}


def test_the_event_loop_is_uvloop_unless_asyncio_is_asked_for():
    import asyncio

    import uvloop  # a dependency wherever fogd's tests run (Linux)

    from fogd.daemon import new_event_loop

    for kind, expected in (("auto", uvloop.Loop), ("uvloop", uvloop.Loop),
                           ("asyncio", asyncio.SelectorEventLoop)):
        loop = new_event_loop(kind)
        try:
            assert type(loop) is expected, kind
        finally:
            loop.close()
