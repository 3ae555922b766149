"""The node lifecycle: create, inspect, clean up, and stay true to the backend.

:class:`NodeManager` owns naming (``fog-4`` after ``fog-3``), bounded concurrency,
fogd's records of its nodes, adoption at start-up and the watch on the backend's
events. The backend work itself is a provisioner plugin (``fogd/provisioning.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any, Awaitable, Callable

import msgspec

from fogd.auth import digest, new_token
from fogd.config import Config
from fogd.errors import ConfigError, FogdError, Invalid, Unavailable
from fogd.live import LiveCache
from fogd.model import iso_ms, now_ms
from fogd.provisioning import (AGENT_CA_PATH, LABEL_INSTANCE, LABEL_NODE, LABEL_ROLE, BackendUnavailable,
                               ImageMissing, NodeSpec, NodeState, Provisioner, ProvisionerContext, ProvisionFailed)
from fogd.store import Node, Store

log = logging.getLogger("fogd.nodes")

ROLES = ("fog", "cloud")
RECONNECT_S = 2.0
#: Seconds Docker takes per container of a batch here (50 in ~3 s, 8 in parallel): how
#: long an agent waits for each node started after it before it starts (spec()).
START_PER_NODE = 0.06
Progress = Callable[[dict[str, Any]], Awaitable[None]]


class PrepareFailed(FogdError):
    """The provisioner cannot start any node (image missing, network refused)."""

    status = 409
    kind = "prepare_failed"


class NodeImageMissing(PrepareFailed):
    kind = "image_missing"


class NodeManager:
    def __init__(self, config: Config, store: Store, live: LiveCache, provisioners: dict[str, Any]) -> None:
        self.config = config
        self.store = store
        self.live = live
        self.provisioners = provisioners
        self.provisioner: Provisioner | None = None
        self.backend_ok = False
        self.backend_error = ""
        self._watch: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # one create/cleanup at a time: names stay unique
        #: Called when a node's backend status changes (the fleet reconciler wakes up).
        self.on_change: Callable[[], None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Pick and open the provisioner, adopt what runs, follow its events."""
        wanted = self.config.nodes.provisioner
        ctx = ProvisionerContext(self.config, self.config.nodes.instance,
                                 self.config.store.resolved_path().parent)
        if wanted == "auto":
            docker = self.provisioners.get("docker")
            if docker is not None:
                await docker.open(ctx)
                if await docker.available():
                    self.provisioner = docker
                else:
                    await docker.close()
            if self.provisioner is None:
                self.provisioner = self.provisioners["process"]
                await self.provisioner.open(ctx)
            log.info("provisioner: %s (auto: %s)", self.provisioner.name,
                     "the Docker engine answered" if self.provisioner.name == "docker"
                     else "no Docker engine answered; node agents run as local processes")
        else:
            if wanted not in self.provisioners:
                raise ConfigError(f"nodes.provisioner: {wanted!r} is not a registered provisioner "
                                  f"(have: {', '.join(sorted(self.provisioners))})")
            self.provisioner = self.provisioners[wanted]
            await self.provisioner.open(ctx)
            log.info("provisioner: %s", wanted)
        try:  # adopt before serving, so the first /nodes/status is already true
            if await self.provisioner.available():
                await self.adopt()
                self._set_backend(True)
        except Exception as exc:
            self._set_backend(False, str(exc) or type(exc).__name__)
        self._watch = asyncio.create_task(self._follow(), name="fogd-node-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.provisioner is not None:
            await self.provisioner.close()

    async def _follow(self) -> None:
        """Adopt, then apply the backend's events; on failure, degrade and reconnect."""
        assert self.provisioner is not None
        while True:
            try:
                if not await self.provisioner.available():
                    raise BackendUnavailable(f"{self.provisioner.name} backend unreachable")
                await self.adopt()
                self._set_backend(True)
                async for state in self.provisioner.watch():
                    await self._apply(state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # BackendUnavailable, connection errors: degrade, retry
                self._set_backend(False, str(exc) or type(exc).__name__)
            await asyncio.sleep(RECONNECT_S)

    def _set_backend(self, ok: bool, error: str = "") -> None:
        if ok and not self.backend_ok:
            log.info("%s backend reachable", self.provisioner.name if self.provisioner else "?")
        elif not ok and (self.backend_ok or error != self.backend_error):
            log.warning("%s backend unavailable: %s; ingest and queries go on, retrying every %.0f s",
                        self.provisioner.name if self.provisioner else "?", error, RECONNECT_S)
        self.backend_ok, self.backend_error = ok, error

    async def adopt(self) -> None:
        """Make fogd's records agree with what the backend runs (start-up, reconnect).

        Under ``self.lock``: a listing taken while nodes are being created or removed
        would mark a node that has just started as missing."""
        async with self.lock:
            await self._adopt()

    async def _adopt(self) -> None:
        assert self.provisioner is not None
        running = {s.name: s for s in await self.provisioner.list()}
        changed = False
        for state in running.values():
            known = self.store.nodes.get(state.name)
            if known is None or known.runtime != _runtime(state):
                if known is None:
                    log.info("adopting %s (%s) from %s", state.name, state.id, self.provisioner.name)
                await self._save(state)
                changed = True
        for node in list(self.store.nodes.values()):
            if node.provisioner == self.provisioner.name and node.name not in running \
                    and node.runtime.get("status") not in ("missing", "removed"):
                await self._save(msgspec.convert({**node.runtime, "status": "missing", "name": node.name,
                                                  "role": node.role}, NodeState))
                changed = True
        if changed and self.on_change is not None:
            self.on_change()

    async def _apply(self, state: NodeState) -> None:
        log.debug("backend event: %s", state)
        node = self.store.nodes.get(state.name)
        if node is None or node.provisioner != (self.provisioner.name if self.provisioner else None):
            if state.status in ("removed", "exited"):
                return  # a node being cleaned up, or never ours to record
            await self.adopt()
            return
        if state.id and node.runtime.get("id") and state.id != node.runtime["id"]:
            return  # news of a runtime this node no longer has (replaced, upgraded)
        if state.status == "created":
            return  # Docker's "create" event can arrive after fogd recorded the start
        runtime = {**node.runtime, "status": state.status}
        for key in ("id", "host", "image", "ip"):  # Swarm moves a node's task between hosts
            value = getattr(state, key)
            if value:
                runtime[key] = value
        if state.exit_code is not None:
            runtime["exit_code"] = state.exit_code
        if state.status == "running":
            runtime.pop("exit_code", None)
        if runtime != node.runtime:
            await self.store.save_node(node.name, node.role, node.provisioner, runtime, node.created_ms)
            if self.on_change is not None:
                self.on_change()

    async def _save(self, state: NodeState) -> Node:
        assert self.provisioner is not None
        return await self.store.save_node(state.name, state.role, self.provisioner.name, _runtime(state),
                                          state.created_ms or now_ms())

    # ------------------------------------------------------------------ create
    def next_names(self, role: str, count: int) -> list[str]:
        pattern = re.compile(rf"^{role}-(\d+)$")
        used = [int(m.group(1)) for name in self.store.nodes if (m := pattern.match(name))]
        start = max(used, default=0) + 1
        return [f"{role}-{i}" for i in range(start, start + count)]

    def agent_url(self) -> str:
        if self.config.nodes.fogd_url:
            return self.config.nodes.fogd_url.rstrip("/")
        host, port, scheme = self.config.server.host, self.config.server.port, self.config.server.scheme
        if self.provisioner is not None and self.provisioner.name == "docker" \
                and self.config.docker.network != "host":
            return f"{scheme}://host.docker.internal:{port}"
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"

    def _in_container(self) -> bool:
        return self.provisioner is not None and self.provisioner.name != "process"

    def spec(self, name: str, role: str, batch: int = 1, image: str = "", interval: float | None = None,
             anomaly_rate: float | None = None, placement: list[str] | None = None,
             position: int = 0) -> NodeSpec:
        """What node ``name`` (the ``position``-th of ``batch`` started together) runs:
        nodes.* defaults, or a fleet declaration's overrides."""
        nodes = self.config.nodes
        interval = nodes.agent_interval if interval is None else interval
        anomaly_rate = nodes.anomaly_rate if anomaly_rate is None else anomaly_rate
        # An agent's Python start costs ~0.1 s of CPU; 50 of them starting while Docker
        # starts the rest of the batch made creation ~1 s slower on 2 cores. So an agent
        # first waits about as long as the nodes after it take to start (START_PER_NODE
        # each), then a random spread that grows with the batch (80 ms a node), each at
        # most agent_start_jitter.
        delay = min(nodes.agent_start_jitter, START_PER_NODE * max(0, batch - 1 - position))
        jitter = min(nodes.agent_start_jitter, 0.08 * batch)
        env = {"FOGD_URL": self.agent_url(), "FOGD_NODE": name, "FOGD_ROLE": role,
               "FOGD_INTERVAL": repr(interval), "FOGD_ANOMALY_RATE": repr(anomaly_rate),
               "FOGD_START_DELAY": repr(round(delay, 3)), "FOGD_START_JITTER": repr(round(jitter, 3)),
               "FOGD_INSTANCE": nodes.instance}
        if self.config.server.tls_ca:
            env["FOGD_CA_FILE"] = AGENT_CA_PATH if self._in_container() else self.config.server.tls_ca
        labels = {LABEL_INSTANCE: nodes.instance, LABEL_ROLE: role, LABEL_NODE: name}
        return NodeSpec(name=name, role=role, image=image or nodes.image, env=env, labels=labels,
                        placement=placement)

    async def _with_agent_token(self, spec: NodeSpec) -> NodeSpec:
        """A token for this node's agent (role agent, this node only), in its environment."""
        token = new_token()
        await self.store.save_token(f"agent:{spec.name}:{now_ms()}", "agent", spec.name, digest(token), now_ms())
        return msgspec.structs.replace(spec, env={**spec.env, "FOGD_TOKEN": token})

    async def create(self, fog: int, cloud: int, progress: Progress | None = None) -> dict[str, Any]:
        """Create ``fog`` + ``cloud`` nodes concurrently; report each as it starts."""
        provisioner = self.require_provisioner()
        total = fog + cloud
        if total < 1:
            raise Invalid("ask for at least one node: fog and cloud are both 0", field="fog")
        async with self.lock:
            existing = sum(1 for n in self.store.nodes.values() if n.provisioner == provisioner.name
                           and n.runtime.get("status") not in ("missing", "removed"))
            self.check_limit(existing + total, f"{existing} nodes exist and {total} more")
            await self.prepare(self.config.nodes.image)
            names = [(n, "fog") for n in self.next_names("fog", fog)] + \
                [(n, "cloud") for n in self.next_names("cloud", cloud)]
            specs = [self.spec(n, role, total, position=i) for i, (n, role) in enumerate(names)]
            started = time.monotonic()
            results = await self.launch(specs, progress, started)
        created = [r for r in results if r["ok"]]
        failed = [r for r in results if not r["ok"]]
        return {"provisioner": provisioner.name, "requested": {"fog": fog, "cloud": cloud},
                "created": created, "failed": failed, "elapsed_s": round(time.monotonic() - started, 3)}

    def require_provisioner(self) -> Provisioner:
        if self.provisioner is None:
            raise Unavailable("fogd is starting; no provisioner yet")
        return self.provisioner

    def check_limit(self, wanted: int, what: str) -> None:
        limit = self.config.nodes.max_nodes
        if wanted > limit:
            raise Invalid(f"{what} would exceed nodes.max_nodes ({limit})", field="fog", max_nodes=limit)

    async def prepare(self, image: str | None) -> None:
        """The backend is reachable and ``image`` (if any) is usable, or the matching 503/409."""
        provisioner = self.require_provisioner()
        if not await provisioner.available():
            raise Unavailable(f"the {provisioner.name} backend is unreachable"
                              f"{': ' + self.backend_error if self.backend_error else ''}; "
                              "fogd keeps serving ingest and queries and reconnects by itself")
        if image is None:
            return
        try:
            await provisioner.prepare(image)
        except ImageMissing as exc:
            raise NodeImageMissing(str(exc), image=image) from None
        except ProvisionFailed as exc:
            raise PrepareFailed(str(exc)) from None
        except BackendUnavailable as exc:
            raise Unavailable(str(exc)) from None

    async def launch(self, specs: list[NodeSpec], progress: Progress | None = None,
                     started: float | None = None) -> list[dict[str, Any]]:
        """Start ``specs`` concurrently (bounded); one result per node, reported as it
        comes. The caller holds ``self.lock`` and has called :meth:`prepare`."""
        provisioner = self.require_provisioner()
        if self.config.auth.enabled and self.config.auth.agent_tokens:
            specs = [await self._with_agent_token(spec) for spec in specs]
        gate = asyncio.Semaphore(self._parallelism())
        started = time.monotonic() if started is None else started

        async def one(spec: NodeSpec) -> dict[str, Any]:
            async with gate:
                try:
                    state = await provisioner.create(spec)
                    node = await self._save(state)
                    result = {**self.view(node), "ok": True}
                except (ProvisionFailed, BackendUnavailable) as exc:
                    result = {"name": spec.name, "role": spec.role, "ok": False, "error": str(exc)}
                    await self._failed(spec.name)
                except Exception as exc:  # a plugin bug must not leave the others hanging
                    log.exception("provisioner %s failed on %s", provisioner.name, spec.name)
                    result = {"name": spec.name, "role": spec.role, "ok": False,
                              "error": f"{type(exc).__name__}: {exc}"}
            result["elapsed_s"] = round(time.monotonic() - started, 3)
            if progress is not None:
                await progress(result)
            return result

        return list(await asyncio.gather(*(one(s) for s in specs)))

    async def _failed(self, name: str) -> None:
        """A create failed and the provisioner removed what it made: a record the backend
        watch wrote meanwhile must not claim the node exists."""
        node = self.store.nodes.get(name)
        if node is not None and node.provisioner == self.require_provisioner().name \
                and node.runtime.get("status") not in ("missing", "removed"):
            await self.store.save_node(name, node.role, node.provisioner, {**node.runtime, "status": "missing"},
                                       node.created_ms)

    def _parallelism(self) -> int:
        return getattr(self.provisioner, "create_parallelism", 0) or self.config.nodes.create_parallelism

    async def _running(self) -> dict[str, NodeState]:
        try:
            return {s.name: s for s in await self.require_provisioner().list()}
        except BackendUnavailable as exc:
            raise Unavailable(f"{exc}; nothing was removed") from None

    async def retire(self, names: list[str], keep_history: bool = True,
                     running: dict[str, NodeState] | None = None) -> tuple[list[dict], list[dict]]:
        """Remove ``names`` from the backend (``running``: its listing, if the caller has
        one) and revoke their agents' tokens; their records stay as ``removed`` (history
        kept) or go with their history. (removed, failed). The caller holds ``self.lock``."""
        provisioner = self.require_provisioner()
        if not names:
            return [], []
        if running is None:
            running = await self._running()
        removed: list[dict] = []
        failed: list[dict] = []

        async def one(name: str) -> None:
            state, record = running.get(name), self.store.nodes.get(name)
            try:
                if state is not None:
                    await provisioner.remove(state)
                removed.append({"name": name, "role": state.role if state else record.role if record else "",
                                "id": state.id if state else record.runtime.get("id", "") if record else ""})
            except (ProvisionFailed, BackendUnavailable) as exc:
                failed.append({"name": name, "error": str(exc)})

        gate = asyncio.Semaphore(self._parallelism())

        async def gated(name: str) -> None:
            async with gate:
                await one(name)

        await asyncio.gather(*(gated(n) for n in names))
        gone = [r["name"] for r in removed]
        for name in gone:
            await self.store.revoke_agent_tokens(name, now_ms())
        if keep_history:
            for name in gone:
                node = self.store.nodes.get(name)
                if node is not None:
                    await self.store.save_node(name, node.role, node.provisioner,
                                               {**node.runtime, "status": "removed"}, node.created_ms)
        else:
            for name in gone:
                node = self.store.nodes.get(name)
                if node is not None:
                    self.live.forget(node.id)
            await self.store.delete_nodes(gone)
        removed.sort(key=lambda r: _order(r["name"]))
        return removed, failed

    # ------------------------------------------------------------------ cleanup
    async def cleanup(self, keep_history: bool = False) -> dict[str, Any]:
        """Remove this instance's nodes from the backend, then (unless ``keep_history``) their history."""
        provisioner = self.require_provisioner()
        async with self.lock:
            running = await self._running()
            records = {n.name for n in self.store.nodes.values() if n.provisioner == provisioner.name
                       and not (keep_history and n.runtime.get("status") == "removed")}
            removed, failed = await self.retire(sorted(set(running) | records), keep_history, running)
        return {"provisioner": provisioner.name, "removed": removed, "failed": failed,
                "history": "kept" if keep_history else "cleared"}

    # ------------------------------------------------------------------ inspection
    def liveness(self, node: Node, now: int) -> tuple[str, int | None]:
        latest = self.live.get(node.id)
        if latest is None:
            return "lost", None
        age = max(0, now - latest[0])
        interval_ms = self.config.nodes.agent_interval * 1000
        if age <= self.config.nodes.stale_after * interval_ms:
            return "online", latest[0]
        if age <= self.config.nodes.lost_after * interval_ms:
            return "stale", latest[0]
        return "lost", latest[0]

    def view(self, node: Node, now: int | None = None) -> dict[str, Any]:
        now = now_ms() if now is None else now
        liveness, last = self.liveness(node, now)
        rt = node.runtime
        return {
            "name": node.name, "role": node.role, "provisioner": node.provisioner,
            "status": rt.get("status", "external" if node.provisioner == "external" else "unknown"),
            "container_id": rt.get("id", ""), "ip": rt.get("ip", ""), "image": rt.get("image", ""),
            "host": rt.get("host", ""), "created": iso_ms(node.created_ms),
            "last_reading": iso_ms(last) if last is not None else None,
            "age_s": round((now - last) / 1000, 3) if last is not None else None,
            "liveness": liveness,
            **({"exit_code": rt["exit_code"]} if "exit_code" in rt else {}),
        }

    def status(self) -> list[dict[str, Any]]:
        now = now_ms()
        return [self.view(n, now) for n in sorted(self.store.nodes.values(), key=lambda n: _order(n.name))]


def _order(name: str) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)-(\d+)$", name)
    return (m.group(1), int(m.group(2)), name) if m else (name, 0, name)


def _runtime(state: NodeState) -> dict[str, Any]:
    d = msgspec.to_builtins(state)
    d.pop("name", None)
    d.pop("role", None)
    d.pop("created_ms", None)
    return d
