"""``POST /transfer``: clone the source node's latest metrics into the destination."""

from __future__ import annotations

import msgspec
from aiohttp import web

from fogd.context import FOGD
from fogd.errors import FogdError, Invalid, NotFound
from fogd.http.nodes import decode_body
from fogd.http.responses import json
from fogd.live import row_view
from fogd.model import NodeName, Reading, now_ms, stored_reading_view


class TransferRequest(msgspec.Struct, forbid_unknown_fields=True):
    source: NodeName
    destination: NodeName


class NoData(FogdError):
    status = 409
    kind = "no_data"


_decoder = msgspec.json.Decoder(TransferRequest)


async def post_transfer(request: web.Request) -> web.Response:
    """Store a new reading on ``destination`` with ``source``'s latest metrics
    (``source: "transfer:<source>"``); reply with what was copied and what was stored."""
    fogd = request.app[FOGD]
    req = await decode_body(request, _decoder)
    if req.source == req.destination:
        raise Invalid("source and destination are the same node", field="destination")
    nodes = fogd.store.nodes
    for field in ("source", "destination"):
        name = getattr(req, field)
        if name not in nodes:
            raise NotFound(f"no node named {name!r}", node=name, field=field)
    src, dst = nodes[req.source], nodes[req.destination]
    latest = fogd.live.get(src.id)
    if latest is None:
        raise NoData(f"node {req.source!r} has no readings to transfer", node=req.source)
    copied = row_view(src, latest)
    reading = Reading(node=dst.name, temperature=copied["temperature"], humidity=copied["humidity"],
                      power=copied["power"], extra=dict(copied["extra"]), source=f"transfer:{src.name}")
    await fogd.ingestor.ingest([reading])
    stored = stored_reading_view(reading, dst.role)
    await fogd.store.add_event((now_ms(), dst.id, "transfer", None, None,
                                f"copied {src.name}'s latest metrics ({copied['timestamp']}) into {dst.name}",
                                msgspec.json.encode({"source": src.name, "copied": copied}).decode()))
    return json({"source": src.name, "destination": dst.name, "copied": copied, "stored": stored}, status=201)
