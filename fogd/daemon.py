"""The app factory and the daemon's lifecycle.

:func:`create_app` builds the aiohttp application for a configuration; the store,
the group-commit writer and the live cache are opened in ``cleanup_ctx`` (so they
are closed iff they were opened) and reachable as ``app[FOGD]``. :func:`serve` runs
it until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from typing import AsyncIterator

from aiohttp import web

from fogd import __version__
from fogd.analysis import Analyzer
from fogd.auth import TokenCache
from fogd.config import Config
from fogd.context import FOGD, Fogd
from fogd.errors import ConfigError
from fogd.fleet import Fleet
from fogd.http import add_routes
from fogd.http.middleware import errors_and_metrics
from fogd.ingest import Ingestor
from fogd.live import LiveCache
from fogd.metrics import Metrics
from fogd.model import now_ms
from fogd.nodes import NodeManager
from fogd.plugins.host import PluginHost, build_plugin_host
from fogd.store import Store
from fogd.store.writer import GroupCommitWriter

log = logging.getLogger("fogd")


def create_app(config: Config, plugins: PluginHost | None = None) -> web.Application:
    """Build fogd's application. Raises :class:`ConfigError` for plugin conflicts."""
    if plugins is None:
        plugins = build_plugin_host(config.plugins.disabled, config.plugins.entrypoints)
    plugins.collect_registries(config)
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[errors_and_metrics])
    add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        metrics = Metrics()
        plugins.on_error = lambda plugin, hook, exc: metrics.plugin_errors.labels(plugin, hook).inc()
        path = config.store.resolved_path()
        store = await Store.open(path, config.store.synchronous)
        live = LiveCache()
        live.load(await store.latest_per_node())

        def committed(groups: list, flags: list[list[bool]]) -> None:
            live.update(groups, flags)
            metrics.commit_rows.observe(sum(map(len, groups)))

        writer = GroupCommitWriter(store, config.ingest.commit_max_rows, committed,
                                   config.ingest.commit_delay_ms / 1000)
        writer.start()
        nodes = NodeManager(config, store, live, plugins.registries["provisioners"])
        fleet = Fleet(config, store, nodes, live,
                      lambda action, ok: metrics.fleet_actions.labels(action, "ok" if ok else "failed").inc())

        def rule_failed(rule: str, exc: BaseException) -> None:
            log.error("analysis rule %r raised: %s: %s", rule, type(exc).__name__, exc, exc_info=exc)
            metrics.rule_errors.labels(rule).inc()

        analyzer = Analyzer(config, store, plugins.registries["rules"], rule_failed)
        fogd = Fogd(config=config, plugins=plugins, metrics=metrics, store=store, writer=writer,
                    live=live, ingestor=Ingestor(config, plugins, store, writer, metrics), nodes=nodes,
                    fleet=fleet, analyzer=analyzer, tokens=TokenCache(store))
        app[FOGD] = fogd
        try:
            await nodes.start()
            await fleet.start()
        except BaseException:
            await nodes.stop()
            await writer.close()
            await store.close()
            raise
        await plugins.call_each_async("fogd_startup", app=app, config=config)
        loop_task = asyncio.create_task(analysis_loop(fogd), name="fogd-analysis-loop") \
            if config.analysis.interval > 0 else None
        rollups = asyncio.create_task(rollup_loop(store), name="fogd-rollups")
        purger = asyncio.create_task(retention_loop(store, config), name="fogd-retention")
        log.info("fogd %s: store %s (%d nodes), plugins: %s", __version__, path, len(store.nodes),
                 ", ".join(n for n, i in plugins.infos.items() if i.status == "loaded") or "none")
        try:
            yield
        finally:
            for task in (loop_task, rollups, purger):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await plugins.call_each_async("fogd_shutdown", app=app)
            await fleet.stop()
            await nodes.stop()
            await writer.close()
            await store.close()
            log.info("fogd stopped; every acknowledged reading is committed")

    app.cleanup_ctx.append(lifecycle)
    return app


async def analysis_loop(fogd: Fogd) -> None:
    """Analyze every fog node each ``analysis.interval`` seconds."""
    interval = fogd.config.analysis.interval
    while True:
        await asyncio.sleep(interval)
        try:
            result = await fogd.analyzer.analyze()
            fogd.metrics.analysis_runs.inc()
            fogd.metrics.analysis_latency.observe(result["elapsed_ms"] / 1000)
        except Exception:
            log.exception("background analysis failed; trying again in %.0f s", interval)


async def rollup_loop(store: Store, interval: float = 1.0) -> None:
    """Keep the per-minute roll-ups (long Grafana ranges) within about a second of the
    readings, in small steps that never hold the writer long."""
    while True:
        try:
            while await store.rollup_step():
                await asyncio.sleep(0)  # let ingest commits in between steps
        except Exception:
            log.exception("roll-up failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)


async def purge_old(store: Store, config: Config) -> int:
    """One retention pass: purge in steps until nothing old is left; returns rows purged."""
    r = config.retention
    now = now_ms()
    raw = now - int(r.raw_days * 86_400_000) if r.raw_days else None
    rollup = now - int(r.rollup_days * 86_400_000) if r.rollup_days else None
    total = 0
    if raw is None and rollup is None:
        return 0
    while True:
        n = await store.purge_step(raw, rollup, r.step_rows)
        total += n
        if n == 0:
            return total
        await asyncio.sleep(0)  # ingest commits go between steps


async def retention_loop(store: Store, config: Config) -> None:
    while True:
        try:
            purged = await purge_old(store, config)
            if purged:
                log.info("retention: purged %d old readings and roll-ups", purged)
        except Exception:
            log.exception("retention pass failed; trying again in %.0f s", config.retention.interval)
        await asyncio.sleep(config.retention.interval)


def check_listen(config: Config) -> None:
    """Refuse a non-loopback address unless ``server.allow_remote`` says so."""
    host = config.server.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not config.server.allow_remote and not config.auth.enabled:
        raise ConfigError(
            f"server.listen: {config.server.listen} is not a loopback address and auth is off; "
            "turn auth.enabled on, or set server.allow_remote = true if you really mean it")


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop's loop for ``auto`` when it is installed (and for ``uvloop``), else asyncio's."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("server.event_loop = \"uvloop\" but uvloop is not installed "
                                  "(pip install uvloop), or set it to \"auto\"") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve(config: Config) -> None:
    """Run fogd until SIGINT or SIGTERM; in-flight readings are committed before exit."""
    check_listen(config)
    app = create_app(config)
    ssl_context = None
    if config.server.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"server.tls_cert/tls_key: cannot load {config.server.tls_cert}: {exc}") from None
    loop = new_event_loop(config.server.event_loop)
    log.info("serving on %s://%s (%s event loop)", config.server.scheme, config.server.listen,
             type(loop).__module__.split(".")[0])
    web.run_app(app, loop=loop, host=config.server.host, port=config.server.port, print=None, ssl_context=ssl_context,
                access_log=logging.getLogger("fogd.access") if config.server.access_log else None)
