"""The declared fleet: what should run, the plan from what runs to it, and the
reconciler that keeps it so; scaling and rolling upgrades with rollback.

``fogd apply fleet.toml`` / ``POST /fleet`` store a :class:`FleetSpec` (SQLite table
``fleet``); :class:`Fleet` compares it with fogd's node records (kept true to the
backend by :class:`fogd.nodes.NodeManager`) every ``fleet.reconcile_interval`` seconds
and at once when a node's status changes, and fixes the difference through the same
provisioner as ``/create``: missing nodes are created, dead ones replaced under the
same name, extra ones removed (highest numbers first, history kept). Swarm restarts
dead tasks itself (``self_healing``); there fogd only replaces missing services.

Image changes roll a few nodes at a time (``fleet.upgrade_batch``): each upgraded node
must report telemetry within ``fleet.upgrade_timeout``, or every node upgraded so far
goes back to its old image and the declaration keeps the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated, Any, Callable

import msgspec

from fogd.config import Config
from fogd.errors import FogdError, Invalid
from fogd.live import LiveCache
from fogd.model import iso_ms, now_ms
from fogd.nodes import ROLES, NodeManager, Progress, _order
from fogd.store import Node, Store

log = logging.getLogger("fogd.fleet")

#: Node statuses with no runtime behind them.
GONE = frozenset({"missing", "removed"})
#: Statuses of a node that stopped; a backend that does not restart nodes needs fogd to.
STOPPED = frozenset({"exited", "dead"})
#: A node that failed to start is tried again after this long, doubling up to RETRY_MAX_S.
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0


class RoleSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One role of the fleet: how many nodes, and what they run (unset: fogd.toml's)."""

    count: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    image: str = ""
    placement: list[str] | None = None
    interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    anomaly_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


class FleetSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """``fleet.toml`` / the ``POST /fleet`` body: ``image`` for every role, one table per role."""

    image: str = ""
    fog: RoleSpec = msgspec.field(default_factory=RoleSpec)
    cloud: RoleSpec = msgspec.field(default_factory=RoleSpec)

    def role(self, role: str) -> RoleSpec:
        return self.fog if role == "fog" else self.cloud

    def image_for(self, role: str, default: str) -> str:
        return self.role(role).image or self.image or default


class ScaleRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /fleet/scale``: new counts; a role left out keeps its count."""

    fog: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    cloud: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None


class UpgradeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /fleet/upgrade``: roll ``image`` through the fleet (or one ``role``)."""

    image: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    role: str | None = None
    batch: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None


class FleetNotDeclared(FogdError):
    status = 409
    kind = "no_fleet"


class FleetDeclared(FogdError):
    """``/create`` while a fleet is declared: the reconciler would undo it."""

    status = 409
    kind = "fleet_declared"


