"""Analysis: rules over each fog node's recent history, findings, and alert lifecycles.

A rule is an object registered through ``fogd_register_rules`` (see :class:`Rule`).
:class:`Analyzer` reads each fog node's window from the store, runs every rule on it
(one rule raising is reported by name; the others still run), records the findings as
events and drives the alerts: a finding opens an alert, repeated findings update it,
``analysis.clear_after`` evaluations without one clear it, an operator can acknowledge
it. ``backtest`` replays stored history through the same rules without writing.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import msgspec

from fogd.config import Config
from fogd.model import iso_ms, now_ms

log = logging.getLogger("fogd.analysis")

Severity = Literal["warning", "critical"]
SEVERITY_RANK = {"warning": 1, "critical": 2}
METRICS = ("temperature", "humidity", "power", "comfortIndex")


class Finding(msgspec.Struct, omit_defaults=True):
    """What a rule concluded about one node: why it fired, with the numbers behind it."""

    node: str
    rule: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = {}


@dataclass
class Window:
    """One node's recent readings, oldest first, column by column (None = not measured).

    Every rule of a pass gets the same Window: rules read it and must not change it
    (``series`` hands out its own lists)."""

    node: str
    role: str
    ts: list[int]
    temperature: list[float | None]
    humidity: list[float | None]
    power: list[float | None]
    comfortIndex: list[float | None] = field(default_factory=list)

    def series(self, metric: str) -> tuple[list[int], list[float]]:
        """The readings of one metric that have a value: ``(timestamps, values)``
        (the window's own lists when every reading has it: do not modify them)."""
        values = getattr(self, metric)
        if None not in values:
            return self.ts, values
        pairs = [(t, v) for t, v in zip(self.ts, getattr(self, metric)) if v is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def span(self) -> dict[str, Any]:
        return {"from": iso_ms(self.ts[0]), "to": iso_ms(self.ts[-1]), "points": len(self.ts)}


@runtime_checkable
class Rule(Protocol):
    """An analysis rule. ``evaluate`` must be quick and side-effect free: it also runs in
    backtests over long histories."""

    name: str

    def evaluate(self, window: Window, config: Config) -> list[Finding]:
        """Findings for this window (empty when the node looks normal)."""


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (sums in C: a pass runs this for every node)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    d = [v - mean for v in values]
    return mean, math.sqrt(sum(map(operator.mul, d, d)) / (n - 1))


def worst(findings: list[Finding]) -> Finding:
    return max(findings, key=lambda f: SEVERITY_RANK[f.severity])


@dataclass
class AlertState:
    """The in-memory view of one live alert, used by both the daemon and backtests."""

    severity: str
    findings: int = 1
    normal_streak: int = 0


def step_alert(alert: AlertState | None, finding: Finding | None, clear_after: int
               ) -> tuple[AlertState | None, str | None]:
    """One evaluation of one (node, rule): the alert after it and what happened
    (``opened``, ``updated``, ``escalated``, ``cleared`` or None)."""
    if finding is not None:
        if alert is None:
            return AlertState(finding.severity), "opened"
        alert.findings += 1
        alert.normal_streak = 0
        if SEVERITY_RANK[finding.severity] > SEVERITY_RANK[alert.severity]:
            alert.severity = finding.severity
            return alert, "escalated"
        return alert, "updated"
    if alert is None:
        return None, None
    alert.normal_streak += 1
    if alert.normal_streak >= clear_after:
        return None, "cleared"
    return alert, None


def run_rules(rules: dict[str, Rule], window: Window, config: Config,
              on_error: Callable[[str, BaseException], None]) -> list[Finding]:
    """Every rule on one window; a rule that raises is reported and skipped."""
    findings: list[Finding] = []
    for name, rule in rules.items():
        try:
            found = rule.evaluate(window, config) or []
        except Exception as exc:
            on_error(name, exc)
            continue
        findings.extend(found)
    return findings


@dataclass
class LiveAlert:
    id: int
    state: str  # open | acknowledged
    alert: AlertState
    message: str
    evidence: dict[str, Any]


_enc = msgspec.json.encode


class Analyzer:
    """Runs the registered rules over fog nodes and keeps the alerts' lifecycle."""

    def __init__(self, config: Config, store: Any, rules: dict[str, Rule],
                 on_rule_error: Callable[[str, BaseException], None]) -> None:
        self.config = config
        self.store = store
        self.rules = {n: r for n, r in rules.items() if n not in config.analysis.rules_disabled}
        self._on_rule_error = on_rule_error
        self._alerts: dict[tuple[int, str], LiveAlert] | None = None
        self._lock = asyncio.Lock()
        self.runs = 0
        self.last_run_ms: int | None = None
        self.last_elapsed_ms: float | None = None

    async def _live(self) -> dict[tuple[int, str], LiveAlert]:
        if self._alerts is None:
            self._alerts = {}
            for id_, node_id, rule, severity, state, findings, streak, message, evidence \
                    in await self.store.live_alerts():
                self._alerts[(node_id, rule)] = LiveAlert(
                    id_, state, AlertState(severity, findings, streak), message, msgspec.json.decode(evidence))
        # a node removed by /cleanup takes its alerts with it (and its id may be reused)
        for key in [k for k in self._alerts if k[0] not in self.store.nodes_by_id]:
            del self._alerts[key]
        return self._alerts

    def acknowledged(self, node_id: int, rule: str) -> None:
        if self._alerts is not None and (node_id, rule) in self._alerts:
            self._alerts[(node_id, rule)].state = "acknowledged"

    async def window(self, node: Any, until_ms: int) -> Window:
        a = self.config.analysis
        rows = await self.store.window(node.id, until_ms - int(a.window * 1000), until_ms, a.max_points)
        return window_of(node.name, node.role, rows)

    async def analyze(self, node: Any | None = None) -> dict[str, Any]:
        """Analyze ``node``, or every fog node; record findings and alert changes."""
        started = time.perf_counter()
        async with self._lock:
            nodes = [node] if node is not None else sorted(
                (n for n in self.store.nodes.values() if n.role == "fog"), key=lambda n: n.name)
            now = now_ms()
            live = await self._live()
            clear_after = self.config.analysis.clear_after
            events: list[tuple] = []
            opened: list[tuple] = []
            opened_keys: list[tuple[tuple[int, str], LiveAlert]] = []
            updated: list[tuple] = []
            cleared: list[tuple] = []
            errors: list[dict[str, str]] = []
            report: dict[str, Any] = {}

            def failed(rule: str, exc: BaseException) -> None:
                errors.append({"rule": rule, "error": f"{type(exc).__name__}: {exc}"})
                self._on_rule_error(rule, exc)

            for n in nodes:
                win = await self.window(n, now)
                findings = run_rules(self.rules, win, self.config, failed) \
                    if len(win.ts) >= self.config.analysis.min_points else []
                by_rule: dict[str, Finding] = {}
                for f in findings:
                    if f.rule not in by_rule or SEVERITY_RANK[f.severity] > SEVERITY_RANK[by_rule[f.rule].severity]:
                        by_rule[f.rule] = f
                changes = []
                for f in findings:
                    events.append((now, n.id, "finding", f.rule, f.severity, f.message, _enc(f.evidence).decode()))
                for rule in self.rules:
                    key = (n.id, rule)
                    cur = live.get(key)
                    f = by_rule.get(rule)
                    state, what = step_alert(cur.alert if cur else None, f, clear_after)
                    if what == "opened":
                        assert f is not None
                        la = LiveAlert(0, "open", state, f.message, f.evidence)  # type: ignore[arg-type]
                        opened.append((n.id, rule, f.severity, f.message, _enc(f.evidence).decode(), now))
                        opened_keys.append((key, la))
                        events.append((now, n.id, "alert_opened", rule, f.severity, f.message, "{}"))
                        changes.append({"rule": rule, "change": "opened", "severity": f.severity})
                    elif what == "cleared":
                        assert cur is not None
                        cleared.append((now, cur.id))
                        del live[key]
                        events.append((now, n.id, "alert_cleared", rule, cur.alert.severity,
                                       f"{n.name} {rule} back to normal for {clear_after} evaluations", "{}"))
                        changes.append({"id": cur.id, "rule": rule, "change": "cleared"})
                    elif cur is not None:
                        if f is not None:
                            cur.message, cur.evidence = f.message, f.evidence
                        updated.append((cur.alert.severity, cur.message, _enc(cur.evidence).decode(), now,
                                        cur.alert.findings, cur.alert.normal_streak, cur.id))
                        if what == "escalated":
                            events.append((now, n.id, "alert_escalated", rule, cur.alert.severity, cur.message, "{}"))
                        if what is not None:
                            changes.append({"id": cur.id, "rule": rule, "change": what,
                                            "severity": cur.alert.severity, "state": cur.state})
                report[n.name] = {"node": n.name, "points": len(win.ts),
                                  "findings": [msgspec.to_builtins(f) for f in findings], "alerts": changes}

            ids = await self.store.record_analysis(events, opened, updated, cleared)
            for (key, la), id_ in zip(opened_keys, ids):
                la.id = id_
                live[key] = la
            for n in nodes:
                for change in report[n.name]["alerts"]:
                    if change["change"] == "opened":
                        change["id"] = live[(n.id, change["rule"])].id
                        change["state"] = "open"
            self.runs += 1
            self.last_run_ms = now
            self.last_elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        return {"analyzed": len(nodes), "rules": sorted(self.rules), "at": now,
                "elapsed_ms": self.last_elapsed_ms, "errors": errors, "nodes": report}

    async def backtest(self, since_ms: int, until_ms: int, step_ms: int, node: Any | None = None
                       ) -> dict[str, Any]:
        """Replay stored history through the rules; report what would have fired. Writes nothing."""
        a = self.config.analysis
        nodes = [node] if node is not None else sorted(
            (n for n in self.store.nodes.values() if n.role == "fog"), key=lambda n: n.name)
        errors: dict[str, str] = {}

        def failed(rule: str, exc: BaseException) -> None:
            errors.setdefault(rule, f"{type(exc).__name__}: {exc}")

        report = {}
        steps = 0
        for n in nodes:
            rows = await self.store.window(n.id, since_ms - int(a.window * 1000), until_ms, 10_000_000)
            ts = [r[0] for r in rows]
            alerts: dict[str, AlertState] = {}
            fired: list[dict[str, Any]] = []
            lo = 0
            t = since_ms
            while t <= until_ms:
                hi = bisect.bisect_right(ts, t)
                lo = bisect.bisect_left(ts, t - int(a.window * 1000), lo, hi)
                start = max(lo, hi - a.max_points)
                win = window_of(n.name, n.role, rows[start:hi])
                findings = run_rules(self.rules, win, self.config, failed) if hi - start >= a.min_points else []
                by_rule = {f.rule: f for f in findings}
                for rule in self.rules:
                    state, what = step_alert(alerts.get(rule), by_rule.get(rule), a.clear_after)
                    if state is None:
                        alerts.pop(rule, None)
                    else:
                        alerts[rule] = state
                    if what in ("opened", "escalated", "cleared"):
                        f = by_rule.get(rule)
                        fired.append({"at": iso_ms(t), "rule": rule, "change": what,
                                      "severity": f.severity if f else None, "message": f.message if f else None})
                steps += 1
                t += step_ms
            report[n.name] = {"node": n.name, "readings": len(rows), "fired": fired,
                              "opened": sum(1 for e in fired if e["change"] == "opened")}
        return {"since": since_ms, "until": until_ms, "step_ms": step_ms, "evaluations": steps,
                "rules": sorted(self.rules), "errors": [{"rule": r, "error": e} for r, e in errors.items()],
                "nodes": report}


def window_of(name: str, role: str, rows: list[tuple]) -> Window:
    """A Window from ``(ts, temperature, humidity, power, comfort)`` rows, oldest first."""
    return Window(node=name, role=role, ts=[r[0] for r in rows], temperature=[r[1] for r in rows],
                  humidity=[r[2] for r in rows], power=[r[3] for r in rows], comfortIndex=[r[4] for r in rows])
