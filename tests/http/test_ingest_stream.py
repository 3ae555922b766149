"""GET /ingest as a WebSocket (how node agents send) against a real aiohttp server and
a real SQLite file: replies per message after commit, errors that keep the stream open,
tokens checked per message, streams closed at shutdown."""

import asyncio

import aiohttp
import msgspec
import pytest

from fogd.auth import digest, new_token
from fogd.context import FOGD
from tests.helpers import assert_error, stored_rows


async def exchange(ws, body):
    await ws.send_bytes(body if isinstance(body, bytes) else msgspec.json.encode(body))
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    return msgspec.json.decode(msg.data)


async def test_each_message_is_stored_and_answered_once_committed(client):
    ws = await client.ws_connect("/ingest")
    assert client.app[FOGD].metrics.ingest_streams._value.get() == 1
    reading = {"node": "fog-1", "seq": 1, "temperature": 21.0, "humidity": 40.0, "source": "agent"}
    assert await exchange(ws, reading) == {"status": 201, "received": 1, "stored": 1, "duplicates": 0}
    batch = [reading, {**reading, "seq": 2}, {**reading, "seq": 3}]
    assert await exchange(ws, batch) == {"status": 201, "received": 3, "stored": 2, "duplicates": 1}
    assert await exchange(ws, [reading]) == {"status": 200, "received": 1, "stored": 0, "duplicates": 1}
    await ws.send_str(msgspec.json.encode({**reading, "seq": 4}).decode())  # text frames too
    assert msgspec.json.decode((await ws.receive(timeout=10)).data)["stored"] == 1
    assert stored_rows(client, "SELECT seq FROM readings ORDER BY seq") == [(1,), (2,), (3,), (4,)]
    await ws.close()


async def test_a_bad_message_gets_the_post_error_and_the_stream_goes_on(client):
    ws = await client.ws_connect("/ingest")
    reply = await exchange(ws, [{"node": "fog-1", "temperature": 20.0}, {"node": "fog-1", "temperature": "hot"}])
    assert reply["status"] == 422 and reply["error"] == "validation" and reply["field"] == "$[1].temperature"
    assert reply["index"] == 1 and "Expected" in reply["detail"]
    reply = await exchange(ws, b"{not json")
    assert (reply["status"], reply["error"]) == (400, "malformed")
    reply = await exchange(ws, [])
    assert (reply["status"], reply["field"]) == (422, "$")
    assert stored_rows(client) == [(0,)]  # nothing of the rejected batch
    assert (await exchange(ws, {"node": "fog-1", "power": 5.0}))["status"] == 201
    assert stored_rows(client) == [(1,)]
    await ws.close()


async def test_a_message_over_the_body_limit_closes_the_stream_with_1009(make_client, make_config):
    client = await make_client(make_config(server={"max_body_bytes": 2048}))
    ws = await client.ws_connect("/ingest")
    await ws.send_bytes(msgspec.json.encode([{"node": "fog-1", "power": float(i)} for i in range(200)]))
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert stored_rows(client) == [(0,)]


async def test_a_plain_get_is_told_to_upgrade_or_post(client):
    body = await assert_error(await client.get("/ingest"), 426, "upgrade_required")
    assert "POST" in body["detail"] and "Upgrade: websocket" in body["detail"]


async def test_tokens_are_checked_at_connect_and_for_every_message(make_client, make_config):
    client = await make_client(make_config(auth={"enabled": True}, analysis={"interval": 0}))
    store = client.app[FOGD].store
    token = new_token()
    await store.save_token("agent-fog-1", "agent", "fog-1", digest(token), 0)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ingest")
    assert refused.value.status == 401
    ws = await client.ws_connect("/ingest", headers={"Authorization": f"Bearer {token}"})
    assert (await exchange(ws, {"node": "fog-1", "power": 1.0}))["status"] == 201
    reply = await exchange(ws, {"node": "fog-2", "power": 1.0})
    assert (reply["status"], reply["error"], reply["field"]) == (403, "forbidden", "$[0].node")
    await store.revoke_token("agent-fog-1", 1)
    client.app[FOGD].tokens.forget()
    reply = await exchange(ws, {"node": "fog-1", "power": 2.0})
    assert (reply["status"], reply["error"]) == (401, "unauthorized")
    assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE
    assert stored_rows(client, "SELECT power FROM readings") == [(1.0,)]


async def test_shutdown_closes_open_streams_with_going_away(make_client):
    client = await make_client()
    ws = await client.ws_connect("/ingest")
    assert (await exchange(ws, {"node": "fog-1", "power": 1.0}))["status"] == 201
    await client.server.close()
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.GOING_AWAY


