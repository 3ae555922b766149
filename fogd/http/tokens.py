"""``GET /tokens``, ``POST /tokens``, ``POST /tokens/{name}/revoke`` and ``GET /audit``
(operators; ``fogd token …`` does the same on the database file directly)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from fogd.auth import ROLES, digest, new_token
from fogd.context import FOGD
from fogd.errors import Invalid, NotFound
from fogd.http.nodes import decode_body, time_param
from fogd.http.responses import json, query_int
from fogd.model import NodeName, iso_ms, now_ms


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")]
    role: str
    node: NodeName | None = None


_decoder = msgspec.json.Decoder(TokenRequest)


def check_token_request(name: str, role: str, node: str | None) -> None:
    if role not in ROLES:
        raise Invalid(f"role: expected one of {', '.join(ROLES)}, got {role!r}", field="role")
    if role == "agent" and not node:
        raise Invalid("node: an agent token is for one node; name it", field="node")
    if role != "agent" and node:
        raise Invalid("node: only agent tokens are tied to a node", field="node")


async def post_token(request: web.Request) -> web.Response:
    """Make a token; it is in this reply and nowhere else (fogd keeps its hash)."""
    fogd = request.app[FOGD]
    req = await decode_body(request, _decoder)
    check_token_request(req.name, req.role, req.node)
    token = new_token()
    await fogd.store.save_token(req.name, req.role, req.node, digest(token), now_ms())
    return json({"name": req.name, "role": req.role, "node": req.node, "token": token}, status=201)


async def get_tokens(request: web.Request) -> web.Response:
    rows = await request.app[FOGD].store.tokens()
    return json([{"name": n, "role": r, "node": node, "created": iso_ms(c), "revoked": iso_ms(rv) if rv else None}
                 for n, r, node, c, rv in rows])


async def post_revoke(request: web.Request) -> web.Response:
    fogd = request.app[FOGD]
    name = request.match_info["name"]
    if not await fogd.store.revoke_token(name, now_ms()):
        raise NotFound(f"no live token named {name!r}", name=name)
    fogd.tokens.forget()
    return json({"name": name, "revoked": True})


async def get_audit(request: web.Request) -> web.Response:
    """Mutating requests, newest first: ``since``, ``actor``, ``limit``."""
    fogd = request.app[FOGD]
    rows = await fogd.store.audit(time_param(request, "since"), request.query.get("actor"),
                                  query_int(request, "limit", 100, 1, 10_000))
    return json([{"id": i, "timestamp": iso_ms(ts), "actor": actor, "role": role, "method": method, "path": path,
                  "params": msgspec.json.decode(params), "status": status, "outcome": outcome}
                 for i, ts, actor, role, method, path, params, status, outcome in rows])
