#!/usr/bin/env python3
"""Benchmark fogd's ingest and live-data paths; prints the figures.

    python3 bench/ingest.py            # full run (about 1-2 minutes)
    python3 bench/ingest.py --quick    # shorter runs, 100,000 stored readings

fogd runs as a subprocess (``fogd serve``) on a fresh SQLite file, pinned to CPU 0;
the load generator (wrk, Debian package ``wrk``) is pinned to CPU 1. Every reading
is committed to SQLite before its reply. Measured:

1. single reading per request: requests/s and p50/p99 latency, 32 connections;
2. batches of 1,000 readings: readings/s, 4 connections;
3. /api/live_data at 10,000 and at 1,000,000 stored readings (100 nodes): requests/s
   on one connection and mean latency;
4. fogd's resident memory with 1,000,000 stored readings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

SINGLE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local id = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
function init(args) n = 0 end
function request()
  n = n + 1
  local body = string.format('{"node":"bench-%d-%d","seq":%d,"temperature":%.1f,"humidity":55.0,"power":120.5}',
                             id, n %% 16, n, 20 + (n %% 50) / 10)
  return wrk.format(nil, nil, nil, body)
end
"""

BODY_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("%s", "r"); wrk.body = f:read("*a"); f:close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


def wrk(url: str, script: str, connections: int, seconds: int, threads: int = 2) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(pinned(1, ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s",
                                    "--latency", "-s", f.name, url]),
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw error responses:\n{out}")

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    mean = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    mean_ms = float(mean.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)]
    return {"rps": rps, "mean_ms": mean_ms, "p50_ms": ms("50%"), "p99_ms": ms("99%")}


def start_fogd(db: Path, env: dict[str, str] | None = None, attempts: int = 300,
               pin: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    """`fogd serve` on a fresh loopback port (pinned to CPU 0 unless ``pin`` is False);
    returns it once /healthz answers."""
    port = free_port()
    full = {**os.environ, "FOGD_DB": str(db), "FOGD_LISTEN": f"127.0.0.1:{port}", "FOGD_LOG_LEVEL": "warning",
            **(env or {})}
    cmd = [sys.executable, "-m", "fogd", "serve"]
    proc = subprocess.Popen(pinned(0, cmd) if pin else cmd, env=full)
    url = f"http://127.0.0.1:{port}"
    for _ in range(attempts):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("fogd did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fill(url: str, total: int, nodes: int = 100, batch: int = 10_000, start: int = 0) -> float:
    """Store ``total`` readings spread over ``nodes`` nodes; returns readings/s."""
    t0 = time.time() - 86_400 + start

    def body(offset: int) -> bytes:
        rows = []
        for i in range(offset, offset + batch):
            rows.append({"node": f"fog-{i % nodes}", "seq": i // nodes,
                         "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i * 0.05)) + "Z",
                         "temperature": 20 + (i % 97) / 10, "humidity": 40 + (i % 31), "power": 100 + i % 50})
        return json.dumps(rows).encode()

    sem = asyncio.Semaphore(3)
    async with aiohttp.ClientSession() as session:
        async def post(offset: int) -> None:
            async with sem:
                async with session.post(url + "/ingest", data=body(offset),
                                        headers={"Content-Type": "application/json"}) as r:
                    assert r.status in (200, 201), await r.text()
        began = time.perf_counter()
        await asyncio.gather(*[post(o) for o in range(start, start + total, batch)])
        return total / (time.perf_counter() - began)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, 100,000 stored readings")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    seconds = 4 if args.quick else 10
    big = 100_000 if args.quick else 1_000_000
    results: dict[str, object] = {"cpus": os.cpu_count(), "fogd_cpu": 0, "load_cpu": 1}

    with tempfile.TemporaryDirectory() as tmp:
        def start(db: str) -> tuple[subprocess.Popen[bytes], str]:
            return start_fogd(Path(tmp) / db)

        proc, url = start("ingest.sqlite3")
        try:
            wrk(url + "/ingest", SINGLE_LUA.replace("%%", "%"), 32, 2)  # warm-up
            results["single"] = single = wrk(url + "/ingest", SINGLE_LUA.replace("%%", "%"), 32, seconds)
            print(f"single reading/request, 32 conns: {single['rps']:,.0f} req/s  "
                  f"p50 {single['p50_ms']:.2f} ms  p99 {single['p99_ms']:.2f} ms", flush=True)
            batch_file = Path(tmp) / "batch.json"
            batch_file.write_text(json.dumps([{"node": f"fog-{i % 100}", "temperature": 20 + i % 10,
                                               "humidity": 50.0, "power": 100.0} for i in range(1000)]))
            b = wrk(url + "/ingest", BODY_LUA % batch_file, 4, seconds, threads=1)
            results["batch_1000"] = {"readings_per_s": b["rps"] * 1000, **b}
            print(f"batches of 1,000, 4 conns: {b['rps'] * 1000:,.0f} readings/s  "
                  f"p50 {b['p50_ms']:.1f} ms  p99 {b['p99_ms']:.1f} ms", flush=True)
        finally:
            proc.terminate()
            proc.wait()

        proc, url = start("live.sqlite3")
        try:
            asyncio.run(fill(url, 10_000))
            small = wrk(url + "/api/live_data", "", 1, seconds, threads=1)
            print(f"/api/live_data at 10,000 readings: {small['rps']:,.0f} req/s  mean {small['mean_ms']:.3f} ms", flush=True)
            rate = asyncio.run(fill(url, big - 10_000, start=10_000))
            print(f"filled to {big:,} readings in batches of 10,000: {rate:,.0f} readings/s", flush=True)
            large = wrk(url + "/api/live_data", "", 1, seconds, threads=1)
            print(f"/api/live_data at {big:,} readings: {large['rps']:,.0f} req/s  mean {large['mean_ms']:.3f} ms  "
                  f"({large['mean_ms'] / small['mean_ms']:.2f}x the 10,000-row latency)", flush=True)
            mem = rss_mb(proc.pid)
            print(f"fogd resident memory with {big:,} stored readings: {mem:.1f} MB", flush=True)
            results.update(live_10k=small, live_big=large, stored=big, fill_batch_10000_readings_per_s=rate,
                           rss_mb=mem, db_mb=os.path.getsize(Path(tmp) / "live.sqlite3") / 2**20)
        finally:
            proc.terminate()
            proc.wait()
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
