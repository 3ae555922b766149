"""HTTP routes. Every URL fogd serves is listed here, next to the module that serves it."""

from __future__ import annotations

from aiohttp import web

from fogd.http import dashboard, health, ingest, nodes, prometheus


def add_routes(app: web.Application) -> None:
    app.router.add_post("/ingest", ingest.post_ingest)
    app.router.add_post("/create", nodes.post_create)
    app.router.add_post("/cleanup", nodes.post_cleanup)
    app.router.add_get("/nodes", nodes.get_nodes)
    app.router.add_get("/nodes/status", nodes.get_nodes_status)
    app.router.add_get("/nodes/{node}/data", nodes.get_node_data)
    app.router.add_get("/api/live_data", dashboard.get_live_data)
    app.router.add_get("/healthz", health.get_healthz)
    app.router.add_get("/metrics", prometheus.get_metrics)
