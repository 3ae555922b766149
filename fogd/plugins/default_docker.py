"""Built-in provisioner ``docker``: one container per node, through aiodocker.

Containers are named ``fogd-<instance>-<node>``, labelled ``io.fogd.instance``,
``io.fogd.role`` and ``io.fogd.node``, run with an init process (so SIGTERM reaches
the agent and ``docker stop`` is quick) and restart unless stopped. fogd lists,
watches and removes containers only through a label filter on its instance, and
checks the label again before removing anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import aiodocker
from aiodocker.exceptions import DockerError

from fogd.plugins.markers import hookimpl
from fogd.provisioning import (AGENT_CA_PATH, LABEL_INSTANCE, LABEL_NODE, LABEL_ROLE, BackendUnavailable,
                               ImageMissing, NodeSpec, NodeState, ProvisionerContext, ProvisionFailed)

log = logging.getLogger("fogd.docker")

#: Docker statuses that mean "this container is gone or going".
_EVENT_STATUS = {"start": "running", "die": "exited", "oom": "exited", "kill": None, "stop": None,
                 "destroy": "removed", "pause": "paused", "unpause": "running", "create": "created",
                 "restart": "running"}


def _ms(iso: str) -> int:
    """Epoch ms of Docker's ``2026-12-04T16:41:44.123456789Z`` (nanoseconds, UTC)."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?", iso)
    if not m:
        return 0
    seconds = datetime.fromisoformat(m[1]).replace(tzinfo=timezone.utc).timestamp()
    return int(seconds) * 1000 + int((m[2] or "0")[:3].ljust(3, "0"))


