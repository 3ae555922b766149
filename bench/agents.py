#!/usr/bin/env python3
"""fogd's CPU cost per agent, with simulated agents (no Docker): prints the figures.

    python3 bench/agents.py [--agents 50] [--seconds 30] [--runs 1] [--idle S] [--profile FILE]

Starts `fogd serve` (fresh SQLite file; the Docker provisioner by default, watching an
event stream with no nodes of its own), then runs N simulated agents from this one
process. Each agent does what
``node_agent`` does on the wire: a JSON array with one reading (node, role, seq,
timestamp, source, the three metrics and ``extra``) every second, each agent at its own
phase, sent as a message on one WebSocket to ``GET /ingest`` (``--transport stream``,
the agent's default) or POSTed to /ingest on one keep-alive HTTP/1.1 connection
(``--transport post``). After a warm-up it
measures fogd's CPU-seconds (utime + stime from /proc, robust to other load on the
machine) over ``--seconds`` and prints them as a share of one core and per request,
split into the event loop's thread and the others (SQLite's), user and system time.
``--idle`` then stops the agents and measures what the background loops cost alone.

Quick to iterate with; the figures of record come from ``bench/nodes.py`` (real agent
containers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nodes import cpu_seconds, serve  # noqa: E402


def thread_seconds(pid: int) -> dict[int, float]:
    """CPU-seconds of each thread of ``pid`` (the event loop's thread has the pid's id)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = cpu_seconds_of(task / "stat")
        except (OSError, ValueError):
            pass
    return out


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def user_system(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class Counts:
    ok = 0
    failed = 0


def body(rng: random.Random, name: str, seq: int, now: float) -> bytes:
    return json.dumps([{
        "temperature": round(22 + rng.gauss(0, 1), 2), "humidity": round(45 + rng.gauss(0, 2), 2),
        "power": round(120 + rng.gauss(0, 3), 1),
        "extra": {"cpu_load": round(rng.random(), 3), "mem_used_mb": round(200 + rng.random() * 50, 1),
                  "uptime_s": round(seq / 1e6 % 1e4, 1)},
        "node": name, "role": "fog", "seq": seq, "timestamp": iso(now), "source": "agent"}],
        separators=(",", ":")).encode()


class Post:
    """One keep-alive HTTP/1.1 connection, a POST per reading (raw, to keep this side cheap)."""

    async def open(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader, self.writer = await asyncio.open_connection(host, port)

    async def send(self, data: bytes) -> bool:
        self.writer.write(b"POST /ingest HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % (self.host.encode(), self.port, len(data)) + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return head[9:10] == b"2"

    async def close(self) -> None:
        self.writer.close()


class Stream:
    """What node_agent does by default: one WebSocket to GET /ingest, a message per reading."""

    async def open(self, host: str, port: int) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(f"http://{host}:{port}/ingest")

    async def send(self, data: bytes) -> bool:
        await self.ws.send_bytes(data)
        msg = await self.ws.receive()
        return json.loads(msg.data)["status"] < 300

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def agent(host: str, port: int, name: str, interval: float, stop: asyncio.Event, counts: Counts) -> None:
    await asyncio.sleep(random.uniform(0, interval))
    conn = Stream() if TRANSPORT == "stream" else Post()
    await conn.open(host, port)
    rng = random.Random(name)
    seq = 0
    next_t = time.monotonic()
    try:
        while not stop.is_set():
            seq = max(seq + 1, time.time_ns() // 1000)
            if await conn.send(body(rng, name, seq, time.time())):
                counts.ok += 1
            else:
                counts.failed += 1
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
    finally:
        await conn.close()


async def load(host: str, port: int, agents: int, interval: float, warmup: float, seconds: float,
               pid: int) -> list[tuple[float, int]]:
    stop = asyncio.Event()
    counts = Counts()
    tasks = [asyncio.create_task(agent(host, port, f"sim-{i + 1}", interval, stop, counts)) for i in range(agents)]
    await asyncio.sleep(warmup)
    results = []
    for _ in range(RUNS):
        c0, n0, w0, t0, us0 = cpu_seconds(pid), counts.ok, time.perf_counter(), thread_seconds(pid), user_system(pid)
        await asyncio.sleep(seconds)
        cpu, wall, n = cpu_seconds(pid) - c0, time.perf_counter() - w0, counts.ok - n0
        t1, us1 = thread_seconds(pid), user_system(pid)
        main_s = t1.get(pid, 0) - t0.get(pid, 0)
        results.append((cpu / wall, n))
        print(f"fogd CPU with {agents} simulated agents at 1/{interval:g} s: {cpu / wall * 100:.2f}% of one core "
              f"over {wall:.0f} s; {n} requests ({n / wall:.1f}/s), {cpu / max(n, 1) * 1e6:.0f} µs CPU per request"
              + (f"; {counts.failed} failed" if counts.failed else ""), flush=True)
        print(f"  event-loop thread {main_s / wall * 100:.2f}%, other threads {(cpu - main_s) / wall * 100:.2f}%; "
              f"user {(us1[0] - us0[0]) / wall * 100:.2f}%, system {(us1[1] - us0[1]) / wall * 100:.2f}%",
              flush=True)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if IDLE:
        await asyncio.sleep(2)
        c0, w0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(IDLE)
        cpu, wall = cpu_seconds(pid) - c0, time.perf_counter() - w0
        print(f"fogd CPU afterwards, {agents} nodes and no requests (background loops only): "
              f"{cpu / wall * 100:.2f}% of one core over {wall:.0f} s", flush=True)
    return results


RUNS = 1
IDLE = 0.0
TRANSPORT = "stream"


def main() -> int:
    global RUNS, IDLE, TRANSPORT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds per measurement")
    ap.add_argument("--runs", type=int, default=1, help="measurements in a row on the same fogd")
    ap.add_argument("--idle", type=float, default=0.0,
                    help="then stop the agents and measure fogd this many seconds without requests")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--analysis-interval", type=float, default=None,
                    help="analysis.interval (default: fogd's; 0 turns the loop off)")
    ap.add_argument("--provisioner", default="docker",
                    help="fogd's nodes.provisioner (docker: event-driven watch, as in bench/nodes.py; "
                         "process polls /proc every 0.5 s)")
    ap.add_argument("--profile", metavar="FILE", help="py-spy record fogd during the warm-up and measurements (collapsed stacks, per thread; idle frames included)")
    ap.add_argument("--pin", action="store_true", help="fogd on CPU 0, this load generator on CPU 1")
    ap.add_argument("--transport", choices=("stream", "post"), default="stream",
                    help="how the simulated agents send (node_agent's FOGD_TRANSPORT; default stream)")
    args = ap.parse_args()
    RUNS, IDLE, TRANSPORT = args.runs, args.idle, args.transport
    with tempfile.TemporaryDirectory() as tmp:
        if args.pin:
            os.sched_setaffinity(0, {1})
        fogd, url = serve(tmp, args.provisioner, f"simbench{os.getpid()}", max(200, args.agents),
                          args.analysis_interval, pin=args.pin)
        port = int(url.rsplit(":", 1)[1])
        try:
            spy = None
            if args.profile:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(fogd.pid), "-f", "raw", "-r", "250", "--threads", "--nonblocking",
                                        "-o", args.profile, "-d", str(int(args.warmup + args.seconds * args.runs))],
                                       stdout=subprocess.DEVNULL)
            asyncio.run(load("127.0.0.1", port, args.agents, args.interval, args.warmup, args.seconds, fogd.pid))
            if spy is not None:
                spy.wait()
        finally:
            fogd.terminate()
            fogd.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
