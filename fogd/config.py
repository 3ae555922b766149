"""fogd's configuration: typed sections read from ``fogd.toml`` plus ``FOGD_*`` overrides.

Every key, its default and its meaning are documented in ``fogd.toml`` at the
repository root; ``tests/test_config.py`` keeps that file and these Structs in step.
Unknown keys and wrong types stop start-up with one line naming the key.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from fogd.errors import ConfigError, split_validation_error


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: typos in keys fail fast."""


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT (e.g. 127.0.0.1:8000), got {value!r}")
    return host.strip("[]"), int(port)


class ServerConfig(_Section):
    listen: str = "127.0.0.1:8000"
    max_body_bytes: int = 32 * 1024 * 1024
    allow_remote: bool = False
    access_log: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    def __post_init__(self) -> None:
        _parse_listen(self.listen)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def host(self) -> str:
        return _parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _parse_listen(self.listen)[1]


class StoreConfig(_Section):
    data_dir: str = ""
    path: str = ""
    synchronous: Literal["normal", "full"] = "normal"

    def resolved_data_dir(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        return Path(base) / "fogd"

    def resolved_path(self) -> Path:
        if self.path:
            return Path(self.path).expanduser()
        return self.resolved_data_dir() / "fogd.sqlite3"


class IngestConfig(_Section):
    max_batch: int = 100_000
    commit_max_rows: int = 20_000
    max_queue_rows: int = 200_000
    commit_delay_ms: float = 100.0

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.commit_max_rows < 1:
            raise ValueError("max_batch and commit_max_rows must be at least 1")
        if not 0 <= self.commit_delay_ms <= 1000:
            raise ValueError("commit_delay_ms must be within 0..1000")


class Band(_Section):
    """Alert thresholds for one metric; a value at or beyond a bound raises that tier."""

    warning_low: float | None = None
    warning_high: float | None = None
    critical_low: float | None = None
    critical_high: float | None = None

    def bounds(self) -> tuple[float, float, float, float]:
        """``(critical_low, warning_low, warning_high, critical_high)``, unset = infinite."""
        inf = math.inf
        return (
            -inf if self.critical_low is None else self.critical_low,
            -inf if self.warning_low is None else self.warning_low,
            inf if self.warning_high is None else self.warning_high,
            inf if self.critical_high is None else self.critical_high,
        )


def _band(**kw: float) -> Any:
    return msgspec.field(default_factory=lambda: Band(**kw))


class AlertsConfig(_Section):
    temperature: Band = _band(warning_low=5.0, critical_low=0.0, warning_high=30.0, critical_high=35.0)
    humidity: Band = _band(warning_low=20.0, critical_low=10.0, warning_high=70.0, critical_high=85.0)
    power: Band = _band(warning_high=400.0, critical_high=500.0)
    comfort_index: Band = _band(warning_high=24.0, critical_high=27.0)


class PluginsConfig(_Section):
    disabled: list[str] = []
    entrypoints: bool = True


class NodesConfig(_Section):
    provisioner: str = "auto"
    instance: str = "default"
    image: str = "fogd-node:latest"
    max_nodes: int = 200
    create_parallelism: int = 8
    agent_interval: float = 1.0
    anomaly_rate: float = 0.01
    agent_start_jitter: float = 4.0
    fogd_url: str = ""
    stale_after: float = 3.0
    lost_after: float = 10.0

    def __post_init__(self) -> None:
        import re

        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,31}", self.instance):
            raise ValueError("instance must be lowercase letters, digits, '_', '.', '-' (at most 32)")
        if self.max_nodes < 1 or self.create_parallelism < 1 or self.agent_interval <= 0:
            raise ValueError("max_nodes, create_parallelism and agent_interval must be positive")
        if not 0 < self.stale_after < self.lost_after:
            raise ValueError("stale_after must be positive and below lost_after")


class AnalysisConfig(_Section):
    interval: float = 10.0
    window: float = 300.0
    max_points: int = 300
    min_points: int = 5
    temperature_rate: float = 2.0
    humidity_rate: float = 10.0
    power_rate: float = 150.0
    temperature_drift: float = 0.25
    humidity_drift: float = 1.0
    power_drift: float = 15.0
    drift_min_span: float = 120.0
    drift_min_r2: float = 0.8
    zscore: float = 4.0
    baseline_min_std: float = 0.2
    clear_after: int = 3
    rules_disabled: list[str] = []

    def __post_init__(self) -> None:
        if self.interval < 0 or self.window <= 0 or self.max_points < 2 or self.min_points < 2:
            raise ValueError("interval must be >= 0; window, max_points and min_points positive (points >= 2)")
        if self.clear_after < 1:
            raise ValueError("clear_after must be at least 1")


class RetentionConfig(_Section):
    raw_days: float = 30.0
    rollup_days: float = 400.0
    interval: float = 60.0
    step_rows: int = 5_000

    def __post_init__(self) -> None:
        if self.raw_days < 0 or self.rollup_days < 0 or self.interval <= 0 or self.step_rows < 1:
            raise ValueError("raw_days and rollup_days must be >= 0 (0 keeps forever); interval, step_rows > 0")


