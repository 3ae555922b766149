#!/usr/bin/env python3
"""Benchmark node provisioning on a real Docker engine; prints the figures.

    python3 bench/nodes.py [--nodes 50] [--provisioner docker|process] [--watch 30] [--image TAG]

Starts `fogd serve` (fresh SQLite file, its own instance label, host networking),
then measures:

1. POST /create of N fog nodes: time until the reply (every container created and
   started) and until telemetry from all N is stored;
2. the agents' resident memory (each agent process, read from /proc);
3. fogd's CPU use while N agents post one reading per second (share of one core,
   from /proc/<pid>/stat over --watch seconds).

Everything it created is removed at the end (POST /cleanup).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path


def call(url: str, method: str = "GET", body: object = None) -> object:
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, proportional) set size: PSS shares library pages among the agents."""
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def agent_pids(instance: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"node_agent" in cmd and f"FOGD_INSTANCE={instance}".encode() in env \
                    and b"docker-init" not in cmd.split(b"\0")[0]:
                pids.append(int(entry.name))
    return pids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--provisioner", default="docker")
    ap.add_argument("--watch", type=float, default=30.0, help="seconds to measure fogd's CPU")
    ap.add_argument("--jitter", type=float, default=None, help="nodes.agent_start_jitter (default: fogd's)")
    ap.add_argument("--parallelism", type=int, default=None, help="nodes.create_parallelism (default: fogd's)")
    ap.add_argument("--image", default=None, help="nodes.image (default: fogd's, fogd-node:latest)")
    ap.add_argument("--analysis-interval", type=float, default=None,
                    help="analysis.interval (default: fogd's, 10 s; 0 turns the loop off)")
    args = ap.parse_args()
    instance = f"bench{uuid.uuid4().hex[:8]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "fogd.toml"
        config.write_text(f'[nodes]\nprovisioner = "{args.provisioner}"\ninstance = "{instance}"\n'
                          f'max_nodes = {max(200, args.nodes)}\n'
                          + (f"agent_start_jitter = {args.jitter}\n" if args.jitter is not None else "")
                          + (f"create_parallelism = {args.parallelism}\n" if args.parallelism is not None else "")
                          + (f'image = "{args.image}"\n' if args.image is not None else "")
                          + '[docker]\nnetwork = "host"\n'
                          + (f"[analysis]\ninterval = {args.analysis_interval}\n"
                             if args.analysis_interval is not None else ""))
        env = {**os.environ, "FOGD_CONFIG": str(config), "FOGD_DB": str(Path(tmp) / "fogd.sqlite3"),
               "FOGD_LISTEN": f"127.0.0.1:{port}", "FOGD_LOG_LEVEL": "warning"}
        fogd = subprocess.Popen([sys.executable, "-m", "fogd", "serve"], env=env)
        try:
            for _ in range(200):
                try:
                    call(url + "/healthz")
                    break
                except OSError:
                    time.sleep(0.05)
            t0 = time.perf_counter()
            result = call(url + "/create", "POST", {"fog": args.nodes})
            t_created = time.perf_counter() - t0
            assert not result["failed"], result["failed"]
            names = {n["name"] for n in result["created"]}
            while True:
                status = call(url + "/nodes/status")
                reported = {n["name"] for n in status if n["last_reading"] is not None}
                if names <= reported:
                    break
                if time.perf_counter() - t0 > 60:
                    print(f"only {len(reported & names)} of {len(names)} reported within 60 s")
                    break
                time.sleep(0.05)
            t_telemetry = time.perf_counter() - t0
            print(f"POST /create of {args.nodes} nodes ({result['provisioner']}): all running in {t_created:.2f} s, "
                  f"telemetry from all stored {t_telemetry:.2f} s after the request", flush=True)

            time.sleep(3)
            mems = [memory_mb(p) for p in agent_pids(instance)]
            if mems:
                rss = sorted(m[0] for m in mems)
                pss = sorted(m[1] for m in mems)
                print(f"agent memory over {len(mems)} agents: resident median {rss[len(rss) // 2]:.1f} MB, "
                      f"max {rss[-1]:.1f} MB; proportional (PSS) median {pss[len(pss) // 2]:.1f} MB", flush=True)
            c0, w0 = cpu_seconds(fogd.pid), time.perf_counter()
            time.sleep(args.watch)
            share = (cpu_seconds(fogd.pid) - c0) / (time.perf_counter() - w0)
            print(f"fogd CPU with {args.nodes} agents posting every second: {share * 100:.1f}% of one core "
                  f"(over {args.watch:.0f} s)", flush=True)
            t1 = time.perf_counter()
            removed = call(url + "/cleanup", "POST", {})
            print(f"POST /cleanup removed {len(removed['removed'])} nodes in {time.perf_counter() - t1:.2f} s")
        finally:
            fogd.terminate()
            fogd.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
