"""The node agent: produce a reading every interval and deliver it to fogd, losing none.

Configured by environment (see :class:`AgentConfig`). Readings wait in a bounded
in-memory buffer; when it overflows, or at shutdown, they are spooled to disk if
``FOGD_SPOOL_DIR`` is set (otherwise the oldest are dropped and counted). The sender
delivers batches oldest-first and drops a batch from the buffer only once fogd has
replied that it is committed; when fogd is unreachable or answers 429/5xx it retries
with exponential backoff and full jitter. fogd de-duplicates on (node, seq), so a batch
sent twice (its reply lost) is harmless. SIGTERM stops production and flushes what it can.

Transport (``FOGD_TRANSPORT``): ``stream`` (the default) keeps one WebSocket open to
``GET /ingest`` and sends each batch as a message, fogd replying to each once it is
committed: half of fogd's CPU per reading is HTTP's per-request work, which a stream
pays once. When fogd (or a proxy before it) does not upgrade, the agent posts instead
and tries the stream again every ``STREAM_RETRY_S``. ``post`` always posts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import aiohttp
import msgspec

from node_agent.telemetry import Telemetry

log = logging.getLogger("node_agent")
_encode = msgspec.json.encode
_decode = msgspec.json.decode
STREAM_RETRY_S = 600.0  # after fogd refused the upgrade, post this long before trying again


class ConfigError(ValueError):
    pass


@dataclass
class AgentConfig:
    fogd_url: str
    node: str
    role: str = "fog"
    interval: float = 1.0
    token: str = ""
    anomaly_rate: float = 0.01
    buffer_max: int = 10_000
    batch_max: int = 500
    spool_dir: str = ""
    flush_timeout: float = 5.0
    seed: int | None = None
    ca_file: str = ""
    transport: str = "stream"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AgentConfig":
        """``FOGD_URL`` and ``FOGD_NODE`` are required; the rest have defaults."""
        def get(name: str, conv: type, default: object) -> object:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return conv(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r}: expected {conv.__name__}") from None

        missing = [n for n in ("FOGD_URL", "FOGD_NODE") if not env.get(n)]
        if missing:
            raise ConfigError(f"set {' and '.join(missing)}")
        cfg = cls(
            fogd_url=env["FOGD_URL"].rstrip("/"), node=env["FOGD_NODE"],
            role=str(get("FOGD_ROLE", str, "fog")),
            interval=float(get("FOGD_INTERVAL", float, 1.0)),  # type: ignore[arg-type]
            token=str(get("FOGD_TOKEN", str, "")),
            anomaly_rate=float(get("FOGD_ANOMALY_RATE", float, 0.01)),  # type: ignore[arg-type]
            buffer_max=int(get("FOGD_BUFFER_MAX", int, 10_000)),  # type: ignore[arg-type]
            batch_max=int(get("FOGD_BATCH_MAX", int, 500)),  # type: ignore[arg-type]
            spool_dir=str(get("FOGD_SPOOL_DIR", str, "")),
            flush_timeout=float(get("FOGD_FLUSH_TIMEOUT", float, 5.0)),  # type: ignore[arg-type]
            seed=get("FOGD_SEED", int, None),  # type: ignore[arg-type]
            ca_file=str(get("FOGD_CA_FILE", str, "")),
            transport=str(get("FOGD_TRANSPORT", str, "stream")),
        )
        if cfg.transport not in ("stream", "post"):
            raise ConfigError(f"FOGD_TRANSPORT={cfg.transport!r}: expected stream or post")
        if cfg.role not in ("fog", "cloud"):
            raise ConfigError(f"FOGD_ROLE={cfg.role!r}: expected fog or cloud")
        if cfg.interval <= 0 or cfg.buffer_max < 1 or cfg.batch_max < 1:
            raise ConfigError("FOGD_INTERVAL, FOGD_BUFFER_MAX and FOGD_BATCH_MAX must be positive")
        return cfg


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class Spool:
    """Readings that did not fit in memory: one JSON file per batch, oldest first."""

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._n = max((int(p.stem) for p in self.dir.glob("*.json") if p.stem.isdigit()), default=0)

    def segments(self) -> list[Path]:
        return sorted((p for p in self.dir.glob("*.json") if p.stem.isdigit()), key=lambda p: int(p.stem))

    def write(self, readings: list[dict]) -> None:
        self._n += 1
        tmp = self.dir / f"{self._n:012d}.tmp"
        tmp.write_bytes(_encode(readings))
        tmp.rename(tmp.with_suffix(".json"))  # a crash never leaves half a segment behind


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.telemetry = Telemetry(cfg.role, cfg.anomaly_rate, cfg.seed)
        self.buffer: deque[dict] = deque()
        self.spool = Spool(cfg.spool_dir) if cfg.spool_dir else None
        self.seq = 0
        self.dropped = 0
        self.rejected = 0
        self.delivered = 0
        self._wake = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._post_until = float("inf") if cfg.transport == "post" else 0.0

    # ------------------------------------------------------------------ production
    def next_seq(self) -> int:
        # Microseconds since the epoch, strictly increasing: unique across restarts
        # of the agent, so fogd's (node, seq) de-duplication never eats a new reading.
        self.seq = max(self.seq + 1, time.time_ns() // 1000)
        return self.seq

    def produce(self, now: float, dt: float) -> dict:
        reading = self.telemetry.reading(now, dt)
        reading.update(node=self.cfg.node, role=self.cfg.role, seq=self.next_seq(),
                       timestamp=iso(now), source="agent")
        self.buffer.append(reading)
        if len(self.buffer) > self.cfg.buffer_max:
            self._overflow()
        self._wake.set()
        return reading

    def _overflow(self) -> None:
        half = max(1, self.cfg.buffer_max // 2)
        oldest = [self.buffer.popleft() for _ in range(min(half, len(self.buffer)))]
        if self.spool is not None:
            for i in range(0, len(oldest), self.cfg.batch_max):
                self.spool.write(oldest[i:i + self.cfg.batch_max])
        else:
            self.dropped += len(oldest)
            log.warning("buffer full (%d readings): dropped the %d oldest; set FOGD_SPOOL_DIR to keep them",
                        self.cfg.buffer_max, len(oldest))

    async def produce_loop(self, stop: asyncio.Event) -> None:
        last = time.time()
        while not stop.is_set():
            now = time.time()
            self.produce(now, max(1e-3, now - last))
            last = now
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.interval)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ delivery
    def _next_batch(self) -> tuple[list[dict], Path | None]:
        if self.spool is not None:
            segments = self.spool.segments()
            if segments:
                return _decode(segments[0].read_bytes()), segments[0]
        n = min(len(self.buffer), self.cfg.batch_max)
        return [self.buffer[i] for i in range(n)], None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cfg.token}"} if self.cfg.token else {}

    async def _deliver(self, session: aiohttp.ClientSession, batch: list[dict]) -> str:
        """``ok``, ``reject`` (fogd will never take it) or ``retry``."""
        if time.monotonic() < self._post_until:
            return await self._post(session, batch)
        return await self._stream(session, batch)

    async def _post(self, session: aiohttp.ClientSession, batch: list[dict]) -> str:
        headers = {"Content-Type": "application/json", **self._headers()}
        try:
            async with session.post(self.cfg.fogd_url + "/ingest", data=_encode(batch), headers=headers) as resp:
                return self._outcome(resp.status, await resp.read(), len(batch))
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.debug("post failed: %r", exc)
            return "retry"

    async def _stream(self, session: aiohttp.ClientSession, batch: list[dict]) -> str:
        """Send ``batch`` as one message on the stream (connecting it first if need be)
        and wait for fogd's reply."""
        try:
            if self._ws is None or self._ws.closed:
                self._ws = await session.ws_connect(self.cfg.fogd_url + "/ingest", headers=self._headers(),
                                                    max_msg_size=0)
            await self._ws.send_bytes(_encode(batch))
            msg = await self._ws.receive(timeout=10.0)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                return self._outcome(exc.status, exc.message.encode(), len(batch))
            if exc.status < 500 and exc.status != 429:  # no stream here (an older fogd, a proxy): post
                log.warning("fogd did not open a stream at %s/ingest (%d); posting instead", self.cfg.fogd_url,
                            exc.status)
                self._post_until = time.monotonic() + STREAM_RETRY_S
                return await self._post(session, batch)
            return "retry"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.debug("stream failed: %r", exc)
            await self._close_stream()
            return "retry"
        if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            code = self._ws.close_code
            await self._close_stream()
            if code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:  # let POST say what the limit is
                return await self._post(session, batch)
            log.debug("stream closed by fogd (%s)", code)
            return "retry"
        reply = _decode(msg.data)
        return self._outcome(int(reply.get("status", 500)), msg.data, len(batch))

    async def _close_stream(self) -> None:
        """Close the stream, waiting at most a second for fogd's side of the close (a
        hung fogd must not eat the flush time at SIGTERM, nor stall every retry)."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            try:
                async with asyncio.timeout(1.0):
                    await ws.close()
            except TimeoutError:
                pass  # cancelling the close dropped the connection

    def _outcome(self, status: int, body: bytes, n: int) -> str:
        if status < 300:
            return "ok"
        if status in (408, 429) or status >= 500:
            return "retry"
        if status in (401, 403):  # a token problem: keep the readings, an operator can fix it
            log.error("fogd refused the token (%d): %s; keeping readings and retrying", status, body[:300])
            return "retry"
        log.error("fogd rejected %d readings with %d: %s", n, status, body[:300])
        return "reject"

    async def send_loop(self, session: aiohttp.ClientSession, stop: asyncio.Event, deadline: list[float]) -> None:
        failures = 0
        while True:
            batch, segment = self._next_batch()
            if not batch:
                if stop.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if stop.is_set() and time.monotonic() > deadline[0]:
                return
            outcome = await self._deliver(session, batch)
            if outcome == "retry":
                failures += 1
                if failures == 1:
                    log.warning("fogd unreachable at %s; buffering readings", self.cfg.fogd_url)
                delay = random.uniform(0, min(30.0, 0.25 * 2 ** min(failures, 10)))  # full jitter
                if stop.is_set():
                    delay = min(delay, max(0.0, deadline[0] - time.monotonic()))
                try:
                    await asyncio.wait_for(stop.wait(), delay) if not stop.is_set() else await asyncio.sleep(delay)
                except asyncio.TimeoutError:
                    pass
                continue
            if failures:
                log.warning("fogd is back; delivering the backlog")
            failures = 0
            if outcome == "reject":
                self.rejected += len(batch)
            else:
                self.delivered += len(batch)
            if segment is not None:
                segment.unlink()
            else:
                for _ in range(len(batch)):
                    self.buffer.popleft()

    async def run(self, stop: asyncio.Event) -> None:
        ssl_ctx: Any = True
        if self.cfg.ca_file:
            import ssl  # only here: an http:// agent never loads OpenSSL (see __main__)

            ssl_ctx = ssl.create_default_context(cafile=self.cfg.ca_file)
        deadline = [float("inf")]
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=ssl_ctx)) as session:
            sender = asyncio.create_task(self.send_loop(session, stop, deadline))
            await self.produce_loop(stop)
            deadline[0] = time.monotonic() + self.cfg.flush_timeout
            self._wake.set()
            await sender
            await self._close_stream()
        left = list(self.buffer)
        if left and self.spool is not None:
            for i in range(0, len(left), self.cfg.batch_max):
                self.spool.write(left[i:i + self.cfg.batch_max])
            log.warning("stopped with %d undelivered readings spooled to %s", len(left), self.spool.dir)
        elif left:
            self.dropped += len(left)
            log.warning("stopped with %d undelivered readings (no FOGD_SPOOL_DIR: lost)", len(left))
        log.info("agent %s stopped: %d delivered, %d dropped, %d rejected",
                 self.cfg.node, self.delivered, self.dropped, self.rejected)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("FOGD_AGENT_LOG", "INFO").upper(),
                        format="%(asctime)s %(levelname)s node_agent: %(message)s", stream=sys.stderr)
    # Arguments are markers for `ps` and for fogd's process provisioner (adoption after
    # a restart); configuration comes from the environment.
    try:
        cfg = AgentConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"node_agent: {exc}", file=sys.stderr)
        return 2

    async def amain() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("agent %s (%s) sending to %s every %.3g s", cfg.node, cfg.role, cfg.fogd_url, cfg.interval)
        await Agent(cfg).run(stop)

    asyncio.run(amain())
    return 0
