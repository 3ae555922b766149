#!/usr/bin/env python3
"""Soak: fogd under continuous single-reading ingest for --minutes, with retention and
roll-ups running; prints resident memory every --every seconds and the database size.

    python3 bench/soak.py --minutes 10

Retention is set short (raw readings kept --keep seconds) so purging runs during the
soak; "flat" means RSS and the database file stop growing once retention is reached.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import SINGLE_LUA, free_port, pinned, rss_mb  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--keep", type=float, default=120, help="seconds of raw readings to keep")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "fogd.toml"
        config.write_text(f"[retention]\nraw_days = {args.keep / 86400}\ninterval = 10\n"
                          '[nodes]\nprovisioner = "process"\ninstance = "soak"\n')
        db = Path(tmp) / "soak.sqlite3"
        env = {**os.environ, "FOGD_DB": str(db), "FOGD_LISTEN": f"127.0.0.1:{port}",
               "FOGD_LOG_LEVEL": "warning", "FOGD_CONFIG": str(config)}
        proc = subprocess.Popen(pinned(0, [sys.executable, "-m", "fogd", "serve"]), env=env)
        time.sleep(2)
        script = Path(tmp) / "single.lua"
        script.write_text(SINGLE_LUA.replace("%%", "%"))
        seconds = int(args.minutes * 60)
        load = subprocess.Popen(pinned(1, ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(script),
                                           f"http://127.0.0.1:{port}/ingest"]),
                                stdout=subprocess.PIPE, text=True)
        start = time.time()
        print(f"{'t (s)':>6} {'RSS (MB)':>9} {'db (MB)':>8} {'wal (MB)':>9}", flush=True)
        try:
            while load.poll() is None:
                time.sleep(args.every)
                wal = Path(f"{db}-wal")
                print(f"{time.time() - start:6.0f} {rss_mb(proc.pid):9.1f} {db.stat().st_size / 2**20:8.1f} "
                      f"{(wal.stat().st_size if wal.exists() else 0) / 2**20:9.1f}", flush=True)
            out = load.stdout.read() if load.stdout else ""
            rate = next((line for line in out.splitlines() if "Requests/sec" in line), "").strip()
            print(f"load: {rate}")
        finally:
            load.kill()
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
