"""Built-in analysis rules: temperature, humidity and power anomalies per fog node.

Each rule judges the newest reading of its metric four ways and reports one finding
naming every check that fired, with its numbers:

- ``absolute``: beyond the metric's band in ``[alerts.<metric>]`` (warning / critical);
- ``rate``: changing faster than ``analysis.<metric>_rate`` per minute over the last
  minute (critical at twice the limit);
- ``drift``: a sustained linear trend over the window faster than
  ``analysis.<metric>_drift`` per minute (R² ≥ ``drift_min_r2``);
- ``baseline``: more than ``analysis.zscore`` standard deviations from the node's own
  recent baseline (critical at twice that).
"""

from __future__ import annotations

import bisect
import operator
from typing import Any

from fogd.analysis import SEVERITY_RANK, Finding, Window, mean_std
from fogd.config import Config
from fogd.plugins.markers import hookimpl

UNITS = {"temperature": "°C", "humidity": "%RH", "power": "W"}
RECENT = 3  # the newest readings, kept out of the baseline they are compared with


class MetricAnomaly:
    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.name = f"{metric}_anomaly"
        self.unit = UNITS[metric]

    def evaluate(self, window: Window, config: Config) -> list[Finding]:
        ts, values = window.series(self.metric)
        a = config.analysis
        if len(values) < a.min_points:
            return []
        latest, unit = values[-1], self.unit
        checks: list[tuple[str, str, str, dict[str, Any]]] = []  # (severity, kind, text, evidence)

        clo, wlo, whi, chi = getattr(config.alerts, self.metric).bounds()
        for severity, low, high in (("critical", clo, chi), ("warning", wlo, whi)):
            if latest >= high or latest <= low:
                bound = high if latest >= high else low
                side = "above" if latest >= high else "below"
                checks.append((severity, "absolute", f"{side} {severity} {bound:g} {unit}",
                               {"threshold": bound, "side": side}))
                break

        limit = getattr(a, f"{self.metric}_rate")
        ref = min(bisect.bisect_left(ts, ts[-1] - 60_000), len(ts) - 1)  # the first reading of the last minute
        dt = ts[-1] - ts[ref]
        if dt >= 5_000:
            rate = (latest - values[ref]) / dt * 60_000
            if abs(rate) > limit:
                checks.append(("critical" if abs(rate) > 2 * limit else "warning", "rate",
                               f"{'rising' if rate > 0 else 'falling'} {abs(rate):.2f} {unit}/min (limit {limit:g})",
                               {"per_minute": round(rate, 3), "limit": limit, "over_s": dt / 1000}))

        drift_limit = getattr(a, f"{self.metric}_drift")
        span = ts[-1] - ts[0]
        if span >= a.drift_min_span * 1000 and len(values) >= 3:
            slope, r2 = _trend(ts, values)
            if abs(slope) > drift_limit and r2 >= a.drift_min_r2:
                checks.append(("warning", "drift",
                               f"drifting {slope:+.2f} {unit}/min for {span / 60_000:.1f} min (limit {drift_limit:g})",
                               {"per_minute": round(slope, 4), "r2": round(r2, 3), "limit": drift_limit,
                                "over_s": span / 1000}))

        base = values[:-RECENT]
        if len(base) >= a.min_points:
            mean, std = mean_std(base)
            std = max(std, a.baseline_min_std)
            z = (latest - mean) / std
            if abs(z) > a.zscore:
                checks.append(("critical" if abs(z) > 2 * a.zscore else "warning", "baseline",
                               f"{abs(z):.1f}σ {'above' if z > 0 else 'below'} its baseline {mean:.2f} {unit}",
                               {"zscore": round(z, 2), "mean": round(mean, 3), "std": round(std, 3),
                                "limit": a.zscore, "baseline_points": len(base)}))

        if not checks:
            return []
        severity = max((c[0] for c in checks), key=SEVERITY_RANK.__getitem__)
        message = f"{window.node} {self.metric} {latest:g} {unit}: " + "; ".join(c[2] for c in checks)
        evidence = {"metric": self.metric, "value": latest, "unit": unit, "window": window.span(),
                    "checks": {c[1]: {"severity": c[0], **c[3]} for c in checks}}
        return [Finding(node=window.node, rule=self.name, severity=severity, message=message,  # type: ignore[arg-type]
                        evidence=evidence)]


def _trend(ts: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares slope (per minute) and R² of ``values`` over ``ts`` (centred sums,
    added up in C: every pass runs this for every node and metric)."""
    n = len(values)
    t0 = ts[0]
    mx = (sum(ts) / n - t0) / 60_000
    my = sum(values) / n
    dx = [(t - t0) / 60_000 - mx for t in ts]
    dy = [y - my for y in values]
    sxx = sum(map(operator.mul, dx, dx))
    syy = sum(map(operator.mul, dy, dy))
    sxy = sum(map(operator.mul, dx, dy))
    if sxx == 0 or syy == 0:
        return 0.0, 0.0
    return sxy / sxx, (sxy * sxy) / (sxx * syy)


@hookimpl
def fogd_register_rules():
    return [MetricAnomaly("temperature"), MetricAnomaly("humidity"), MetricAnomaly("power")]
