"""The one middleware: turns every failure into the JSON error body and counts requests.

It is a single middleware on purpose: the count it records is the status the
client really saw (after errors were rendered), and the hot ingest path pays for
one middleware layer, not two.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from aiohttp import web

from fogd.auth import AUDITED, OPEN, POLICY, Principal
from fogd.context import FOGD
from fogd.errors import FogdError, Forbidden, TooLarge, Unauthorized
from fogd.http.responses import ERROR_KIND, error, json
from fogd.model import now_ms

#: Where the middleware puts the caller (a Principal; absent when auth is off).
PRINCIPAL = web.RequestKey("fogd_principal", Principal)

log = logging.getLogger("fogd.http")

_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def errors_and_metrics(request: web.Request, handler):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fogd = request.app[FOGD]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    try:
        if fogd.config.auth.enabled and resource is not None:
            request[PRINCIPAL] = await authorize(request, fogd, route)
        response = await handler(request)
    except FogdError as exc:
        response = error(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[FOGD].config.server.max_body_bytes
        response = error(TooLarge(f"request body exceeds {limit} bytes (server.max_body_bytes)",
                                  limit=limit))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"error": _HTTP_KINDS.get(exc.status, "http_error"),
                "detail": f"{request.method} {request.path}: {exc.reason}"}
        if exc.status == 405:
            body["allowed"] = sorted(exc.allowed_methods)  # type: ignore[attr-defined]
        response = json(body, status=exc.status, headers={k: v for k, v in exc.headers.items()
                                                          if k.lower() == "allow"})
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = json({"error": "internal", "detail": "fogd hit an unexpected error; it is in fogd's log"},
                        status=500)
    if (request.method, route) in AUDITED:
        await record_audit(request, fogd, response)
    fogd.metrics.observe_request(route, request.method, response.status, time.perf_counter() - start)
    return response


async def authorize(request: web.Request, fogd: Any, route: str) -> Principal | None:
    """The caller's Principal, or 401 (no or bad token) / 403 (role not allowed)."""
    method = "GET" if request.method == "HEAD" else request.method
    allowed = POLICY.get((method, route))
    if allowed is OPEN:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this route needs a token: send Authorization: Bearer <token> (fogd token create)")
    principal = await fogd.tokens.lookup(token.strip())
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    request[PRINCIPAL] = principal  # known even if refused below: the audit log names who tried
    if allowed is None or principal.role not in allowed:
        needs = " or ".join(sorted(allowed or ())) or "a role no token has"
        raise Forbidden(f"role {principal.role} may not {request.method} {route} (needs {needs})",
                        role=principal.role)
    return principal


async def record_audit(request: web.Request, fogd: Any, response: web.StreamResponse) -> None:
    """Who did what, with which parameters, and how it ended."""
    principal = request.get(PRINCIPAL)
    params: dict[str, Any] = dict(request.query)
    params.update(request.match_info)
    try:
        body = await request.read()
        if body and len(body) <= 65536:
            decoded = msgspec.json.decode(body)
            params["body"] = decoded
    except (msgspec.DecodeError, web.HTTPException):
        params["body"] = "(not JSON)"
    outcome = "ok" if response.status < 400 else response.get(ERROR_KIND) or f"http_{response.status}"
    try:
        await fogd.store.add_audit((now_ms(), principal.name if principal else None,
                                    principal.role if principal else None, request.method, request.path,
                                    msgspec.json.encode(params).decode(), response.status, outcome))
    except Exception:  # the action is done; a lost audit line must be loud, not a failed request
        log.exception("could not write the audit log for %s %s", request.method, request.path)
