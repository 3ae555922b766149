"""The provisioner contract: what a ``fogd_register_provisioners`` plugin returns.

A provisioner runs node agents somewhere (Docker containers, Swarm services, local
processes) and reports what runs. fogd's :class:`fogd.nodes.NodeManager` decides
names, concurrency, bookkeeping and HTTP; a provisioner only does the backend work.
The built-in ones are ``fogd/plugins/default_docker.py``, ``default_swarm.py`` and
``default_process.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Protocol, runtime_checkable

import msgspec

from fogd.config import Config

#: Labels on everything fogd creates; fogd only ever touches objects carrying its instance label.
LABEL_INSTANCE = "io.fogd.instance"
LABEL_ROLE = "io.fogd.role"
LABEL_NODE = "io.fogd.node"
#: Where container provisioners put server.tls_ca for the agent (FOGD_CA_FILE points there).
AGENT_CA_PATH = "/etc/fogd/ca.pem"


class NodeSpec(msgspec.Struct, frozen=True):
    """A node to start: its name, role, image and the agent's environment.

    ``placement``: constraints on the hosts it may run on, for provisioners that place
    nodes (Swarm: ``node.labels.fogd.fog==true``); ``None`` means the provisioner's
    configured default; provisioners with one host ignore it."""

    name: str
    role: str
    image: str
    env: dict[str, str]
    labels: dict[str, str]
    placement: list[str] | None = None


class NodeState(msgspec.Struct, omit_defaults=True):
    """What a provisioner knows about one node's runtime.

    ``status`` is the backend's word (``created``, ``running``, ``exited``, ``dead``,
    ``removing``); fogd adds ``missing`` (its record has no runtime any more).
    """

    name: str
    role: str
    status: str
    id: str = ""  # container id, process id, service id
    ip: str = ""
    image: str = ""
    created_ms: int = 0
    host: str = ""
    exit_code: int | None = None
    error: str = ""


class ProvisionerContext(msgspec.Struct, frozen=True):
    """What fogd hands a provisioner when it opens it."""

    config: Config
    instance: str
    data_dir: Path


class BackendUnavailable(Exception):
    """The provisioner's backend (e.g. the Docker engine) cannot be reached right now."""


class ProvisionFailed(Exception):
    """One node could not be created; the provisioner has removed what it had made."""


class ImageMissing(ProvisionFailed):
    """``prepare``: the node image is not where the provisioner needs it; the message
    says how to build it."""


@runtime_checkable
class Provisioner(Protocol):
    """Optional attributes fogd reads with getattr: ``self_healing`` (True: the backend
    restarts dead nodes itself, as Swarm does, so fogd's reconciler only replaces nodes
    that are missing) and ``create_parallelism`` (how many ``create`` calls at once,
    instead of nodes.create_parallelism) and ``runs_images`` (False: nodes do not run
    an image, as with local processes; fleet images and upgrades do not apply)."""

    name: str

    async def open(self, ctx: ProvisionerContext) -> None:
        """Connect to the backend. Must not fail when the backend is down (``available`` says so)."""

    async def available(self) -> bool:
        """Can the backend be used right now?"""

    async def prepare(self, image: str) -> None:
        """Check/prepare what every node of a ``/create`` needs (image present, network
        exists). Raise :class:`ProvisionFailed` with an operator-facing message."""

    async def create(self, spec: NodeSpec) -> NodeState:
        """Create and start one node. On failure raise :class:`ProvisionFailed` after
        removing anything half-made, so fogd's view and the backend's agree."""

    async def remove(self, state: NodeState) -> None:
        """Stop and remove one node; only if it carries this instance's label."""

    async def list(self) -> list[NodeState]:
        """Every node of this instance the backend runs (or ran and still holds)."""

    def watch(self) -> AsyncIterator[NodeState]:
        """Status changes as they happen; ends (or raises BackendUnavailable) when the
        backend goes away."""

    async def close(self) -> None:
        """Release connections; never stops nodes (they outlive fogd and are adopted)."""
