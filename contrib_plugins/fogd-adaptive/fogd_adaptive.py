"""Adaptive thresholds: each node's normal range, learned from its own recent history.

fogd's built-in rules judge every node against the same numbers. A cold room at 4 °C,
a server closet at 30 °C and a greenhouse at 90 %RH each have their own normal; this
rule learns it per node and per metric from the analysis window and fires when the
newest reading leaves it:

- ``method = "mad"`` (default): the baseline is the median of the window (without the
  newest ``recent`` readings); the spread is the median absolute deviation scaled to a
  standard deviation (×1.4826). Robust: one past spike does not widen the range.
- ``method = "ewma"``: an exponentially weighted mean and variance (``alpha``) over the
  window; follows slow seasonal change more closely.

A reading more than ``k`` spreads away is a warning, more than ``2k`` a critical
finding. Settings live in ``[plugin.adaptive]`` of fogd.toml (see README.md).
"""

from __future__ import annotations

import math
import statistics
from typing import Literal

import msgspec

from fogd import hookimpl
from fogd.analysis import Finding, Window

UNITS = {"temperature": "°C", "humidity": "%RH", "power": "W"}


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    method: Literal["mad", "ewma"] = "mad"
    k: float = 5.0
    alpha: float = 0.1
    recent: int = 3
    min_points: int = 20
    min_spread: float = 0.01
    metrics: list[Literal["temperature", "humidity", "power"]] = msgspec.field(
        default_factory=lambda: ["temperature", "humidity", "power"])


def settings(config) -> Settings:
    try:
        return msgspec.convert(config.plugin.get("adaptive", {}), Settings)
    except msgspec.ValidationError as exc:
        raise ValueError(f"[plugin.adaptive]: {exc}") from None


def baseline(values: list[float], s: Settings) -> tuple[float, float]:
    """(center, spread) of ``values`` by the configured method."""
    if s.method == "mad":
        center = statistics.median(values)
        spread = 1.4826 * statistics.median(abs(v - center) for v in values)
    else:
        center, var = values[0], 0.0
        for v in values[1:]:
            diff = v - center
            center += s.alpha * diff
            var = (1 - s.alpha) * (var + s.alpha * diff * diff)
        spread = math.sqrt(var)
    return center, max(spread, s.min_spread)


class AdaptiveThresholds:
    name = "adaptive_thresholds"

    def evaluate(self, window: Window, config) -> list[Finding]:
        s = settings(config)
        findings = []
        for metric in s.metrics:
            _, values = window.series(metric)
            if len(values) < s.min_points + s.recent:
                continue
            latest = values[-1]
            center, spread = baseline(values[:-s.recent], s)
            score = (latest - center) / spread
            if abs(score) <= s.k:
                continue
            severity = "critical" if abs(score) > 2 * s.k else "warning"
            unit = UNITS[metric]
            findings.append(Finding(
                node=window.node, rule=self.name, severity=severity,
                message=(f"{window.node} {metric} {latest:g} {unit}: {abs(score):.1f} spreads "
                         f"{'above' if score > 0 else 'below'} its learned normal {center:.2f} ± {spread:.2f} {unit}"),
                evidence={"metric": metric, "value": latest, "method": s.method, "center": round(center, 4),
                          "spread": round(spread, 4), "score": round(score, 2), "k": s.k,
                          "window": window.span()}))
        return findings


@hookimpl
def fogd_register_rules():
    return [AdaptiveThresholds()]
