"""HTTP routes. Every URL fogd serves is listed here, next to the module that serves it."""

from __future__ import annotations

from aiohttp import web

from fogd.http import (alerts, analysis, dashboard, fleet, grafana, health, ingest, nodes, prometheus, tokens,
                       transfer)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/ingest", ingest.post_ingest)
    app.router.add_get("/ingest", ingest.stream_ingest)  # WebSocket: how node agents send
    app[ingest.STREAMS] = ingest.Streams()
    app.on_shutdown.append(ingest.close_streams)
    app.router.add_post("/create", nodes.post_create)
    app.router.add_post("/cleanup", nodes.post_cleanup)
    app.router.add_get("/nodes", nodes.get_nodes)
    app.router.add_get("/nodes/status", nodes.get_nodes_status)
    app.router.add_get("/nodes/{node}/data", nodes.get_node_data)
    app.router.add_get("/fleet", fleet.get_fleet)
    app.router.add_post("/fleet", fleet.post_fleet)
    app.router.add_delete("/fleet", fleet.delete_fleet)
    app.router.add_post("/fleet/plan", fleet.post_plan)
    app.router.add_post("/fleet/scale", fleet.post_scale)
    app.router.add_post("/fleet/upgrade", fleet.post_upgrade)
    app.router.add_post("/analyze", analysis.post_analyze)
    app.router.add_get("/alerts", alerts.get_alerts)
    app.router.add_post("/alerts/{id}/ack", alerts.post_ack)
    app.router.add_post("/transfer", transfer.post_transfer)
    app.router.add_get("/tokens", tokens.get_tokens)
    app.router.add_post("/tokens", tokens.post_token)
    app.router.add_post("/tokens/{name}/revoke", tokens.post_revoke)
    app.router.add_get("/audit", tokens.get_audit)
    app.router.add_get("/api/live_data", dashboard.get_live_data)
    app.router.add_get("/api/analysis_summary", analysis.get_analysis_summary)
    app.router.add_get("/healthz", health.get_healthz)
    app.router.add_get("/openapi.json", health.get_openapi)
    app.router.add_get("/metrics", prometheus.get_metrics)  # POST /metrics is Grafana's, below
    app.router.add_get("/api/health_map", dashboard.get_health_map)
    app.router.add_get("/api/system_overview", dashboard.get_system_overview)
    app.router.add_get("/dashboard/start", dashboard.dashboard_start)
    app.router.add_post("/dashboard/start", dashboard.dashboard_start)
    # Grafana JSON datasource (simpod-json-datasource); its URL is fogd's base URL.
    app.router.add_get("/", grafana.get_root)
    app.router.add_post("/metrics", grafana.post_metrics)
    app.router.add_post("/metric-payload-options", grafana.post_payload_options)
    app.router.add_post("/query", grafana.post_query)
    app.router.add_post("/variable", grafana.post_variable)
    app.router.add_post("/tag-keys", grafana.post_tag_keys)
    app.router.add_post("/tag-values", grafana.post_tag_values)
