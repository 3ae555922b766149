"""Every hook fogd calls. Plugins implement them with ``@fogd.hookimpl``.

Hooks are called with keyword arguments; an implementation may accept any subset of
the arguments named here, so specs can grow without breaking plugins. Hooks whose
name starts with ``fogd_register_`` return a list of named objects; fogd collects
them at start-up and refuses to start when two plugins register the same name.

Wrappers (``wrapper=True``) are not supported: fogd calls each implementation on its
own so that one plugin raising is reported by name and the others still run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fogd.plugins.markers import hookspec

if TYPE_CHECKING:
    from aiohttp import web

    from fogd.config import Config
    from fogd.model import Reading


@hookspec
def fogd_normalize_readings(readings: list[Reading], config: Config) -> None:
    """Adjust a batch of validated readings in place before they are stored.

    Called once per ``/ingest`` request with all of its readings, so the cost of
    plugin dispatch is paid per request, not per reading. ``timestamp`` is always
    set. The built-in ``default_normalize`` (``tryfirst``) fills ``comfortIndex`` and
    ``alertStatus``; plain implementations run after it and may overwrite any field
    or add numeric metrics to ``extra``. An implementation that raises is logged with
    its plugin name and counted in ``fogd_plugin_errors_total``; the batch is still
    stored with what the other normalizers produced.

    :param readings: the batch, in request order; mutate the objects, return nothing.
    :param config: the daemon's configuration (``config.plugin[<name>]`` for yours).
    """


@hookspec
def fogd_register_provisioners(config: Config) -> list[Any]:
    """Return provisioners: objects with a unique ``name`` that create and remove nodes.

    The node lifecycle (``/create``, ``/cleanup``) picks one by name from
    ``fogd.toml``; the built-in ones are ``process``, ``docker`` and ``swarm``.
    """


@hookspec
def fogd_register_rules(config: Config) -> list[Any]:
    """Return analysis rules: objects with a unique ``name`` that turn a fog node's
    recent history into findings (``/analyze`` and the analysis loop)."""


@hookspec
def fogd_register_targets(config: Config) -> list[Any]:
    """Return Grafana targets: objects with a unique ``name`` that answer the JSON
    datasource's ``/query`` for that target."""


@hookspec
def fogd_startup(app: web.Application, config: Config) -> Any:
    """Called once the store is open, before fogd serves requests. May return an
    awaitable, which fogd awaits. Raising here is logged; start-up continues."""


@hookspec
def fogd_shutdown(app: web.Application) -> Any:
    """Called when fogd stops, before the store closes. May return an awaitable."""