class Fleet:
    def __init__(self, config: Config, store: Store, nodes: NodeManager, live: LiveCache,
                 acted: Callable[[str, bool], None] | None = None) -> None:
        self.config = config
        self.acted = acted or (lambda action, ok: None)  # counts each node acted on (Prometheus)
        self.store = store
        self.nodes = nodes
        self.live = live
        self.spec: FleetSpec | None = None
        self.revision = 0
        self.updated_ms = 0
        self.last: dict[str, Any] = {}  # the last reconciliation that did something (or failed)
        self.upgrade_state: dict[str, Any] = {}
        self._retry: dict[str, tuple[float, float]] = {}  # node -> (not before, next delay) after a failure
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        row = await self.store.fleet()
        if row is not None:
            self.spec = msgspec.json.decode(row[0], type=FleetSpec)
            self.revision, self.updated_ms = row[1], row[2]
            log.info("fleet revision %d declared: %s", self.revision, _counts(self.spec))
        self.nodes.on_change = self.kick
        self._task = asyncio.create_task(self._loop(), name="fogd-fleet")

    async def stop(self) -> None:
        self.nodes.on_change = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        """Reconcile soon (a node's status changed)."""
        self._kick.set()

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the event fires, and stop() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.fleet.reconcile_interval):
                    await self._kick.wait()
            self._kick.clear()
            if self.spec is None or not self.nodes.backend_ok:
                continue
            try:
                async with self.nodes.lock:
                    await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the backend went away mid-way: report, retry next round
                log.warning("fleet reconciliation failed: %s", exc)
                self.last = {"at": iso_ms(now_ms()), "ok": False, "error": str(exc) or type(exc).__name__}

    # ------------------------------------------------------------------ plan
    def _records(self) -> list[Node]:
        name = self.nodes.provisioner.name if self.nodes.provisioner else ""
        return [n for n in self.store.nodes.values() if n.provisioner == name]

    def _down(self, node: Node) -> bool:
        status = node.runtime.get("status", "")
        healing = getattr(self.nodes.provisioner, "self_healing", False)
        return status in GONE or (not healing and status in STOPPED)

    def plan(self, spec: FleetSpec | None = None) -> dict[str, Any]:
        """Per role, what reconciling ``spec`` (default: the declared one) would do now."""
        spec = spec if spec is not None else self.spec or FleetSpec()
        records = self._records()
        images = getattr(self.nodes.provisioner, "runs_images", True)
        plans: dict[str, Any] = {}
        for role in ROLES:
            want = spec.role(role).count
            image = spec.image_for(role, self.config.nodes.image) if images else "-"
            members = sorted((n for n in records if n.role == role),
                             key=lambda n: (self._down(n), _order(n.name)))
            kept, extra = members[:want], members[want:]
            plans[role] = {
                "desired": want,
                "running": sum(1 for n in members if not self._down(n)),
                "image": image,
                "keep": [n.name for n in kept if not self._down(n)],
                "create": self.nodes.next_names(role, want - len(kept)),
                "replace": [n.name for n in kept if self._down(n)],
                "remove": [n.name for n in extra if n.runtime.get("status") not in GONE],
                "outdated": [n.name for n in kept if images and not self._down(n)
                             and n.runtime.get("image") != image],
            }
        changes = sum(len(p[k]) for p in plans.values() for k in ("create", "replace", "remove", "outdated"))
        return {"in_sync": changes == 0, **plans}

    # ------------------------------------------------------------------ changing the declaration
    def check(self, spec: FleetSpec) -> None:
        total = spec.fog.count + spec.cloud.count
        self.nodes.check_limit(total, f"a fleet of {total} nodes")
        provisioner = self.nodes.require_provisioner()
        if not getattr(provisioner, "runs_images", True) and (spec.image or spec.fog.image or spec.cloud.image):
            raise Invalid(f"the {provisioner.name} provisioner runs the agent that ships with fogd; "
                          "images apply to the docker and swarm provisioners", field="image")

    async def apply(self, spec: FleetSpec, progress: Progress | None = None, batch: int | None = None,
                    timeout: float | None = None) -> dict[str, Any]:
        """Declare ``spec``, reconcile the counts at once, roll changed images (``batch``
        nodes at a time, each reporting within ``timeout`` s); the result."""
        self.check(spec)
        started = time.monotonic()
        async with self.nodes.lock:
            images = {spec.image_for(r, self.config.nodes.image) for r in ROLES if spec.role(r).count}
            for image in images or {None}:
                await self.nodes.prepare(image)  # None: only that the backend answers
            previous = self.spec
            await self._declare(spec)
            result: dict[str, Any] = {"revision": self.revision, **await self._reconcile(progress, prepared=images)}
            plan = self.plan()
            outdated = {r: plan[r]["outdated"] for r in ROLES}
            if any(outdated.values()):
                result["upgrade"] = await self._roll(outdated, progress, batch or self.config.fleet.upgrade_batch,
                                                     timeout or self.config.fleet.upgrade_timeout)
                if not result["upgrade"]["ok"]:  # keep declaring what runs
                    await self._declare(_with_images(spec, previous))
                    result["revision"] = self.revision
        result["elapsed_s"] = round(time.monotonic() - started, 3)
        result["plan"] = self.plan()
        result["ok"] = not result["failed"] and result.get("upgrade", {}).get("ok", True)
        return result

    async def scale(self, fog: int | None, cloud: int | None, progress: Progress | None = None) -> dict[str, Any]:
        """New counts; a role left out keeps its count. Without a declaration, the counts
        start from the nodes that run (so scaling fog never removes cloud nodes)."""
        spec = self.spec
        if spec is None:
            running = {r: sum(1 for n in self._records() if n.role == r and not self._down(n)) for r in ROLES}
            spec = FleetSpec(fog=RoleSpec(count=running["fog"]), cloud=RoleSpec(count=running["cloud"]))
        spec = msgspec.structs.replace(
            spec, fog=msgspec.structs.replace(spec.fog, count=spec.fog.count if fog is None else fog),
            cloud=msgspec.structs.replace(spec.cloud, count=spec.cloud.count if cloud is None else cloud))
        return await self.apply(spec, progress)

    async def upgrade(self, req: UpgradeRequest, progress: Progress | None = None) -> dict[str, Any]:
        if self.spec is None:
            raise FleetNotDeclared("no fleet is declared: `fogd apply fleet.toml` (or fogd scale) first")
        if req.role is not None and req.role not in ROLES:
            raise Invalid(f"role: expected one of {', '.join(ROLES)}, got {req.role!r}", field="role")
        spec = self.spec
        for role in (req.role,) if req.role else ROLES:
            spec = msgspec.structs.replace(spec, **{role: msgspec.structs.replace(spec.role(role), image=req.image)})
        if req.role is None:
            spec = msgspec.structs.replace(spec, image=req.image)
        return await self.apply(spec, progress, batch=req.batch, timeout=req.timeout_s)

    async def withdraw(self) -> bool:
        """Forget the declaration (``/cleanup``): the reconciler stops replacing nodes."""
        async with self.nodes.lock:
            had = await self.store.delete_fleet()
            self.spec, self.revision, self.updated_ms = None, 0, 0
        if had:
            log.info("fleet declaration withdrawn")
        return had

    async def _declare(self, spec: FleetSpec) -> None:
        self._retry.clear()  # a new declaration: every node gets a fresh attempt
        ts = now_ms()
        self.revision = await self.store.save_fleet(msgspec.json.encode(spec).decode(), ts)
        self.spec, self.updated_ms = spec, ts
        log.info("fleet revision %d declared: %s", self.revision, _counts(spec))

    # ------------------------------------------------------------------ reconcile
    def _node_spec(self, name: str, role: str, batch: int, image: str | None = None, position: int = 0) -> Any:
        spec = self.spec or FleetSpec()
        rs = spec.role(role)
        return self.nodes.spec(name, role, batch, image=image or spec.image_for(role, self.config.nodes.image),
                               interval=rs.interval, anomaly_rate=rs.anomaly_rate, placement=rs.placement,
                               position=position)

    async def _reconcile(self, progress: Progress | None = None,
                         prepared: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
        """One pass: remove extras, replace dead nodes, create missing ones (after
        preparing their images, unless ``prepared`` already). Caller holds the nodes
        lock. Returns what it did."""
        plan = self.plan()
        now = time.monotonic()
        waiting = {n for n, (until, _) in self._retry.items() if until > now}  # failed lately: back off
        removals = [n for r in ROLES for n in plan[r]["remove"]]
        replacements = [(n, r) for r in ROLES for n in plan[r]["replace"] if n not in waiting]
        creations = [(n, r) for r in ROLES for n in plan[r]["create"] if n not in waiting]
        if not (removals or replacements or creations):
            return {"created": [], "replaced": [], "removed": [], "failed": []}
        started = time.monotonic()
        for name in removals + [n for n, _ in replacements]:
            log.info("fleet: %s %s (%s)", "removing" if name in removals else "replacing", name,
                     self.store.nodes[name].runtime.get("status", "?"))
        # Replaced nodes are removed from the backend too, whatever fogd last heard of them:
        # a record that says "missing" must not leave a runtime that holds the name.
        retired, failed = await self.nodes.retire(removals + [n for n, _ in replacements])
        if progress is not None:
            for item in retired:
                if item["name"] in removals:
                    await progress({"action": "remove", "ok": True, **item})
        batch = len(replacements) + len(creations)
        specs = [self._node_spec(n, r, batch, position=i) for i, (n, r) in enumerate(replacements + creations)]
        for image in {spec.image for spec in specs} - set(prepared):
            await self.nodes.prepare(image)  # after a restart: network, CA config, the image's presence
        replaced = {n for n, _ in replacements}

        async def report(item: dict[str, Any]) -> None:
            if progress is not None:
                await progress({"action": "replace" if item["name"] in replaced else "create", **item})

        results = await self.nodes.launch(specs, report, started)
        failed += [r for r in results if not r["ok"]]
        for item in retired:
            if item["name"] in removals:
                self.acted("remove", True)
        for r in results:
            self.acted("replace" if r["name"] in replaced else "create", r["ok"])
        for r in results:
            if r["ok"]:
                self._retry.pop(r["name"], None)
            else:  # retry after 5 s, doubling up to 5 min, so a bad placement does not spin
                delay = self._retry.get(r["name"], (0.0, RETRY_FIRST_S))[1]
                self._retry[r["name"]] = (time.monotonic() + delay, min(delay * 2, RETRY_MAX_S))
        done = {"created": [r["name"] for r in results if r["ok"] and r["name"] not in replaced],
                "replaced": [r["name"] for r in results if r["ok"] and r["name"] in replaced],
                "removed": [r["name"] for r in retired if r["name"] in removals], "failed": failed}
        self.last = {"at": iso_ms(now_ms()), "ok": not failed, **done,
                     "elapsed_s": round(time.monotonic() - started, 3)}
        if failed:
            log.warning("fleet: %d node(s) failed: %s", len(failed),
                        "; ".join(f"{f['name']}: {f.get('error', '')}" for f in failed))
        return done

    # ------------------------------------------------------------------ rolling upgrade
    async def _roll(self, outdated: dict[str, list[str]], progress: Progress | None, batch_size: int,
                    timeout: float) -> dict[str, Any]:
        """Replace ``outdated`` nodes with the declared image, ``batch_size`` at a time;
        each must report within ``timeout`` s or all upgraded so far roll back."""
        todo = sorted(((n, r) for r in ROLES for n in outdated[r]), key=lambda x: _order(x[0]))
        old_images = {n: self.store.nodes[n].runtime.get("image", "") for n, _ in todo}
        upgraded: list[tuple[str, str]] = []
        self.upgrade_state = {"started": iso_ms(now_ms()), "nodes": len(todo), "upgraded": 0, "state": "rolling"}
        for i in range(0, len(todo), batch_size):
            group = todo[i:i + batch_size]
            silent = await self._replace_and_watch(group, None, timeout, progress, "upgrade")
            upgraded += group
            self.upgrade_state["upgraded"] = len(upgraded)
            if silent:
                log.warning("upgrade: %s did not report within %g s; rolling back %d node(s)",
                            ", ".join(silent), timeout, len(upgraded))
                self.upgrade_state["state"] = "rolling back"
                still = []
                for j in range(0, len(upgraded), batch_size):
                    back = upgraded[j:j + batch_size]
                    still += await self._replace_and_watch(back, old_images, timeout, progress, "rollback")
                self.upgrade_state = {**self.upgrade_state, "state": "rolled back", "ended": iso_ms(now_ms())}
                return {"ok": False, "silent": silent, "rolled_back": [n for n, _ in upgraded],
                        "not_reporting_after_rollback": still,
                        "detail": f"{', '.join(silent)} did not report telemetry within {timeout:g} s of "
                                  f"running the new image; {len(upgraded)} node(s) went back to their old image"}
        self.upgrade_state = {**self.upgrade_state, "state": "done", "ended": iso_ms(now_ms())}
        return {"ok": True, "upgraded": [n for n, _ in upgraded]}

    async def _replace_and_watch(self, group: list[tuple[str, str]], images: dict[str, str] | None,
                                 timeout: float, progress: Progress | None, action: str) -> list[str]:
        """Replace ``group`` (new image, or ``images`` per node), then wait until each
        reports a reading taken after it ran; the names that stayed silent."""
        await self.nodes.retire([n for n, _ in group])
        specs = [self._node_spec(n, r, len(group), image=images[n] if images else None, position=i)
                 for i, (n, r) in enumerate(group)]
        results = {r["name"]: r for r in await self.nodes.launch(specs)}
        spec = self.spec or FleetSpec()
        interval = max(spec.role(r).interval or self.config.nodes.agent_interval for _, r in group)
        since = now_ms() + interval * 1000  # a reading the old agent cannot have taken
        deadline = time.monotonic() + timeout
        waiting = {n for n, _ in group if results.get(n, {}).get("ok")}
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                node = self.store.nodes.get(name)
                latest = self.live.get(node.id) if node else None
                if latest is not None and latest[0] >= since:
                    waiting.discard(name)
            if waiting:
                await asyncio.sleep(0.25)
        silent = sorted(waiting | {n for n, _ in group if not results.get(n, {}).get("ok")}, key=_order)
        for name, _ in group:
            self.acted(action, name not in silent)
        if progress is not None:
            for name, _ in group:
                r = results.get(name, {"ok": False, "error": "not started"})
                await progress({"action": action, "name": name, "ok": name not in silent,
                                "image": r.get("image", ""), **({"error": r["error"]} if "error" in r else {}),
                                **({"error": f"no telemetry within {timeout:g} s"}
                                   if name in silent and "error" not in r else {})})
        return silent

    # ------------------------------------------------------------------ view
    def hosts(self) -> dict[str, dict[str, int]]:
        """Where the fleet runs: live nodes per backend host and role."""
        out: dict[str, dict[str, int]] = {}
        for node in self._records():
            if not self._down(node):
                per = out.setdefault(node.runtime.get("host") or "-", {})
                per[node.role] = per.get(node.role, 0) + 1
        return dict(sorted(out.items()))

    def view(self) -> dict[str, Any]:
        return {
            "declared": msgspec.to_builtins(self.spec) if self.spec is not None else None,
            "revision": self.revision,
            "updated": iso_ms(self.updated_ms) if self.updated_ms else None,
            "provisioner": self.nodes.provisioner.name if self.nodes.provisioner else None,
            "plan": self.plan() if self.spec is not None else None,
            "hosts": self.hosts(),
            "last_reconcile": self.last or None,
            "upgrade": self.upgrade_state or None,
        }


def _counts(spec: FleetSpec) -> str:
    return ", ".join(f"{spec.role(r).count} {r}" for r in ROLES)


def _with_images(spec: FleetSpec, previous: FleetSpec | None) -> FleetSpec:
    """``spec`` with the images of ``previous`` for the roles whose upgrade was rolled back."""
    before = previous or FleetSpec()
    out = msgspec.structs.replace(spec, image=before.image)
    for role in ROLES:
        out = msgspec.structs.replace(out, **{role: msgspec.structs.replace(out.role(role),
                                                                              image=before.role(role).image)})
    return out
