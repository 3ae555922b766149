"""``POST /ingest``: one reading or a JSON array of readings."""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from fogd.context import FOGD
from fogd.errors import Forbidden, Invalid, Malformed, Overloaded, TooLarge, invalid_from
from fogd.http.middleware import PRINCIPAL
from fogd.http.responses import json
from fogd.model import INGEST_DECODER, Reading, stored_reading_view


async def post_ingest(request: web.Request) -> web.Response:
    """Store readings; reply with the stored reading (single) or counts (batch).

    A batch is all or nothing: one invalid reading rejects it whole, naming its index.
    """
    fogd = request.app[FOGD]
    metrics = fogd.metrics
    body = await request.read()
    start = time.perf_counter()
    try:
        data = INGEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        metrics.ingest_rejected.labels("validation").inc()
        raise invalid_from(exc) from None
    except msgspec.DecodeError as exc:
        metrics.ingest_rejected.labels("malformed").inc()
        raise Malformed(f"request body is not valid JSON: {exc}") from None
    single = isinstance(data, Reading)
    readings: list[Reading] = [data] if single else data  # type: ignore[list-item]
    if not readings:
        metrics.ingest_rejected.labels("validation").inc()
        raise Invalid("$: an empty batch; send one reading or an array of readings", field="$")
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.role == "agent":
        for i, r in enumerate(readings):
            if r.node != principal.node:
                raise Forbidden(f"$[{i}].node: token {principal.name!r} may only write node {principal.node!r}",
                                field=f"$[{i}].node", index=i)
    limit = fogd.config.ingest.max_batch
    if len(readings) > limit:
        metrics.ingest_rejected.labels("too_large").inc()
        raise TooLarge(f"batch of {len(readings)} readings exceeds ingest.max_batch ({limit})", limit=limit)
    try:
        flags = await fogd.ingestor.ingest(readings)
    except Invalid:
        metrics.ingest_rejected.labels("validation").inc()
        raise
    except Overloaded:
        metrics.ingest_rejected.labels("overloaded").inc()
        raise
    metrics.ingest_latency.observe(time.perf_counter() - start)
    stored = sum(flags)
    if single:
        r = readings[0]
        node = fogd.store.nodes[r.node]
        view = stored_reading_view(r, node.role)
        view["duplicate"] = not stored
        return json(view, status=201 if stored else 200)
    return json({"received": len(flags), "stored": stored, "duplicates": len(flags) - stored},
                status=201 if stored else 200)

