"""The declared fleet: ``GET/POST/DELETE /fleet``, ``POST /fleet/plan``,
``POST /fleet/scale`` and ``POST /fleet/upgrade`` (the work is in ``fogd/fleet.py``).

The long ones (apply, scale, upgrade) stream one JSON line per node with
``Accept: application/x-ndjson``, like ``/create``; their result has ``ok``: false when a
node failed or an upgrade was rolled back.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from fogd.context import FOGD
from fogd.fleet import FleetNotDeclared, FleetSpec, ScaleRequest, UpgradeRequest
from fogd.http.nodes import decode_body, with_progress
from fogd.http.responses import json

_spec_decoder = msgspec.json.Decoder(FleetSpec)
_scale_decoder = msgspec.json.Decoder(ScaleRequest)
_upgrade_decoder = msgspec.json.Decoder(UpgradeRequest)


async def get_fleet(request: web.Request) -> web.Response:
    """The declaration (or null), its revision, the plan from what runs to it, the last
    reconciliation and upgrade."""
    return json(request.app[FOGD].fleet.view())


async def post_fleet(request: web.Request) -> web.StreamResponse:
    """Declare the fleet (the body is fleet.toml as JSON) and make it so."""
    fleet = request.app[FOGD].fleet
    spec = await decode_body(request, _spec_decoder)
    return await with_progress(request, lambda progress: fleet.apply(spec, progress))


async def post_plan(request: web.Request) -> web.Response:
    """What declaring the body (default: the current declaration) would change; changes nothing."""
    fleet = request.app[FOGD].fleet
    body = await request.read()
    spec = None if not body.strip() else await decode_body(request, _spec_decoder)
    if spec is not None:
        fleet.check(spec)
    elif fleet.spec is None:
        raise FleetNotDeclared("no fleet is declared: send a fleet (fogd plan fleet.toml) to compare it with what runs")
    return json({"revision": fleet.revision, **fleet.plan(spec)})


async def post_scale(request: web.Request) -> web.StreamResponse:
    fleet = request.app[FOGD].fleet
    req = await decode_body(request, _scale_decoder)
    return await with_progress(request, lambda progress: fleet.scale(req.fog, req.cloud, progress))


async def post_upgrade(request: web.Request) -> web.StreamResponse:
    fleet = request.app[FOGD].fleet
    req = await decode_body(request, _upgrade_decoder)
    return await with_progress(request, lambda progress: fleet.upgrade(req, progress))


async def delete_fleet(request: web.Request) -> web.Response:
    """Withdraw the declaration: the nodes keep running, nothing reconciles them any more."""
    return json({"withdrawn": await request.app[FOGD].fleet.withdraw()})

