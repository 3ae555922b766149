"""``GET /metrics``: Prometheus exposition of fogd's own metrics.

(``POST /metrics`` on the same path is the Grafana datasource's target list.)
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fogd.context import FOGD


async def get_metrics(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    m = fogd.metrics
    counts = Counter((v["role"], v["status"], v["liveness"]) for v in fogd.nodes.status())
    m.nodes.clear()  # a combination that no longer exists must not linger at its last value
    for (role, status, liveness), n in counts.items():
        m.nodes.labels(role, status, liveness).set(n)
    m.fleet_desired.clear()
    if fogd.fleet.spec is not None:
        for role in ("fog", "cloud"):
            m.fleet_desired.labels(role).set(fogd.fleet.spec.role(role).count)
    m.write_queue.set(fogd.writer.queued)
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
