#!/usr/bin/env python3
"""Benchmark analysis: POST /analyze over 100 fog nodes with 1,000,000 stored readings,
and what the background analysis loop costs single-reading ingest. Prints the figures.

    python3 bench/analysis.py            # ~2 minutes
    python3 bench/analysis.py --quick    # 100,000 readings, shorter runs

fogd runs as `fogd serve` pinned to CPU 0, the load (wrk) on CPU 1, as in bench/ingest.py.
The history: 100 fog nodes, one reading per node per second up to now, so each node's
analysis window (300 s) is full.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from ingest import SINGLE_LUA, start_fogd, wrk  # noqa: E402


def start(tmp: str, db: str, interval: float) -> tuple[subprocess.Popen[bytes], str]:
    config = Path(tmp) / f"fogd-{interval}.toml"
    config.write_text(f'[analysis]\ninterval = {interval}\n[nodes]\nprovisioner = "process"\n'
                      f'instance = "bench-analysis"\n')
    return start_fogd(Path(tmp) / db, {"FOGD_CONFIG": str(config)})


async def fill(url: str, total: int, nodes: int = 100, span_s: float | None = None) -> None:
    """``total`` readings, the newest now: every node one per second, or spread evenly
    over the last ``span_s`` seconds."""
    seconds = total // nodes
    step = (span_s / seconds) if span_s else 1.0
    end = time.time()
    per_batch = 100  # readings per node per request: 10,000 readings

    def body(first: int) -> bytes:
        rows = []
        for s in range(first, min(first + per_batch, seconds)):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end - (seconds - s) * step)) + "Z"
            for n in range(nodes):
                rows.append({"node": f"fog-{n}", "seq": s, "timestamp": ts,
                             "temperature": 22 + ((s * 7 + n) % 11) / 10, "humidity": 45 + (s + n) % 5,
                             "power": 120 + (s * 3 + n) % 9})
        return json.dumps(rows).encode()

    sem = asyncio.Semaphore(3)
    async with aiohttp.ClientSession() as session:
        async def post(first: int) -> None:
            async with sem:
                async with session.post(url + "/ingest", data=body(first),
                                        headers={"Content-Type": "application/json"}) as r:
                    assert r.status in (200, 201), await r.text()
        await asyncio.gather(*[post(f) for f in range(0, seconds, per_batch)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    total = 100_000 if args.quick else 1_000_000
    seconds = 4 if args.quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(tmp, "analysis.sqlite3", 0)
        try:
            t0 = time.perf_counter()
            asyncio.run(fill(url, total))
            print(f"stored {total:,} readings for 100 fog nodes in {time.perf_counter() - t0:.1f} s", flush=True)
            times = []
            for i in range(21):
                t = time.perf_counter()
                req = urllib.request.Request(url + "/analyze", method="POST")
                body = json.loads(urllib.request.urlopen(req, timeout=60).read())
                times.append((time.perf_counter() - t) * 1000)
            assert body["analyzed"] == 100, body["analyzed"]
            times = times[1:]  # the first pass also loads the live alerts
            print(f"POST /analyze over {body['analyzed']} fog nodes, {total:,} readings: "
                  f"p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
                  f"(server-side {body['elapsed_ms']} ms; {sum(len(n['findings']) for n in body['nodes'].values())} "
                  f"findings)", flush=True)
        finally:
            proc.terminate()
            proc.wait()

        # Alternate off/on twice: the first runs also pay for new nodes and file growth.
        rates: dict[int, list[float]] = {0: [], 5: []}
        for interval in (0, 5, 0, 5):
            proc, url = start(tmp, "analysis.sqlite3", interval)
            try:
                wrk(url + "/ingest", SINGLE_LUA.replace("%%", "%"), 32, 2)  # warm-up
                r = wrk(url + "/ingest", SINGLE_LUA.replace("%%", "%"), 32, max(seconds, 15))
                rates[interval].append(r["rps"])
                metrics = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
                runs = next(float(line.split()[1]) for line in metrics.splitlines()
                            if line.startswith("fogd_analysis_runs_total "))
                label = "off" if interval == 0 else f"every {interval} s ({runs:.0f} passes ran)"
                print(f"single-reading ingest, analysis loop {label}: {r['rps']:,.0f} req/s, "
                      f"p99 {r['p99_ms']:.2f} ms", flush=True)
            finally:
                proc.terminate()
                proc.wait()
        off, on = statistics.mean(rates[0]), statistics.mean(rates[5])
        print(f"the analysis loop every 5 s costs ingest {100 * (1 - on / off):.1f}% of its throughput "
              f"(mean of two runs each: {off:,.0f} vs {on:,.0f} req/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
