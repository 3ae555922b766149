"""HTTP routes. Every URL fogd serves is listed here, next to the module that serves it."""

from __future__ import annotations

from aiohttp import web

from fogd.http import alerts, analysis, dashboard, health, ingest, nodes, prometheus, transfer


def add_routes(app: web.Application) -> None:
    app.router.add_post("/ingest", ingest.post_ingest)
    app.router.add_post("/create", nodes.post_create)
    app.router.add_post("/cleanup", nodes.post_cleanup)
    app.router.add_get("/nodes", nodes.get_nodes)
    app.router.add_get("/nodes/status", nodes.get_nodes_status)
    app.router.add_get("/nodes/{node}/data", nodes.get_node_data)
    app.router.add_post("/analyze", analysis.post_analyze)
    app.router.add_get("/alerts", alerts.get_alerts)
    app.router.add_post("/alerts/{id}/ack", alerts.post_ack)
    app.router.add_post("/transfer", transfer.post_transfer)
    app.router.add_get("/api/live_data", dashboard.get_live_data)
    app.router.add_get("/api/analysis_summary", analysis.get_analysis_summary)
    app.router.add_get("/healthz", health.get_healthz)
    app.router.add_get("/metrics", prometheus.get_metrics)
