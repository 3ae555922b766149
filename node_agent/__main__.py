"""The fogd node agent: synthetic telemetry for one node, delivered without loss."""
import os
import random
import sys
import time

# Start delay and jitter, before the heavy imports: when fogd starts 50 agents at once
# they do not compete with Docker starting the rest of them, nor with each other (and
# hit fogd) in the same instant. fogd sets both (fogd/nodes.py, NodeManager.spec).
delay = float(os.environ.get("FOGD_START_DELAY") or 0) \
    + random.uniform(0, float(os.environ.get("FOGD_START_JITTER") or 0))
if delay > 0:
    time.sleep(delay)

# Memory: an agent posting to an http:// URL needs no OpenSSL, but importing asyncio and
# aiohttp loads it anyway (ssl, and hashlib's _hashlib for digests aiohttp never computes
# here): ~3.5 MB resident of libcrypto and ~2 MB of ssl per agent. Both modules are
# optional to their importers (asyncio and aiohttp go without ssl; hashlib falls back to
# its built-in sha/md5), so mark them absent before those imports. https keeps them.
if not os.environ.get("FOGD_URL", "").lower().startswith("https:") and not os.environ.get("FOGD_CA_FILE"):
    sys.modules["ssl"] = None  # type: ignore[assignment]
    sys.modules["_hashlib"] = None  # type: ignore[assignment]

from node_agent.agent import main  # noqa: E402

raise SystemExit(main())