class AuthConfig(_Section):
    enabled: bool = False
    agent_tokens: bool = True


class GrafanaConfig(_Section):
    url: str = "http://127.0.0.1:3000"
    dashboard_uid: str = "fog-console"


class DockerConfig(_Section):
    host: str = ""
    network: str = "fogd"


class SwarmConfig(_Section):
    """The ``swarm`` provisioner: one Swarm service per node (see docs/SCALE.md)."""

    network: str = "host"
    placement_fog: list[str] = msgspec.field(default_factory=lambda: ["node.labels.fogd.fog==true"])
    placement_cloud: list[str] = msgspec.field(default_factory=lambda: ["node.labels.fogd.cloud==true"])
    spread: str = ""
    cpus: float = 0.5
    memory_mb: int = 128
    restart_delay: float = 1.0
    start_timeout: float = 60.0
    create_parallelism: int = 32
    poll_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.memory_mb < 0 or self.restart_delay < 0:
            raise ValueError("cpus, memory_mb and restart_delay must be >= 0 (0: no limit)")
        if self.start_timeout <= 0 or self.create_parallelism < 1 or self.poll_interval <= 0:
            raise ValueError("start_timeout, create_parallelism and poll_interval must be positive")

    def placement(self, role: str) -> list[str]:
        return list(self.placement_fog if role == "fog" else self.placement_cloud)


class FleetConfig(_Section):
    """The declared fleet's reconciler and rolling upgrades (fogd apply / scale / upgrade)."""

    reconcile_interval: float = 5.0
    upgrade_batch: int = 2
    upgrade_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.reconcile_interval <= 0 or self.upgrade_batch < 1 or self.upgrade_timeout <= 0:
            raise ValueError("reconcile_interval, upgrade_batch and upgrade_timeout must be positive")


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


def _section(cls: type) -> Any:
    return msgspec.field(default_factory=cls)


class Config(_Section):
    """The whole configuration. ``plugin`` holds one free-form table per plugin name."""

    server: ServerConfig = _section(ServerConfig)
    store: StoreConfig = _section(StoreConfig)
    ingest: IngestConfig = _section(IngestConfig)
    alerts: AlertsConfig = _section(AlertsConfig)
    plugins: PluginsConfig = _section(PluginsConfig)
    nodes: NodesConfig = _section(NodesConfig)
    analysis: AnalysisConfig = _section(AnalysisConfig)
    docker: DockerConfig = _section(DockerConfig)
    swarm: SwarmConfig = _section(SwarmConfig)
    fleet: FleetConfig = _section(FleetConfig)
    grafana: GrafanaConfig = _section(GrafanaConfig)
    auth: AuthConfig = _section(AuthConfig)
    retention: RetentionConfig = _section(RetentionConfig)
    log: LogConfig = _section(LogConfig)
    plugin: dict[str, dict[str, Any]] = {}


# Environment variables for the keys operators change most: name -> (section, key).
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "FOGD_LISTEN": ("server", "listen"),
    "FOGD_DB": ("store", "path"),
    "FOGD_DATA_DIR": ("store", "data_dir"),
    "FOGD_LOG_LEVEL": ("log", "level"),
    "FOGD_SYNCHRONOUS": ("store", "synchronous"),
    "FOGD_PROVISIONER": ("nodes", "provisioner"),
    "FOGD_INSTANCE": ("nodes", "instance"),
    "FOGD_NODE_IMAGE": ("nodes", "image"),
    "FOGD_DOCKER_NETWORK": ("docker", "network"),
    "FOGD_GRAFANA_URL": ("grafana", "url"),
    "FOGD_AGENT_URL": ("nodes", "fogd_url"),
    "FOGD_ALLOW_REMOTE": ("server", "allow_remote"),
    "FOGD_AUTH": ("auth", "enabled"),
    "FOGD_TLS_CERT": ("server", "tls_cert"),
    "FOGD_TLS_KEY": ("server", "tls_key"),
}


def _env_value(raw: str) -> object:
    """Environment values are strings; ``true``/``false`` become booleans (for flags)."""
    lowered = raw.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return raw


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Read ``path`` (optional), apply ``FOGD_*`` overrides, and validate the result.

    Raises :class:`ConfigError` with one line such as
    ``fogd.toml: server.lisen: unknown field`` or
    ``fogd.toml: server.max_body_bytes: Expected `int`, got `str```.
    """
    env = os.environ if env is None else env
    source = str(path) if path else "defaults"
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
    used_env = []
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in env:
            table = data.setdefault(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: {section}: expected a table")
            table[key] = _env_value(env[var])
            used_env.append(var)
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as e:
        where, text = split_validation_error(e)
        key = where.removeprefix("$").lstrip(".") or "(top level)"
        origin = source
        for var, (section, k) in ENV_OVERRIDES.items():
            named = key.startswith(f"{section}.{k}") or (key == section and text.startswith(k))
            if var in used_env and named:
                origin = f"environment {var}"
        raise ConfigError(f"{origin}: {key}: {text}") from None