async def test_streamed_readings_wait_for_company_and_a_post_ends_the_wait(make_client, make_config):
    client = await make_client(make_config(ingest={"commit_delay_ms": 1000}, analysis={"interval": 0}))
    writer = client.app[FOGD].writer
    a, b, c = [await client.ws_connect("/ingest") for _ in range(3)]
    assert (await exchange(a, {"node": "a", "power": 1.0}))["stored"] == 1  # an idle writer commits at once
    commits = writer.commits
    for ws, node in ((b, "b"), (c, "c")):
        await ws.send_bytes(msgspec.json.encode({"node": node, "power": 2.0}))
    replies = asyncio.gather(b.receive(timeout=10), c.receive(timeout=10))
    await asyncio.sleep(0.2)  # well inside the 1 s delay: b and c wait for company, unanswered
    assert not replies.done() and stored_rows(client) == [(1,)]
    resp = await client.post("/ingest", json={"node": "d", "power": 3.0})  # a POST never waits
    assert resp.status == 201
    assert [msgspec.json.decode(m.data)["stored"] for m in await replies] == [1, 1]
    assert writer.commits == commits + 1  # b, c and d shared one commit
    assert stored_rows(client) == [(4,)]


async def test_an_agent_gone_before_its_reply_is_no_error(daemon, tmp_path):
    """`fogd serve`: the reply to an agent killed while its readings wait for their commit
    cannot be sent; fogd stores them all the same, ends the stream quietly and logs no
    error (the agent would send them again, deduplicated)."""
    import base64
    import os

    config = tmp_path / "fogd.toml"
    config.write_text('[ingest]\ncommit_delay_ms = 400\n[nodes]\nprovisioner = "process"\n')
    d = daemon(env={"FOGD_CONFIG": str(config)}).start()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(d.url + "/ingest")
        assert (await exchange(ws, {"node": "fog-1", "power": 1.0}))["status"] == 201  # commits at once
        reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET /ingest HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        payload = msgspec.json.encode({"node": "fog-1", "power": 2.0, "seq": 5})
        mask = os.urandom(4)
        writer.write(bytes([0x82, 0x80 | len(payload)]) + mask
                     + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        await writer.drain()
        await asyncio.sleep(0.15)  # fogd has it, waiting (400 ms) for company
        writer.transport.abort()  # gone before the commit and its reply
        await asyncio.sleep(0.6)
        async with session.get(d.url + "/nodes/fog-1/data", params={"limit": "10"}) as resp:
            history = (await resp.json())["history"]
        assert sorted(r["power"] for r in history) == [1.0, 2.0]
        async with session.get(d.url + "/metrics") as resp:
            assert "fogd_ingest_streams 1.0" in await resp.text()  # the aborted stream ended
        await ws.close()
    assert d.stop() == 0
    log = d.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log


async def test_a_streamed_batch_never_waits_for_company(make_client, make_config):
    """An agent delivering its backlog sends batch after batch: none waits for the
    (here 1 s) commit delay, and a waiting live reading shares the batch's commit."""
    client = await make_client(make_config(ingest={"commit_delay_ms": 1000}, analysis={"interval": 0}))
    writer = client.app[FOGD].writer
    a, b = await client.ws_connect("/ingest"), await client.ws_connect("/ingest")
    assert (await exchange(a, {"node": "a", "power": 1.0}))["stored"] == 1  # an idle writer commits at once
    await a.send_bytes(msgspec.json.encode({"node": "a", "power": 2.0}))  # a live reading: waits
    single = asyncio.ensure_future(a.receive(timeout=20))
    await asyncio.sleep(0.1)
    assert not single.done()
    commits, started = writer.commits, asyncio.get_running_loop().time()
    for i in range(3):
        reply = await exchange(b, [{"node": "b", "power": float(i), "seq": 2 * i},
                                   {"node": "b", "power": float(i), "seq": 2 * i + 1}])
        assert reply["stored"] == 2
    assert asyncio.get_running_loop().time() - started < 0.8  # not even one 1 s wait
    assert msgspec.json.decode((await single).data)["stored"] == 1
    assert writer.commits == commits + 3  # the live reading rode along with the first batch


async def test_a_silent_peer_is_dropped_by_the_heartbeat(make_client, monkeypatch):
    """An agent whose host vanished without closing its connection answers no ping:
    fogd drops its stream (here after 0.2 s pings; 30 s in earnest)."""
    import base64
    import os

    from fogd.http import ingest

    monkeypatch.setattr(ingest, "HEARTBEAT_S", 0.2)
    client = await make_client()
    streams = client.app[FOGD].metrics.ingest_streams
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /ingest HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n\r\n")
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    assert streams._value.get() == 1
    for _ in range(100):  # never reads, never pongs
        await asyncio.sleep(0.05)
        if streams._value.get() == 0:
            break
    assert streams._value.get() == 0
    writer.close()
