"""Built-in provisioner ``process``: node agents as local processes, no Docker needed.

Each agent runs as ``python -m node_agent`` in its own session (it outlives a fogd
restart, like a container would) with its log in ``<data_dir>/agents/<node>.log``.
Its command line carries ``--fogd-instance=<instance> --fogd-node=<node>``: that is
the label by which fogd finds, adopts and removes only its own agents
(``/proc/<pid>/cmdline``), never another process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import AsyncIterator

from fogd.plugins.markers import hookimpl
from fogd.provisioning import NodeSpec, NodeState, ProvisionerContext, ProvisionFailed

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

log = logging.getLogger("fogd.process")

POLL_S = 0.5


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


class ProcessProvisioner:
    name = "process"
    runs_images = False  # the agent that ships with fogd

    def __init__(self) -> None:
        self._ctx: ProvisionerContext | None = None
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        # pid -> state of every agent seen running (created here or found in /proc): the
        # watch reports each one that exits, even if it lived shorter than a poll.
        self._tracked: dict[str, NodeState] = {}

    async def open(self, ctx: ProvisionerContext) -> None:
        self._ctx = ctx
        (ctx.data_dir / "agents").mkdir(parents=True, exist_ok=True)

    async def available(self) -> bool:
        return True

    async def close(self) -> None:
        for proc in self._children.values():  # reap what exited; running agents stay
            proc.poll()

    def _markers(self, node: str) -> list[str]:
        assert self._ctx is not None
        return [f"--fogd-instance={self._ctx.instance}", f"--fogd-node={node}"]

    def _ours(self, pid: int) -> tuple[str, str] | None:
        """(node, role) if ``pid`` is one of this instance's agents."""
        assert self._ctx is not None
        args = _cmdline(pid)
        if f"--fogd-instance={self._ctx.instance}" not in args:
            return None
        node = next((a.split("=", 1)[1] for a in args if a.startswith("--fogd-node=")), "")
        role = next((a.split("=", 1)[1] for a in args if a.startswith("--fogd-role=")), "fog")
        return (node, role) if node else None

    async def prepare(self, image: str) -> None:
        return None  # nothing to prepare: the agent ships with fogd

    async def create(self, spec: NodeSpec) -> NodeState:
        assert self._ctx is not None
        logfile = self._ctx.data_dir / "agents" / f"{spec.name}.log"
        env = {**os.environ, **spec.env}
        # The agent that ships with this fogd (node_agent/ sits next to fogd/), even when
        # fogd runs from a checkout that is not the installed one.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        try:
            with open(logfile, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "node_agent", *self._markers(spec.name), f"--fogd-role={spec.role}"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, cwd=self._ctx.data_dir)
        except OSError as exc:
            raise ProvisionFailed(f"start agent {spec.name}: {exc}") from None
        self._children[proc.pid] = proc
        await asyncio.sleep(0.05)
        if proc.poll() is not None:
            raise ProvisionFailed(f"agent {spec.name} exited at once with {proc.returncode}; see {logfile}")
        state = NodeState(name=spec.name, role=spec.role, status="running", id=str(proc.pid), ip="127.0.0.1",
                          image="process", created_ms=int(time.time() * 1000), host=os.uname().nodename)
        self._tracked[state.id] = state
        return state

    async def remove(self, state: NodeState) -> None:
        pid = int(state.id) if state.id.isdigit() else 0
        if not pid or not _alive(pid):
            self._reap(pid)
            return
        if self._ours(pid) is None:
            raise ProvisionFailed(f"process {pid} is not one of this fogd's agents; fogd leaves it alone")
        os.kill(pid, signal.SIGTERM)  # the agent flushes what it can and exits
        for _ in range(100):
            await asyncio.sleep(0.05)
            self._reap(pid)
            if not _alive(pid):
                return
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.05)
        self._reap(pid)

    def _reap(self, pid: int) -> None:
        proc = self._children.get(pid)
        if proc is not None and proc.poll() is not None:
            del self._children[pid]

    async def list(self) -> list[NodeState]:
        states = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            ours = self._ours(pid)
            if ours and _alive(pid):
                states.append(NodeState(name=ours[0], role=ours[1], status="running", id=str(pid),
                                        ip="127.0.0.1", image="process", host=os.uname().nodename))
        return states

    async def watch(self) -> AsyncIterator[NodeState]:
        """Poll this instance's agents; report the ones that appear and the ones that exit."""
        self._tracked.update({st.id: st for st in await self.list()})
        while True:
            await asyncio.sleep(POLL_S)
            now = {st.id: st for st in await self.list()}
            for pid, state in list(self._tracked.items()):
                if pid not in now:
                    del self._tracked[pid]
                    proc = self._children.pop(int(pid), None)
                    code = proc.poll() if proc is not None else None
                    yield NodeState(name=state.name, role=state.role, status="exited", id=pid,
                                    image="process", exit_code=code)
            for pid, state in now.items():
                if pid not in self._tracked:
                    self._tracked[pid] = state
                    yield state


@hookimpl
def fogd_register_provisioners():
    return [ProcessProvisioner()]
