"""The Grafana JSON datasource routes (``simpod-json-datasource``), at fogd's base URL:
``GET /``, ``POST /metrics``, ``POST /metric-payload-options``, ``POST /query``,
``POST /variable``, ``POST /tag-keys``, ``POST /tag-values``.

(``GET /metrics`` on the same path is Prometheus; see ``prometheus.py``.) Requests are
decoded leniently — Grafana sends keys nobody documents — but a body that is not JSON
at all is still a 400 with the canonical error body.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from fogd import __version__
from fogd.context import FOGD
from fogd.errors import Invalid, Malformed
from fogd.grafana import (MetricsRequest, PayloadOptionsRequest, QueryRequest, TagValuesRequest, VariableRequest,
                          coerce_payload, make_query)
from fogd.http.responses import json
from fogd.model import ALERT_LEVELS

log = logging.getLogger("fogd.grafana")

TAG_KEYS = ("role", "node", "alertStatus")


async def _decode(request: web.Request, typ: type) -> Any:
    body = await request.read()
    if not body.strip():
        return typ()
    try:
        return msgspec.json.decode(body, type=typ)
    except msgspec.ValidationError as exc:
        raise Invalid(f"not a Grafana JSON datasource request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise Malformed(f"request body is not valid JSON: {exc}") from None


async def get_root(request: web.Request) -> web.Response:
    """Grafana's "Test connection": any 200 means healthy."""
    return json({"status": "ok", "service": "fogd", "version": __version__})


async def post_metrics(request: web.Request) -> web.Response:
    """The target list, with the payload editors each target offers."""
    await _decode(request, MetricsRequest)
    targets = request.app[FOGD].plugins.registries["targets"]
    return json([{"value": name, "label": getattr(t, "label", name), "payloads": list(getattr(t, "payloads", []))}
                 for name, t in sorted(targets.items())])


async def post_payload_options(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    req = await _decode(request, PayloadOptionsRequest)
    target = fogd.plugins.registries["targets"].get(req.metric)
    options = getattr(target, "payload_options", None)
    if options is None:
        return json([])
    return json(options(req.name, coerce_payload(req.payload), fogd))


async def post_query(request: web.Request) -> web.Response:
    """Every (not hidden) target's frames, in order, each carrying its ``refId``."""
    fogd = request.app[FOGD]
    req = await _decode(request, QueryRequest)
    targets = fogd.plugins.registries["targets"]
    frames: list[Any] = []
    for t in req.targets:
        if t.hide or not t.target:
            continue
        target = targets.get(t.target)
        if target is None:
            raise Invalid(f"unknown target {t.target!r}; POST /metrics lists them",
                          field="targets", target=t.target, refId=t.refId)
        try:
            frames.extend(await target.query(make_query(req, t), fogd))
        except Exception as exc:  # a target plugin's bug: named, and the panel shows why
            log.exception("target %r failed", t.target)
            fogd.metrics.plugin_errors.labels(t.target, "target.query").inc()
            raise Invalid(f"target {t.target!r} failed: {type(exc).__name__}: {exc}",
                          target=t.target, refId=t.refId) from None
    return json(frames)


async def post_variable(request: web.Request) -> web.Response:
    """Variable values: ``node`` (optionally ``{"target": "node", "role": "fog"}``) or ``role``."""
    fogd = request.app[FOGD]
    req = await _decode(request, VariableRequest)
    payload = coerce_payload(req.payload)
    kind = payload.get("target", "node")
    if kind == "role":
        values = sorted({n.role for n in fogd.store.nodes.values()} | {"fog", "cloud"})
    elif kind == "alertStatus":
        values = list(ALERT_LEVELS)
    elif kind == "node":
        role = payload.get("role")
        values = sorted(n.name for n in fogd.store.nodes.values() if not role or n.role == role)
    else:
        raise Invalid(f"variable target {kind!r}: expected node, role or alertStatus", field="payload.target")
    # __text/__value is what the plugin reads; text/value is what its OpenAPI spec requires.
    return json([{"__text": v, "__value": v, "text": v, "value": v} for v in values])


async def post_tag_keys(request: web.Request) -> web.Response:
    return json([{"type": "string", "text": k} for k in TAG_KEYS])


async def post_tag_values(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    req = await _decode(request, TagValuesRequest)
    if req.key == "role":
        values = sorted({n.role for n in fogd.store.nodes.values()} | {"fog", "cloud"})
    elif req.key == "node":
        values = sorted(fogd.store.nodes)
    elif req.key == "alertStatus":
        values = list(ALERT_LEVELS)
    else:
        values = []
    return json([{"text": v} for v in values])