class DockerProvisioner:
    name = "docker"

    def __init__(self) -> None:
        self._docker: aiodocker.Docker | None = None
        self._ctx: ProvisionerContext | None = None

    # ------------------------------------------------------------------ connection
    async def open(self, ctx: ProvisionerContext) -> None:
        self._ctx = ctx
        url = ctx.config.docker.host or None
        self._docker = aiodocker.Docker(url=url)

    @property
    def docker(self) -> aiodocker.Docker:
        assert self._docker is not None, "open() first"
        return self._docker

    @property
    def endpoint(self) -> str:
        return self._ctx.config.docker.host if self._ctx and self._ctx.config.docker.host else (
            os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")

    async def available(self) -> bool:
        try:
            async with asyncio.timeout(3):  # not wait_for: it can swallow a cancellation on 3.11
                await self.docker.version()
            return True
        except Exception as exc:  # any failure to talk to the engine means "not now"
            log.debug("docker not available at %s: %r", self.endpoint, exc)
            return False

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()

    # ------------------------------------------------------------------ helpers
    @property
    def _instance_filter(self) -> str:
        assert self._ctx is not None
        return json.dumps({"label": [f"{LABEL_INSTANCE}={self._ctx.instance}"]})

    def _container_name(self, node: str) -> str:
        assert self._ctx is not None
        return f"fogd-{self._ctx.instance}-{node}"

    def _state(self, info: dict[str, Any]) -> NodeState:
        """NodeState from `docker inspect` output."""
        labels = info["Config"]["Labels"] or {}
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), "")
        if not ip and "host" in nets:
            ip = "host"
        state = info.get("State") or {}
        return NodeState(
            name=labels.get(LABEL_NODE, ""), role=labels.get(LABEL_ROLE, "fog"),
            status=state.get("Status", "unknown"), id=info["Id"][:12], ip=ip,
            image=info["Config"].get("Image", ""), created_ms=_ms(info.get("Created", "")),
            exit_code=state.get("ExitCode") if state.get("Status") in ("exited", "dead") else None,
            error=state.get("Error") or "")

    # ------------------------------------------------------------------ provisioning
    async def prepare(self, image: str) -> None:
        try:
            await self.docker.images.inspect(image)
        except DockerError as exc:
            if exc.status == 404:
                raise ImageMissing(
                    f"image {image!r} is not on the Docker host; build it with "
                    f"`docker build -t {image} node_agent/` (or scripts/docker-engine.sh, which "
                    "needs no registry), or set nodes.image") from None
            raise BackendUnavailable(f"docker: {exc.message}") from exc
        network = self._ctx.config.docker.network if self._ctx else "fogd"
        if network in ("host", "none", "bridge"):
            return
        try:
            await self.docker.networks.get(network)
        except DockerError as exc:
            if exc.status != 404:
                raise BackendUnavailable(f"docker: {exc.message}") from exc
            log.info("creating Docker network %r", network)
            try:
                await self.docker.networks.create({
                    "Name": network, "Driver": "bridge", "CheckDuplicate": True,
                    "Labels": {LABEL_INSTANCE: self._ctx.instance if self._ctx else "default"}})
            except DockerError as exc2:
                if exc2.status != 409:  # created concurrently: fine
                    raise ProvisionFailed(f"cannot create Docker network {network!r}: {exc2.message}") from None

    async def create(self, spec: NodeSpec) -> NodeState:
        assert self._ctx is not None
        network = self._ctx.config.docker.network
        host_config: dict[str, Any] = {
            "Init": True,  # python as PID 1 ignores SIGTERM; docker-init forwards it
            "NetworkMode": network,
            "RestartPolicy": {"Name": "unless-stopped"},
        }
        if network != "host":
            host_config["ExtraHosts"] = ["host.docker.internal:host-gateway"]
        if self._ctx.config.server.tls_ca:  # the agent verifies fogd's certificate with it
            host_config["Binds"] = [f"{os.path.abspath(self._ctx.config.server.tls_ca)}:{AGENT_CA_PATH}:ro"]
        config = {
            "Image": spec.image,
            "Env": [f"{k}={v}" for k, v in spec.env.items()],
            "Labels": spec.labels,
            "HostConfig": host_config,
        }
        name = self._container_name(spec.name)
        try:
            container = await self.docker.containers.create(config, name=name)
        except DockerError as exc:
            raise ProvisionFailed(f"create {name}: {exc.message}") from None
        try:
            await container.start()
            info = await container.show()
        except DockerError as exc:
            try:
                await container.delete(force=True)
            except DockerError:
                log.warning("could not remove half-created container %s", name)
            raise ProvisionFailed(f"start {name}: {exc.message}") from None
        return self._state(info)

    async def remove(self, state: NodeState) -> None:
        assert self._ctx is not None
        try:
            container = await self.docker.containers.get(state.id)
            labels = container["Config"]["Labels"] or {}
        except DockerError as exc:
            if exc.status == 404:
                return  # already gone
            raise BackendUnavailable(f"docker: {exc.message}") from exc
        if labels.get(LABEL_INSTANCE) != self._ctx.instance:
            raise ProvisionFailed(f"container {state.id} does not carry {LABEL_INSTANCE}={self._ctx.instance}; "
                                  "fogd leaves it alone")
        try:
            await container.delete(force=True)
        except DockerError as exc:
            if exc.status != 404:
                raise ProvisionFailed(f"remove {state.id}: {exc.message}") from None

    async def list(self) -> list[NodeState]:
        try:
            summaries = await self.docker.containers.list(all=True, filters=self._instance_filter)
            infos = await asyncio.gather(*(self.docker.containers.get(c.id) for c in summaries),
                                         return_exceptions=True)
        except (DockerError, OSError) as exc:
            raise BackendUnavailable(f"docker at {self.endpoint}: {exc}") from exc
        states = []
        for info in infos:
            if isinstance(info, BaseException):
                continue  # removed between list and inspect
            state = self._state(info._container)
            if state.name:
                states.append(state)
        return states

    async def watch(self) -> AsyncIterator[NodeState]:
        """Docker's event stream for this instance's containers, as NodeStates."""
        assert self._ctx is not None
        events = aiodocker.Docker(url=self._ctx.config.docker.host or None)
        try:
            subscriber = events.events.subscribe(
                filters=json.dumps({"type": ["container"], "label": [f"{LABEL_INSTANCE}={self._ctx.instance}"]}))
            while True:
                event = await subscriber.get()
                if event is None:
                    raise BackendUnavailable(f"docker event stream at {self.endpoint} ended")
                status = _EVENT_STATUS.get(event.get("status") or event.get("Action", ""))
                if status is None:
                    continue
                attrs = (event.get("Actor") or {}).get("Attributes") or {}
                if attrs.get(LABEL_INSTANCE) != self._ctx.instance or not attrs.get(LABEL_NODE):
                    continue
                exit_code = attrs.get("exitCode")
                yield NodeState(name=attrs[LABEL_NODE], role=attrs.get(LABEL_ROLE, "fog"), status=status,
                                id=(event.get("id") or "")[:12], image=attrs.get("image", ""),
                                exit_code=int(exit_code) if exit_code is not None else None)
        finally:
            try:
                await events.events.stop()  # raises when the engine already dropped the stream
            except Exception as exc:
                log.debug("stopping the event stream: %r", exc)
            finally:
                await events.close()


@hookimpl
def fogd_register_provisioners():
    return [DockerProvisioner()]
