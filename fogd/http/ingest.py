"""``/ingest``: readings in, by ``POST`` (one reading or a JSON array of readings) or
streamed over a WebSocket (``GET /ingest`` with an upgrade), which is how node agents
send: one connection per agent, one message per batch, one reply per message.

Both take the same bodies, check them the same way (:func:`ingest_body`) and reply
only after the readings are committed, so an acknowledged reading is never lost and a
batch whose reply went missing can be sent again (fogd de-duplicates on node and seq).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from fogd.auth import Principal
from fogd.context import FOGD, Fogd
from fogd.errors import (FogdError, Forbidden, Invalid, Malformed, Overloaded, TooLarge, Unauthorized,
                         UpgradeRequired, invalid_from)
from fogd.http.middleware import PRINCIPAL
from fogd.http.responses import json
from fogd.model import INGEST_DECODER, Reading, stored_reading_view

log = logging.getLogger("fogd.http")
_encode = msgspec.json.encode

#: Seconds between fogd's pings on a stream: an agent whose host vanished without
#: closing its connection is dropped within 1.5 times this.
HEARTBEAT_S = 30.0


@dataclass
class Streams:
    """The open ingest streams, closed (1001, going away) when fogd shuts down."""

    open: set[web.WebSocketResponse] = field(default_factory=set)
    stopping: bool = False


STREAMS = web.AppKey("fogd_ingest_streams", Streams)


async def post_ingest(request: web.Request) -> web.Response:
    """Store readings; reply with the stored reading (single) or counts (batch).

    A batch is all or nothing: one invalid reading rejects it whole, naming its index.
    """
    fogd = request.app[FOGD]
    readings, single = decode(fogd, await request.read(), request.get(PRINCIPAL))
    stored = sum(await store(fogd, readings))
    if single:
        r = readings[0]
        view = stored_reading_view(r, fogd.store.nodes[r.node].role)
        view["duplicate"] = not stored
        return json(view, status=201 if stored else 200)
    return json(counts(len(readings), stored), status=201 if stored else 200)


async def stream_ingest(request: web.Request) -> web.WebSocketResponse:
    """The agents' stream: each message (text or binary) is a ``POST /ingest`` body;
    each gets one JSON reply, in order, once committed: ``{"status": 201, "received":
    n, "stored": s, "duplicates": d}`` (200 when all were duplicates), or the error body
    ``POST`` would have sent plus its ``status``. The stream stays open after an error.

    A message of one reading (an agent's live reading) may wait up to
    ``ingest.commit_delay_ms`` to share its commit with other agents' readings; a batch
    (an agent delivering its backlog, one batch after another) never waits.

    An agent token is checked again (against its cache) for every message, so a
    revoked token ends its streams as soon as it would fail a ``POST``.
    """
    fogd = request.app[FOGD]
    ws = web.WebSocketResponse(max_msg_size=fogd.config.server.max_body_bytes, heartbeat=HEARTBEAT_S)
    if not ws.can_prepare(request).ok:
        raise UpgradeRequired("GET /ingest is the agents' WebSocket stream: connect with Upgrade: websocket, "
                              "or POST readings to /ingest")
    await ws.prepare(request)
    principal = request.get(PRINCIPAL)
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()
    streams = request.app[STREAMS]
    streams.open.add(ws)
    fogd.metrics.ingest_streams.inc()
    if streams.stopping:  # opened while fogd began to stop: close_streams has already run
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fogd is stopping")
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break  # ERROR; CLOSE ends the iteration by itself
            try:
                if principal is not None and await fogd.tokens.lookup(token) is None:
                    raise Unauthorized("unknown or revoked token")
                readings, _ = decode(fogd, msg.data, principal)
                stored = sum(await store(fogd, readings, linger=len(readings) == 1))  # a backlog never waits
                reply: dict[str, Any] = {"status": 201 if stored else 200, **counts(len(readings), stored)}
            except FogdError as exc:
                reply = {"status": exc.status, **exc.body()}
            except Exception:
                log.exception("unhandled error in an ingest stream message")
                reply = {"status": 500, "error": "internal",
                         "detail": "fogd hit an unexpected error; it is in fogd's log"}
            try:
                await ws.send_bytes(_encode(reply))
            except ConnectionResetError:
                break  # the agent went away (stopped, killed): it sends again if it can
            if reply["status"] == 401:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unknown or revoked token")
    finally:
        streams.open.discard(ws)
        fogd.metrics.ingest_streams.dec()
    return ws


async def close_streams(app: web.Application) -> None:
    """On shutdown: end every stream, all at once (each agent reconnects, or posts, once
    fogd is back); a message being committed gets no reply and is simply sent again."""
    streams = app[STREAMS]
    streams.stopping = True
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"fogd is stopping")
                           for ws in list(streams.open)), return_exceptions=True)


def decode(fogd: Fogd, body: bytes | str, principal: Principal | None) -> tuple[list[Reading], bool]:
    """The readings of one body, and whether it held a single reading (not an array)."""
    metrics = fogd.metrics
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
    if principal is not None and principal.role == "agent":
        for i, r in enumerate(readings):
            if r.node != principal.node:
                raise Forbidden(f"$[{i}].node: token {principal.name!r} may only write node {principal.node!r}",
                                field=f"$[{i}].node", index=i)
    limit = fogd.config.ingest.max_batch
    if len(readings) > limit:
        metrics.ingest_rejected.labels("too_large").inc()
        raise TooLarge(f"batch of {len(readings)} readings exceeds ingest.max_batch ({limit})", limit=limit)
    return readings, single


async def store(fogd: Fogd, readings: list[Reading], linger: bool = False) -> list[bool]:
    """Hand decoded readings to the ingest pipeline; their stored flags once committed
    (``linger``: streamed, the commit may wait ``ingest.commit_delay_ms`` for company)."""
    metrics = fogd.metrics
    start = time.perf_counter()
    try:
        flags = await fogd.ingestor.ingest(readings, linger)
    except Invalid:
        metrics.ingest_rejected.labels("validation").inc()
        raise
    except Overloaded:
        metrics.ingest_rejected.labels("overloaded").inc()
        raise
    metrics.ingest_latency.observe(time.perf_counter() - start)
    return flags


def counts(received: int, stored: int) -> dict[str, int]:
    return {"received": received, "stored": stored, "duplicates": received - stored}
