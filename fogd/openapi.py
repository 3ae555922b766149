"""fogd's HTTP API as an OpenAPI 3.1 document, generated from the msgspec types the
routes decode (``GET /openapi.json``). Property-based tests (schemathesis) fuzz fogd
against it."""

from __future__ import annotations

from typing import Any

import msgspec

from fogd import __version__
from fogd.fleet import FleetSpec, ScaleRequest, UpgradeRequest
from fogd.grafana import MetricsRequest, PayloadOptionsRequest, QueryRequest, TagValuesRequest, VariableRequest
from fogd.http.nodes import CleanupRequest, CreateRequest
from fogd.http.tokens import TokenRequest
from fogd.http.transfer import TransferRequest
from fogd.model import Reading


class Error(msgspec.Struct):
    """Every 4xx/5xx body."""

    error: str
    detail: str


def _q(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind, **extra}}


def _p(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


TIME = {"description": "ISO-8601 or epoch milliseconds"}

#: (method, path, summary, request body type or None, parameters)
OPERATIONS: list[tuple[str, str, str, Any, list[dict[str, Any]]]] = [
    ("post", "/ingest", "Store one reading or a batch", Reading | list[Reading], []),
    ("get", "/ingest", "WebSocket stream of ingest bodies, one JSON reply each (node agents; 426 without "
     "Upgrade: websocket)", None, []),
    ("post", "/create", "Start fog and cloud nodes", CreateRequest, []),
    ("post", "/cleanup", "Remove this fogd's nodes", CleanupRequest, []),
    ("get", "/fleet", "The declared fleet, its plan and last reconciliation", None, []),
    ("post", "/fleet", "Declare the fleet and make it so", FleetSpec, []),
    ("delete", "/fleet", "Withdraw the declaration (nodes keep running)", None, []),
    ("post", "/fleet/plan", "What a declaration would change (changes nothing)", FleetSpec, []),
    ("post", "/fleet/scale", "Change the declared counts", ScaleRequest, []),
    ("post", "/fleet/upgrade", "Roll a new agent image through the fleet", UpgradeRequest, []),
    ("get", "/nodes", "Node name to container id", None, []),
    ("get", "/nodes/status", "Every node with status and liveness", None, []),
    ("get", "/nodes/{node}/data", "A node's latest reading and history", None,
     [_p("node"), _q("limit", "integer"), _q("since", **TIME), _q("until", **TIME)]),
    ("post", "/analyze", "Run the analysis rules (or a backtest)", None,
     [_q("node"), _q("backtest"), _q("since", **TIME), _q("until", **TIME), _q("step", "integer")]),
    ("get", "/alerts", "Alerts", None, [_q("state", enum=["live", "open", "acknowledged", "cleared", "all"]),
                                        _q("node"), _q("severity", enum=["warning", "critical"]),
                                        _q("limit", "integer")]),
    ("post", "/alerts/{id}/ack", "Acknowledge an alert", None, [_p("id")]),
    ("post", "/transfer", "Copy a node's latest metrics into another", TransferRequest, []),
    ("get", "/api/live_data", "Latest reading per node", None, []),
    ("get", "/api/health_map", "Alert tier and liveness per node", None, []),
    ("get", "/api/analysis_summary", "Recent analysis events and alert counts", None,
     [_q("node"), _q("since", **TIME), _q("until", **TIME), _q("limit", "integer")]),
    ("get", "/api/system_overview", "Counters, uptime, nodes, alerts", None, []),
    ("get", "/dashboard/start", "Where the Fog Console is", None, []),
    ("get", "/healthz", "Health", None, []),
    ("get", "/openapi.json", "This document", None, []),
    ("get", "/metrics", "Prometheus exposition", None, []),
    ("get", "/tokens", "API tokens (no secrets)", None, []),
    ("post", "/tokens", "Make an API token", TokenRequest, []),
    ("post", "/tokens/{name}/revoke", "Revoke an API token", None, [_p("name")]),
    ("get", "/audit", "The audit log", None, [_q("since", **TIME), _q("actor"), _q("limit", "integer")]),
    ("get", "/", "Grafana datasource health", None, []),
    ("post", "/metrics", "Grafana: targets", MetricsRequest, []),
    ("post", "/metric-payload-options", "Grafana: payload options", PayloadOptionsRequest, []),
    ("post", "/query", "Grafana: query", QueryRequest, []),
    ("post", "/variable", "Grafana: variable values", VariableRequest, []),
    ("post", "/tag-keys", "Grafana: ad hoc filter keys", None, []),
    ("post", "/tag-values", "Grafana: ad hoc filter values", TagValuesRequest, []),
]


def document() -> dict[str, Any]:
    bodies = [t for _, _, _, t, _ in OPERATIONS if t is not None]
    schemas, components = msgspec.json.schema_components([*bodies, Error],
                                                         ref_template="#/components/schemas/{name}")
    body_schema = dict(zip(map(id, bodies), schemas))
    error_ref = schemas[-1]
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, params in OPERATIONS:
        op: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}",
            "parameters": params,
            "responses": {"200": {"description": "ok"}, "201": {"description": "created"},
                          "default": {"description": "error",
                                      "content": {"application/json": {"schema": error_ref}}}},
        }
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body_schema[id(body)]}}}
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": "fogd", "version": __version__}, "paths": paths,
            "components": {"schemas": components}}
