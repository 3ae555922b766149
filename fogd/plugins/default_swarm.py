"""Built-in provisioner ``swarm``: one Docker Swarm service per node, through aiodocker.

The mapping: node ``fog-7`` is the replicated service ``fogd-<instance>-fog-7`` with one
replica. The service name is the node's stable name — Swarm replaces a dead task of
the same service (restart policy ``any``), so the node comes back as ``fog-7`` on
whichever host the scheduler picks — and each node keeps its own environment (its
agent token). 200 nodes are 200 small services: creating them is a few hundred
milliseconds of API calls, and fogd reads every task's state with one ``GET /tasks``
per poll (Swarm 20.10 has no task event stream).

Services and their containers carry ``io.fogd.instance``, ``io.fogd.role`` and
``io.fogd.node``; fogd lists and removes services only through its instance label and
checks it again before removing anything. Placement comes from ``[swarm]`` (per-role
constraints on host labels, an optional spread preference), as do the restart delay
and resource limits. The node image must be present on the hosts (or pullable from a
registry they can reach): fogd never pulls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from aiodocker.exceptions import DockerError

from fogd.plugins.default_docker import DockerProvisioner, _ms
from fogd.plugins.markers import hookimpl
from fogd.provisioning import (AGENT_CA_PATH, LABEL_INSTANCE, LABEL_NODE, LABEL_ROLE, BackendUnavailable,
                               ImageMissing, NodeSpec, NodeState, ProvisionFailed)

log = logging.getLogger("fogd.swarm")

#: Task states that mean this attempt is over; Swarm starts another (restart policy).
ENDED = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")
NANO = 1_000_000_000
STOP_GRACE_S = 10  # SIGTERM, then SIGKILL: the agent flushes what it holds in between


class SwarmProvisioner(DockerProvisioner):
    name = "swarm"
    #: Swarm restarts dead nodes itself; fogd's reconciler only replaces missing services.
    self_healing = True

    def __init__(self) -> None:
        super().__init__()
        self._hosts: dict[str, str] = {}  # swarm node id -> hostname
        self._ca_config: dict[str, str] | None = None

    @property
    def create_parallelism(self) -> int:
        return self._ctx.config.swarm.create_parallelism if self._ctx else 8

    # ------------------------------------------------------------------ helpers
    async def _swarm_state(self) -> tuple[bool, str]:
        """(is this engine a usable Swarm manager, why not)."""
        try:
            info = await self.docker.system.info()
        except (DockerError, OSError) as exc:
            raise BackendUnavailable(f"docker at {self.endpoint}: {exc}") from exc
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            return False, (f"the Docker engine at {self.endpoint} is not in a swarm "
                           f"(LocalNodeState={swarm.get('LocalNodeState') or 'inactive'}); run "
                           "`docker swarm init` there, or point docker.host at a manager")
        if not swarm.get("ControlAvailable"):
            return False, (f"the Docker engine at {self.endpoint} is a swarm worker; fogd needs a manager "
                           "(point docker.host or DOCKER_HOST at one)")
        return True, ""

    async def available(self) -> bool:
        if not await super().available():
            return False
        try:
            ok, why = await self._swarm_state()
        except BackendUnavailable:
            return False
        if not ok:
            log.debug("swarm not available: %s", why)
        return ok

    async def _host(self, node_id: str) -> str:
        if node_id and node_id not in self._hosts:
            try:
                for n in await self.docker.nodes.list():
                    self._hosts[n["ID"]] = (n.get("Description") or {}).get("Hostname", n["ID"][:12])
            except DockerError as exc:
                log.debug("listing swarm nodes: %s", exc)
        return self._hosts.get(node_id, node_id[:12])

    async def _node_state(self, service: Mapping[str, Any], task: Mapping[str, Any] | None) -> NodeState:
        spec = service["Spec"]
        labels = spec.get("Labels") or {}
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
        if task is None:
            return NodeState(name=labels.get(LABEL_NODE, ""), role=labels.get(LABEL_ROLE, "fog"), status="new",
                             id=service["ID"][:12], image=image, created_ms=_ms(service.get("CreatedAt", "")))
        status = task.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        nets = spec["TaskTemplate"].get("Networks") or []
        return NodeState(
            name=labels.get(LABEL_NODE, ""), role=labels.get(LABEL_ROLE, "fog"),
            status=status.get("State", "unknown"), id=service["ID"][:12],
            ip="host" if any(n.get("Target") == "host" for n in nets) else "",
            image=image, created_ms=_ms(service.get("CreatedAt", "")),
            host=await self._host(task.get("NodeID", "")),
            exit_code=container.get("ExitCode") if status.get("State") in ENDED else None,
            error=status.get("Err") or "")

    @staticmethod
    def _current(tasks: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """The task Swarm wants running (the newest), else the newest one at all."""
        if not tasks:
            return None
        wanted = [t for t in tasks if t.get("DesiredState") == "running"] or tasks
        return max(wanted, key=lambda t: (t.get("Version") or {}).get("Index", 0))

    # ------------------------------------------------------------------ provisioning
    async def prepare(self, image: str) -> None:
        ok, why = await self._swarm_state()
        if not ok:
            raise ProvisionFailed(why)
        try:
            await self.docker.images.inspect(image)
        except DockerError as exc:
            if exc.status != 404:
                raise BackendUnavailable(f"docker: {exc.message}") from exc
            hosts = await self.docker.nodes.list()
            if len(hosts) <= 1:
                raise ImageMissing(
                    f"image {image!r} is not on the swarm's only host; build it with "
                    f"`docker build -t {image} node_agent/` (or scripts/docker-engine.sh), or set nodes.image"
                ) from None
            log.warning("image %r is not on the manager; the other %d hosts must have it (fogd never pulls)",
                        image, len(hosts) - 1)
        if self._ctx and self._ctx.config.server.tls_ca:
            self._ca_config = await self._ensure_ca_config(Path(self._ctx.config.server.tls_ca))

    async def _ensure_ca_config(self, path: Path) -> dict[str, str]:
        """fogd's CA certificate as a Swarm config (named by its hash), for agents on any host."""
        assert self._ctx is not None
        data = path.read_text()
        name = f"fogd-{self._ctx.instance}-ca-{hashlib.sha256(data.encode()).hexdigest()[:12]}"
        try:
            found = await self.docker.configs.list(filters={"name": name})
            match = next((c for c in found if c["Spec"]["Name"] == name), None)
            config_id = match["ID"] if match else (await self.docker.configs.create(
                name, data, labels={LABEL_INSTANCE: self._ctx.instance}))["ID"]
        except DockerError as exc:
            raise ProvisionFailed(f"cannot store the CA certificate as swarm config {name!r}: {exc.message}") from None
        return {"ConfigID": config_id, "ConfigName": name}

    def _task_template(self, spec: NodeSpec) -> dict[str, Any]:
        assert self._ctx is not None
        sw = self._ctx.config.swarm
        placement: dict[str, Any] = {"Constraints": spec.placement if spec.placement is not None
                                     else sw.placement(spec.role)}
        if sw.spread:
            placement["Preferences"] = [{"Spread": {"SpreadDescriptor": sw.spread}}]
        limits: dict[str, int] = {}
        if sw.cpus:
            limits["NanoCPUs"] = int(sw.cpus * NANO)
        if sw.memory_mb:
            limits["MemoryBytes"] = sw.memory_mb * 1024 * 1024
        container: dict[str, Any] = {
            "Image": spec.image, "Env": dict(spec.env), "Labels": dict(spec.labels),
            "Init": True,  # python as PID 1 ignores SIGTERM; docker-init forwards it
            "StopGracePeriod": STOP_GRACE_S * NANO,
        }
        if self._ca_config is not None:
            container["Configs"] = [{**self._ca_config, "File": {"Name": AGENT_CA_PATH, "UID": "0", "GID": "0",
                                                                  "Mode": 0o444}}]
        return {
            "ContainerSpec": container,
            "Networks": [{"Target": sw.network}],
            "RestartPolicy": {"Condition": "any", "Delay": int(sw.restart_delay * NANO), "MaxAttempts": 0},
            "Resources": {"Limits": limits},
            "Placement": placement,
        }

    async def create(self, spec: NodeSpec) -> NodeState:
        assert self._ctx is not None
        name = self._container_name(spec.name)  # the service's name: fogd-<instance>-<node>
        try:
            created = await self.docker.services.create(
                self._task_template(spec), name=name, labels=dict(spec.labels),
                mode={"Replicated": {"Replicas": 1}})
        except DockerError as exc:
            raise ProvisionFailed(f"create service {name}: {exc.message}") from None
        service_id = created["ID"]
        try:
            return await self._wait_running(service_id, name)
        except BaseException:
            try:
                await self.docker.services.delete(service_id)
            except DockerError:
                log.warning("could not remove half-created service %s", name)
            raise

    async def _wait_running(self, service_id: str, name: str) -> NodeState:
        """Until the service's task runs; ProvisionFailed when it is rejected, fails or
        is not running within swarm.start_timeout (the task's own error is the reason)."""
        assert self._ctx is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ctx.config.swarm.start_timeout
        delay = 0.1
        while True:
            try:
                service = await self.docker.services.inspect(service_id)
                task = self._current(await self.docker.tasks.list(filters={"service": service_id}))
            except DockerError as exc:
                raise ProvisionFailed(f"service {name}: {exc.message}") from None
            state = await self._node_state(service, task)
            if state.status == "running":
                return state
            if state.status in ("rejected", "failed"):
                raise ProvisionFailed(f"service {name}: task {state.status}: {state.error or 'no reason given'}")
            if loop.time() > deadline:
                raise ProvisionFailed(
                    f"service {name}: task still {state.status} after {self._ctx.config.swarm.start_timeout:g} s"
                    f"{': ' + state.error if state.error else ''} (check [swarm] placement_* against "
                    "`docker node ls` labels, and that the image is on the hosts)")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def remove(self, state: NodeState) -> None:
        assert self._ctx is not None
        try:
            service = await self.docker.services.inspect(state.id)
        except DockerError as exc:
            if exc.status == 404:
                return  # already gone
            raise BackendUnavailable(f"docker: {exc.message}") from exc
        labels = service["Spec"].get("Labels") or {}
        if labels.get(LABEL_INSTANCE) != self._ctx.instance:
            raise ProvisionFailed(f"service {state.id} does not carry {LABEL_INSTANCE}={self._ctx.instance}; "
                                  "fogd leaves it alone")
        try:
            live = [t["ID"] for t in await self.docker.tasks.list(filters={"service": service["ID"]})
                    if (t.get("Status") or {}).get("State") not in ENDED]
            await self.docker.services.delete(service["ID"])
        except DockerError as exc:
            if exc.status != 404:
                raise ProvisionFailed(f"remove service {state.id}: {exc.message}") from None
            return
        await self._wait_stopped(service["ID"], live)

    async def _wait_stopped(self, service_id: str, task_ids: list[str]) -> None:
        """Until the removed service's tasks have stopped: the agent sends its last readings
        on SIGTERM, and they must arrive before fogd forgets (or replaces) the node. The
        tasks stay listed (by id) until their containers are down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_S + 5
        while task_ids and loop.time() < deadline:
            try:
                tasks = await self.docker.tasks.list(filters={"id": task_ids})
            except DockerError:
                return
            if all((t.get("Status") or {}).get("State") in ENDED for t in tasks):
                return
            await asyncio.sleep(0.2)
        if task_ids:
            log.warning("service %s: its task is still stopping after %d s", service_id[:12], STOP_GRACE_S + 5)

    async def list(self) -> list[NodeState]:
        assert self._ctx is not None
        try:
            services = await self.docker.services.list(filters={"label": f"{LABEL_INSTANCE}={self._ctx.instance}"})
            tasks = await self.docker.tasks.list(filters={"desired-state": "running"}) if services else []
        except (DockerError, OSError) as exc:
            raise BackendUnavailable(f"docker at {self.endpoint}: {exc}") from exc
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(task.get("ServiceID", ""), []).append(task)
        states = []
        for service in services:
            state = await self._node_state(service, self._current(by_service.get(service["ID"], [])))
            if state.name:
                states.append(state)
        return states

    async def watch(self) -> AsyncIterator[NodeState]:
        """Task states by polling (every swarm.poll_interval): what changed, and
        ``removed`` for services that are gone."""
        assert self._ctx is not None
        seen: dict[str, tuple] = {}
        while True:
            await asyncio.sleep(self._ctx.config.swarm.poll_interval)
            current = {s.name: s for s in await self.list()}
            for name, state in current.items():
                key = (state.status, state.id, state.host, state.image)
                if seen.get(name) != key:
                    seen[name] = key
                    yield state
            for name in [n for n in seen if n not in current]:
                del seen[name]
                yield NodeState(name=name, role="fog", status="removed")


@hookimpl
def fogd_register_provisioners():
    return [SwarmProvisioner()]
