#!/usr/bin/env python3
"""Benchmark a declared fleet on a real Docker Swarm (or the Docker provisioner); prints the figures.

    python3 bench/fleet.py [--fog 180] [--cloud 20] [--provisioner swarm|docker] [--watch 30] [--settle S] [--kills 3]

Needs a swarm manager whose hosts carry the tier labels (FOGD_SWARM=1
scripts/docker-engine.sh does this on one machine). Starts `fogd serve` (fresh SQLite
file, its own instance label, host networking), then measures:

1. POST /fleet declaring the nodes: time until the reply (every node's service created
   and its task running) and until telemetry from every node is stored;
2. fogd's CPU use while every agent sends one reading per second (share of one core,
   from /proc/<pid>/stat over --watch seconds), and the agents' resident memory;
3. reconciliation: a node's container is killed (`docker kill`) --kills times, one
   node at a time; the time until that node's next reading is stored.

Everything it created is removed at the end (POST /cleanup), which is timed too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from nodes import (call, parse_time, print_agent_memory, print_cpu_share, serve, timed_cleanup,  # noqa: E402
                   wait_reported)


def latest_ms(url: str, node: str) -> int | None:
    latest = call(f"{url}/nodes/{node}/data?limit=1")["latest"]
    return parse_time(latest["timestamp"]) if latest else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fog", type=int, default=180)
    ap.add_argument("--cloud", type=int, default=20)
    ap.add_argument("--provisioner", default="swarm", choices=["swarm", "docker"])
    ap.add_argument("--watch", type=float, default=30.0, help="seconds to measure fogd's CPU")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="then measure again after this many more seconds (300: analysis windows full)")
    ap.add_argument("--kills", type=int, default=3, help="nodes killed one after another")
    ap.add_argument("--analysis-interval", type=float, default=None,
                    help="analysis.interval (default: fogd's, 10 s; 0 turns the loop off)")
    args = ap.parse_args()
    total = args.fog + args.cloud
    instance = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        fogd, url = serve(tmp, args.provisioner, instance, max(200, total), args.analysis_interval)
        try:
            t0 = time.perf_counter()
            since = time.time() * 1000
            result = call(url + "/fleet", "POST", {"fog": {"count": args.fog}, "cloud": {"count": args.cloud}})
            t_applied = time.perf_counter() - t0
            if result["failed"]:
                print(f"{len(result['failed'])} nodes failed, e.g. {result['failed'][0]}")
            names = set(result["created"])
            t_telemetry = wait_reported(url, names, t0, 120, since_ms=since)
            print(f"POST /fleet of {total} nodes ({args.provisioner}): every task running {t_applied:.2f} s, "
                  f"telemetry from all stored {t_telemetry:.2f} s after the request", flush=True)

            time.sleep(5)
            print_agent_memory(instance)
            print_cpu_share(fogd.pid, total, args.watch)
            if args.settle:
                time.sleep(args.settle)
                print_cpu_share(fogd.pid, total, args.watch, f", {args.settle:.0f} s later")

            victims = sorted(names)[:args.kills]
            for node in victims:
                ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.fogd.instance={instance}",
                                      "--filter", f"label=io.fogd.node={node}"],
                                     capture_output=True, text=True).stdout.split()
                killed = time.time() * 1000
                k0 = time.perf_counter()
                subprocess.run(["docker", "kill", *ids], check=True, capture_output=True)
                while True:
                    last = latest_ms(url, node)
                    # a reading taken a second after the kill: from the new agent
                    if last is not None and last > killed + 1000:
                        print(f"killed {node}: reporting again after {time.perf_counter() - k0:.2f} s", flush=True)
                        break
                    if time.perf_counter() - k0 > 60:
                        print(f"killed {node}: not reporting after 60 s", flush=True)
                        break
                    time.sleep(0.1)
            timed_cleanup(url)
        finally:
            fogd.terminate()
            fogd.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
