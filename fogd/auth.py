"""Roles, tokens, who may call what, and the audit log.

Tokens are random strings shown once; fogd keeps only their SHA-256 (they are long
and random, so a fast hash is enough). Roles follow the personas: ``operator``
(everything), ``analyst`` (analyze, read), ``viewer`` (read), ``agent`` (ingest for
its own node only). :data:`POLICY` says, for every route, which roles may call it;
a test fails when a route is missing from it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

ROLES = ("operator", "analyst", "viewer", "agent")
READ = frozenset({"operator", "analyst", "viewer"})
OPEN = frozenset({"*"})  # no token needed (health checks)

#: (method, route) -> roles allowed. Routes are aiohttp canonical paths.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): OPEN,
    ("GET", "/healthz"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("POST", "/ingest"): frozenset({"operator", "agent"}),
    ("GET", "/ingest"): frozenset({"operator", "agent"}),  # the agents' WebSocket stream
    ("POST", "/create"): frozenset({"operator"}),
    ("POST", "/cleanup"): frozenset({"operator"}),
    ("POST", "/fleet"): frozenset({"operator"}),
    ("DELETE", "/fleet"): frozenset({"operator"}),
    ("POST", "/fleet/scale"): frozenset({"operator"}),
    ("POST", "/fleet/upgrade"): frozenset({"operator"}),
    ("POST", "/fleet/plan"): READ,
    ("GET", "/fleet"): READ,
    ("POST", "/transfer"): frozenset({"operator"}),
    ("POST", "/alerts/{id}/ack"): frozenset({"operator"}),
    ("POST", "/analyze"): frozenset({"operator", "analyst"}),
    ("GET", "/audit"): frozenset({"operator"}),
    ("GET", "/tokens"): frozenset({"operator"}),
    ("POST", "/tokens"): frozenset({"operator"}),
    ("POST", "/tokens/{name}/revoke"): frozenset({"operator"}),
    ("GET", "/nodes"): READ,
    ("GET", "/nodes/status"): READ,
    ("GET", "/nodes/{node}/data"): READ,
    ("GET", "/alerts"): READ,
    ("GET", "/api/live_data"): READ,
    ("GET", "/api/health_map"): READ,
    ("GET", "/api/analysis_summary"): READ,
    ("GET", "/api/system_overview"): READ,
    ("GET", "/dashboard/start"): READ,
    ("POST", "/dashboard/start"): READ,
    ("GET", "/metrics"): READ,
    # Grafana's datasource: read-only, though POST
    ("POST", "/metrics"): READ,
    ("POST", "/metric-payload-options"): READ,
    ("POST", "/query"): READ,
    ("POST", "/variable"): READ,
    ("POST", "/tag-keys"): READ,
    ("POST", "/tag-values"): READ,
}

#: Mutating routes recorded in the audit log (ingest is not: it is the data itself).
AUDITED = frozenset({("POST", "/create"), ("POST", "/cleanup"), ("POST", "/transfer"),
                     ("POST", "/fleet"), ("DELETE", "/fleet"), ("POST", "/fleet/scale"),
                     ("POST", "/fleet/upgrade"),
                     ("POST", "/alerts/{id}/ack"), ("POST", "/analyze"), ("POST", "/tokens"),
                     ("POST", "/tokens/{name}/revoke")})

CACHE_S = 5.0  # how long a token lookup is trusted; a revocation takes effect within it


def new_token() -> str:
    return "fogd_" + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name, role and (agents) node."""

    name: str
    role: str
    node: str | None = None


class TokenCache:
    """Token hash -> Principal, re-read from the store every few seconds, so tokens made
    or revoked with the CLI (which writes the database directly) take effect quickly."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def lookup(self, token: str) -> Principal | None:
        key = digest(token)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[1] < CACHE_S:
            return hit[0]
        row = await self._store.token_by_hash(key)
        principal = Principal(row[0], row[1], row[2]) if row is not None and row[3] is None else None
        if len(self._cache) > 10_000:  # bounded: guessing tokens must not grow memory
            self._cache.clear()
        self._cache[key] = (principal, now)
        return principal

    def forget(self) -> None:
        self._cache.clear()
