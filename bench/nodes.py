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
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from ingest import free_port, start_fogd  # noqa: E402,F401  (free_port: for the benches importing it from here)

from fogd.model import parse_time  # noqa: E402


def call(url: str, method: str = "GET", body: object = None) -> object:
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def serve(tmp: str, provisioner: str, instance: str, max_nodes: int, analysis_interval: float | None = None,
          pin: bool = False, **nodes: object) -> tuple[object, str]:
    """`fogd serve` on a fresh SQLite file in ``tmp``, with a fogd.toml for benchmarks:
    ``provisioner``, its own ``instance`` label, host networking, more ``[nodes]`` keys."""
    config = Path(tmp) / "fogd.toml"
    config.write_text(f'[nodes]\nprovisioner = "{provisioner}"\ninstance = "{instance}"\nmax_nodes = {max_nodes}\n'
                      + "".join(f"{k} = {json.dumps(v)}\n" for k, v in nodes.items() if v is not None)
                      + '[docker]\nnetwork = "host"\n'
                      + (f"[analysis]\ninterval = {analysis_interval}\n" if analysis_interval is not None else ""))
    return start_fogd(Path(tmp) / "fogd.sqlite3", {"FOGD_CONFIG": str(config)}, pin=pin)


def wait_reported(url: str, names: set[str], t0: float, limit: float, since_ms: float | None = None) -> float:
    """Seconds from ``t0`` until every node in ``names`` has a stored reading (taken
    after ``since_ms``, if given); says so if that takes over ``limit`` seconds."""
    while True:
        reported = {n["name"] for n in call(url + "/nodes/status") if n["last_reading"] is not None
                    and (since_ms is None or parse_time(n["last_reading"]) > since_ms)}
        if names <= reported:
            break
        if time.perf_counter() - t0 > limit:
            print(f"only {len(reported & names)} of {len(names)} reported within {limit:g} s")
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


def print_agent_memory(instance: str) -> None:
    mems = [memory_mb(p) for p in agent_pids(instance)]
    if mems:
        rss = sorted(m[0] for m in mems)
        pss = sorted(m[1] for m in mems)
        print(f"agent memory over {len(mems)} agents: resident median {rss[len(rss) // 2]:.1f} MB, "
              f"max {rss[-1]:.1f} MB; proportional (PSS) median {pss[len(pss) // 2]:.1f} MB", flush=True)


def print_cpu_share(pid: int, agents: int, seconds: float, when: str = "") -> None:
    """Measure and print fogd's share of one core over ``seconds`` while ``agents`` send."""
    share = cpu_share(pid, seconds)
    print(f"fogd CPU with {agents} agents sending every second{when}: {share * 100:.1f}% of one core "
          f"(over {seconds:.0f} s)", flush=True)


def timed_cleanup(url: str) -> None:
    """POST /cleanup, printing what it removed and how long that took."""
    t1 = time.perf_counter()
    removed = call(url + "/cleanup", "POST", {})
    print(f"POST /cleanup removed {len(removed['removed'])} nodes in {time.perf_counter() - t1:.2f} s")


def cpu_share(pid: int, seconds: float) -> float:
    """Share of one core ``pid`` used over the next ``seconds``."""
    c0, w0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.perf_counter() - w0)


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
    with tempfile.TemporaryDirectory() as tmp:
        fogd, url = serve(tmp, args.provisioner, instance, max(200, args.nodes), args.analysis_interval,
                          agent_start_jitter=args.jitter, create_parallelism=args.parallelism, image=args.image)
        try:
            t0 = time.perf_counter()
            result = call(url + "/create", "POST", {"fog": args.nodes})
            t_created = time.perf_counter() - t0
            assert not result["failed"], result["failed"]
            t_telemetry = wait_reported(url, {n["name"] for n in result["created"]}, t0, 60)
            print(f"POST /create of {args.nodes} nodes ({result['provisioner']}): all running in {t_created:.2f} s, "
                  f"telemetry from all stored {t_telemetry:.2f} s after the request", flush=True)

            time.sleep(3)
            print_agent_memory(instance)
            print_cpu_share(fogd.pid, args.nodes, args.watch)
            timed_cleanup(url)
        finally:
            fogd.terminate()
            fogd.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
