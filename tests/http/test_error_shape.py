"""Every error fogd sends has the canonical JSON shape (see tests/helpers.assert_error)."""

import re

from tests.helpers import assert_error


async def test_unknown_route_is_json_404(client):
    body = await assert_error(await client.get("/no/such/route"), 404, "not_found")
    assert "/no/such/route" in body["detail"]


async def test_wrong_method_is_json_405_with_allowed_methods(client):
    resp = await client.put("/fleet/scale")
    body = await assert_error(resp, 405, "method_not_allowed")
    assert body["allowed"] == ["POST"]
    assert resp.headers["Allow"] == "POST"
    resp = await client.put("/ingest")  # POST, or GET to open an agent's stream
    body = await assert_error(resp, 405, "method_not_allowed")
    assert body["allowed"] == ["GET", "HEAD", "POST"]


async def test_every_route_in_the_router_answers_errors_as_json(client):
    """Walk the real route table so a new route cannot skip the error middleware."""
    paths = {r.resource.canonical for r in client.app.router.routes() if r.resource is not None}
    for path in paths:
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        resp = await client.patch(concrete)
        await assert_error(resp, 405, "method_not_allowed")
