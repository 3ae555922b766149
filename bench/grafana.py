#!/usr/bin/env python3
"""Benchmark the Grafana datasource's /query: live_data, health_map and a per-node
time series over 24 h (maxDataPoints 1,000), at 10,000 and at 1,000,000 stored
readings (100 nodes). Prints p50 latencies (wrk, one connection) and their ratio.

Both histories span the same last 10,000 s (1,000,000: a reading per node per second;
10,000: one per 100 s), so the series returns the same points from 100 times the
history: what is compared is the cost of history size, not of points returned.

    python3 bench/grafana.py [--quick]

fogd runs as `fogd serve` pinned to CPU 0, wrk on CPU 1, as in bench/ingest.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from analysis import fill, start  # noqa: E402
from ingest import wrk  # noqa: E402

BODY_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def query(target: str, payload: dict, hours: float, max_points: int = 1000) -> str:
    now = time.time()
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    return json.dumps({"range": {"from": time.strftime(fmt, time.gmtime(now - hours * 3600)),
                                 "to": time.strftime(fmt, time.gmtime(now))},
                       "intervalMs": 1000, "maxDataPoints": max_points,
                       "targets": [{"refId": "A", "target": target, "payload": payload}]})


CASES = {
    "live_data": ("live_data", {}),
    "health_map": ("health_map", {}),
    "series 24h": ("temperature", {"node": "fog-7"}),
}


def caught_up(url: str) -> None:
    """Wait until every stored reading is in the per-minute roll-ups."""
    import urllib.request
    for _ in range(600):
        overview = json.loads(urllib.request.urlopen(url + "/api/system_overview", timeout=10).read())
        if overview["ingest"]["rollup_lag"] == 0:
            return
        time.sleep(0.1)
    raise SystemExit("roll-ups did not catch up")


def points(url: str) -> int:
    import urllib.request
    target, payload = CASES["series 24h"]
    req = urllib.request.Request(url + "/query", data=query(target, payload, 24).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    [series] = json.loads(urllib.request.urlopen(req, timeout=10).read())
    return len(series["datapoints"])


def measure(url: str, seconds: int) -> dict[str, float]:
    caught_up(url)
    print(f"  (the 24 h series of fog-7 has {points(url)} points)", flush=True)
    out = {}
    for label, (target, payload) in CASES.items():
        r = wrk(url + "/query", BODY_LUA % query(target, payload, 24), 1, seconds, threads=1)
        out[label] = r["p50_ms"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds = 3 if args.quick else 8
    big = 100_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(tmp, "grafana.sqlite3", 0)
        try:
            asyncio.run(fill(url, 10_000, span_s=10_000))
            small = measure(url, seconds)
            for label, p50 in small.items():
                print(f"/query {label:<11} at 10,000 readings: p50 {p50:.2f} ms", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(tmp, "grafana.sqlite3", 0)
        try:
            asyncio.run(fill(url, big, span_s=10_000))
            large = measure(url, seconds)
            for label, p50 in large.items():
                print(f"/query {label:<11} at {big:,} readings: p50 {p50:.2f} ms "
                      f"({p50 / small[label]:.2f}x the 10,000-reading latency)", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
