"""The plugin host: one pluggy manager per daemon, built-ins first, then entry points.

fogd's own behaviour is a set of plugins registered exactly like third-party ones
(modules named ``default_*`` listed in :data:`BUILTIN_PLUGINS`). Third-party plugins
come from the ``fogd`` entry-point group. Any of them can be disabled by name
(``plugins.disabled`` in ``fogd.toml``).

Hooks are called through :meth:`PluginHost.call_each`, one implementation at a
time: an implementation that raises is logged with its plugin name and counted,
and the others still run, so a broken plugin cannot take the daemon down.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

import pluggy

from fogd.errors import ConfigError
from fogd.plugins import hookspecs

log = logging.getLogger("fogd.plugins")

#: Built-in plugins, registered under their short module name.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "fogd.plugins.default_normalize",
    "fogd.plugins.default_rules",
    "fogd.plugins.default_targets",
    "fogd.plugins.default_docker",
    "fogd.plugins.default_swarm",
    "fogd.plugins.default_process",
)

#: ``fogd_register_<kind>`` hooks whose results are collected into registries.
REGISTRIES = ("provisioners", "rules", "targets")

ErrorCallback = Callable[[str, str, BaseException], None]


@dataclass
class PluginInfo:
    """What ``fogd plugins`` shows for one plugin."""

    name: str
    origin: str  # "builtin" or "<distribution> <version>"
    hooks: list[str]
    status: str = "loaded"  # loaded | disabled | failed
    error: str = ""


@dataclass
class PluginHost:
    """The daemon's pluggy manager plus what fogd needs around it."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    registries: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_error: ErrorCallback | None = None

    def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook`` in pluggy's order; skip those that raise.

        Returns ``(plugin_name, result)`` for each implementation that returned.
        """
        results = []
        caller = getattr(self.pm.hook, hook)
        # pluggy runs the implementation list back to front (tryfirst ones last in it).
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                self._failed(impl.plugin_name, hook, exc)
                continue
            results.append((impl.plugin_name, result))
        return results

    async def call_each_async(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like :meth:`call_each`, awaiting implementations that return an awaitable."""
        done = []
        for name, result in self.call_each(hook, **kwargs):
            if inspect.isawaitable(result):
                try:
                    result = await result
                except Exception as exc:
                    self._failed(name, hook, exc)
                    continue
            done.append((name, result))
        return done

    def _failed(self, plugin: str, hook: str, exc: BaseException) -> None:
        log.error("plugin %r raised in %s: %s: %s", plugin, hook, type(exc).__name__, exc,
                  exc_info=exc)
        if self.on_error is not None:
            self.on_error(plugin, hook, exc)

    def collect_registries(self, config: Any) -> None:
        """Gather every ``fogd_register_*`` result by name; duplicates stop start-up."""
        for kind in REGISTRIES:
            found: dict[str, Any] = {}
            owners: dict[str, str] = {}
            for plugin, items in self.call_each(f"fogd_register_{kind}", config=config):
                for item in items or ():
                    name = getattr(item, "name", None)
                    if not isinstance(name, str) or not name:
                        raise ConfigError(f"plugin {plugin!r}: fogd_register_{kind} returned an object without a name: {item!r}")
                    if name in found:
                        raise ConfigError(
                            f"plugins {owners[name]!r} and {plugin!r} both register {kind[:-1]} {name!r}")
                    found[name], owners[name] = item, plugin
            self.registries[kind] = found


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())


def build_plugin_host(disabled: list[str] | tuple[str, ...] = (), entrypoints: bool = True,
                      extra: tuple[object, ...] | list[object] = ()) -> PluginHost:
    """A fresh plugin host (never a module global, so tests build their own).

    ``extra`` plugin objects (tests, embedding applications) are registered after the
    built-ins, under their class name.

    Raises :class:`ConfigError` when a plugin implements a hook that does not exist
    (usually a typo) or uses a hook wrapper.
    """
    pm = pluggy.PluginManager("fogd")
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    for name in disabled:
        pm.set_blocked(name)

    candidates: list[tuple[str, str, Callable[[], object]]] = [
        (mod.rsplit(".", 1)[1], "builtin", lambda mod=mod: importlib.import_module(mod))
        for mod in BUILTIN_PLUGINS
    ]
    for obj in extra:
        candidates.append((type(obj).__name__, "extra", lambda obj=obj: obj))
    if entrypoints:
        for ep in entry_points(group="fogd"):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "entry point"
            candidates.append((ep.name, dist, ep.load))

    for name, origin, load in candidates:
        if pm.is_blocked(name):
            host.infos[name] = PluginInfo(name, origin, [], status="disabled")
            continue
        if pm.has_plugin(name):
            log.warning("plugin %r from %s skipped: a plugin of that name is already loaded", name, origin)
            continue
        try:
            plugin = load()
            pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy: already registered under another name
            log.warning("plugin %r from %s skipped: %s", name, origin, exc)
            continue
        except Exception as exc:
            log.error("plugin %r from %s failed to load: %s: %s", name, origin, type(exc).__name__, exc)
            host.infos[name] = PluginInfo(name, origin, [], status="failed", error=f"{type(exc).__name__}: {exc}")
            continue
        host.infos[name] = PluginInfo(name, origin, _hooks_of(pm, plugin))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
    _refuse_wrappers(pm)
    unknown = set(disabled) - set(host.infos)
    for name in sorted(unknown):
        log.warning("plugins.disabled names %r, but no plugin of that name exists", name)
    return host


def _refuse_wrappers(pm: pluggy.PluginManager) -> None:
    for caller in vars(pm.hook).values():
        for impl in caller.get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                raise ConfigError(f"plugin {impl.plugin_name!r}: hook wrappers are not supported ({caller.name})")
