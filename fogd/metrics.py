"""fogd's own Prometheus metrics, in a registry per daemon (tests run several at once).

Served at ``GET /metrics``; every family passes ``promtool check metrics``.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from fogd import __version__


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.readings_stored = Counter(
            "fogd_readings_stored", "Readings committed to the store.", registry=r)
        self.readings_duplicate = Counter(
            "fogd_readings_duplicate",
            "Readings not stored because their (node, seq) was already stored.", registry=r)
        self.ingest_rejected = Counter(
            "fogd_ingest_rejected", "Ingest requests rejected, by reason.", ["reason"], registry=r)
        self.ingest_latency = Histogram(
            "fogd_ingest_latency_seconds", "Time from reading an /ingest body to its commit.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r)
        self.ingest_streams = Gauge(
            "fogd_ingest_streams", "Open WebSocket ingest streams (GET /ingest), one per connected agent.",
            registry=r)
        self.commit_rows = Histogram(
            "fogd_store_commit_rows", "Readings per group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000), registry=r)
        self.http_requests = Counter(
            "fogd_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=r)
        self.http_latency = Histogram(
            "fogd_http_request_duration_seconds", "HTTP request handling time by route.",
            ["route"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r)
        self.plugin_errors = Counter(
            "fogd_plugin_errors", "Exceptions raised by plugin hook implementations.",
            ["plugin", "hook"], registry=r)
        self.rule_errors = Counter(
            "fogd_rule_errors", "Exceptions raised by analysis rules, by rule.", ["rule"], registry=r)
        self.analysis_runs = Counter("fogd_analysis_runs", "Analysis passes over the fog nodes.", registry=r)
        self.analysis_latency = Histogram(
            "fogd_analysis_duration_seconds", "Time of one analysis pass.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 10.0), registry=r)
        self.nodes = Gauge("fogd_nodes", "Nodes known to fogd, by role, runtime status and liveness.",
                           ["role", "status", "liveness"], registry=r)
        self.fleet_desired = Gauge("fogd_fleet_desired_nodes", "Nodes the declared fleet wants, by role "
                                   "(absent when no fleet is declared).", ["role"], registry=r)
        self.fleet_actions = Counter("fogd_fleet_actions", "Nodes the fleet reconciler and upgrades acted on, "
                                     "by action (create, replace, remove, upgrade, rollback) and outcome.",
                                     ["action", "outcome"], registry=r)
        self.write_queue = Gauge(
            "fogd_ingest_queue_requests", "Ingest requests waiting for the group-commit writer.",
            registry=r)
        self.start_time = Gauge(
            "fogd_start_time_seconds", "When this fogd started, in seconds since the epoch.", registry=r)
        self.start_time.set(time.time())
        Info("fogd_build", "fogd version.", registry=r).info({"version": __version__})
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request; label children are cached (this runs on every request)."""
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.http_requests.labels(route, method, str(status))
        child.inc()
        if status == 101:
            return  # a WebSocket's lifetime is not a request's latency
        hist = self._latency_children.get(route)
        if hist is None:
            hist = self._latency_children[route] = self.http_latency.labels(route)
        hist.observe(seconds)


def total(counter: Counter) -> float:
    """The sum of a counter over all its labels (public API: its collected samples)."""
    return sum(s.value for family in counter.collect() for s in family.samples if s.name.endswith("_total"))
