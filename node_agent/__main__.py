import os
import random
import time

# Start jitter, before the heavy imports: when fogd starts 50 agents at once they do not
# all compete for the CPU (and hit fogd) in the same instant.
jitter = float(os.environ.get("FOGD_START_JITTER") or 0)
if jitter > 0:
    time.sleep(random.uniform(0, jitter))

from node_agent.agent import main  # noqa: E402

raise SystemExit(main())
