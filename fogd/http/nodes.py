"""Node routes: ``POST /create``, ``POST /cleanup``, ``GET /nodes``, ``GET /nodes/status``
and ``GET /nodes/{node}/data`` (a node's latest reading and its history)."""

from __future__ import annotations

from typing import Annotated, Any, Awaitable, Callable

import msgspec
from aiohttp import web

from fogd.context import FOGD
from fogd.errors import Invalid, Malformed, NotFound, invalid_from
from fogd.fleet import FleetDeclared
from fogd.http.responses import json, query_int
from fogd.live import row_view
from fogd.model import parse_time
from fogd.nodes import Progress

MAX_HISTORY = 10_000


def time_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise Invalid(f"query parameter {name!r}: expected ISO-8601 (2026-12-04T16:00:00Z) "
                      f"or epoch milliseconds, got {raw!r}", field=name) from None


async def get_node_data(request: web.Request) -> web.Response:
    """``limit`` (default 100, at most 10,000), ``since`` and ``until`` (inclusive);
    history is newest first."""
    fogd = request.app[FOGD]
    name = request.match_info["node"]
    node = fogd.store.nodes.get(name)
    if node is None:
        raise NotFound(f"no node named {name!r}", node=name)
    limit = query_int(request, "limit", 100, 1, MAX_HISTORY)
    since, until = time_param(request, "since"), time_param(request, "until")
    if since is not None and until is not None and since > until:
        raise Invalid("query parameters 'since' and 'until': since is after until", field="since")
    latest = fogd.live.get(node.id)
    rows = await fogd.store.history(node.id, since, until, limit)
    return json({
        "node": node.name,
        "role": node.role,
        "provisioner": node.provisioner,
        "latest": row_view(node, latest) if latest is not None else None,
        "count": len(rows),
        "history": [row_view(node, row) for row in rows],
    })


class CreateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /create``: how many fog and cloud nodes to add."""

    fog: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    cloud: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0


class CleanupRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /cleanup``: remove this instance's nodes; ``keep_history`` keeps their readings."""

    keep_history: bool = False


_create_decoder = msgspec.json.Decoder(CreateRequest)
_cleanup_decoder = msgspec.json.Decoder(CleanupRequest)


async def decode_body(request: web.Request, decoder: msgspec.json.Decoder, empty_ok: bool = False):  # type: ignore[no-untyped-def]
    body = await request.read()
    if not body.strip() and empty_ok:
        body = b"{}"
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_from(exc) from None
    except msgspec.DecodeError as exc:
        raise Malformed(f"request body is not valid JSON: {exc}") from None


async def post_create(request: web.Request) -> web.StreamResponse:
    """Create nodes. With ``Accept: application/x-ndjson`` each node is reported as one
    JSON line the moment it starts (or fails), then the summary; otherwise one JSON reply."""
    fogd = request.app[FOGD]
    req = await decode_body(request, _create_decoder)
    if fogd.fleet.spec is not None:
        raise FleetDeclared("a fleet is declared (fogd apply): the reconciler would remove nodes added by "
                            "/create; change the declaration with `fogd scale` or `fogd apply` instead",
                            revision=fogd.fleet.revision)
    return await with_progress(request, lambda progress: fogd.nodes.create(req.fog, req.cloud, progress),
                               _create_status)


async def with_progress(request: web.Request, run: Callable[[Progress | None], Awaitable[dict[str, Any]]],
                        status: Callable[[dict[str, Any]], int] = lambda result: 200) -> web.StreamResponse:
    """Run a long node operation. With ``Accept: application/x-ndjson``: one JSON line per
    node as it goes (``{"event": "node", ...}``), then ``{"event": "done", ...}`` with the
    result; otherwise the result as one JSON reply with ``status(result)``."""
    if "application/x-ndjson" not in request.headers.get("Accept", ""):
        result = await run(None)
        return json(result, status=status(result))
    # The stream is prepared when the first node reports, so a request rejected before
    # any node starts (validation, image missing, backend down) still gets a JSON error.
    stream = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})

    async def progress(item: dict) -> None:
        if not stream.prepared:
            await stream.prepare(request)
        await stream.write(msgspec.json.encode({"event": "node", **item}) + b"\n")

    result = await run(progress)
    if not stream.prepared:
        await stream.prepare(request)
    await stream.write(msgspec.json.encode({"event": "done", **result}) + b"\n")
    await stream.write_eof()
    return stream


def _create_status(result: dict) -> int:
    if result["failed"] and not result["created"]:
        return 502
    return 201


async def post_cleanup(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    req = await decode_body(request, _cleanup_decoder, empty_ok=True)
    withdrawn = await fogd.fleet.withdraw()  # first: the reconciler must not bring them back
    return json({**await fogd.nodes.cleanup(keep_history=req.keep_history), "fleet_withdrawn": withdrawn})


async def get_nodes(request: web.Request) -> web.Response:
    """Node name -> container (or process) id, for this fogd's nodes."""
    fogd = request.app[FOGD]
    return json({v["name"]: v["container_id"] or None for v in fogd.nodes.status()})


async def get_nodes_status(request: web.Request) -> web.Response:
    """Every node with role, status, IP, image, id, created, last reading and liveness."""
    return json(request.app[FOGD].nodes.status())
