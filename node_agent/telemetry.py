"""Synthetic telemetry: smooth random walks around a daily cycle, with injected anomalies.

Each metric is an Ornstein-Uhlenbeck walk (it wanders, but is pulled back to its
daily mean), so consecutive readings look like a real sensor's: no jumps unless an
anomaly is injected. Anomalies (a heat spike, a humidity excursion, a power surge)
last a few readings and happen with probability ``anomaly_rate`` per reading.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

DAY = 86_400.0

#: Per-role baselines: (temperature °C, humidity %RH, power W).
BASELINES = {"fog": (22.0, 45.0, 120.0), "cloud": (24.0, 35.0, 350.0)}


@dataclass
class Walk:
    """Mean-reverting random walk: ``x += -theta * x * dt + sigma * sqrt(dt) * N(0, 1)``."""

    theta: float
    sigma: float
    x: float = 0.0

    def step(self, rng: random.Random, dt: float) -> float:
        self.x += -self.theta * self.x * dt + self.sigma * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        return self.x


@dataclass
class Telemetry:
    role: str
    anomaly_rate: float = 0.01
    seed: int | None = None
    rng: random.Random = field(init=False)
    anomaly: str | None = field(default=None, init=False)
    anomaly_left: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.base = BASELINES.get(self.role, BASELINES["fog"])
        self.phase = self.rng.uniform(-0.05, 0.05) * DAY  # nodes do not peak in lockstep
        self.temp = Walk(theta=0.01, sigma=0.15)
        self.hum = Walk(theta=0.01, sigma=0.4)
        self.load = Walk(theta=0.02, sigma=0.02)
        self.started = time.monotonic()

    def reading(self, now: float, dt: float) -> dict:
        """The next reading at wall-clock ``now`` (epoch s), ``dt`` seconds after the last."""
        rng = self.rng
        day = math.sin(2 * math.pi * ((now + self.phase) % DAY - 6 * 3600) / DAY)  # warmest mid-afternoon
        t_base, h_base, p_base = self.base
        load = min(1.0, max(0.0, 0.35 + 0.15 * day + self.load.step(rng, dt)))
        temperature = t_base + 3.0 * day + self.temp.step(rng, dt) + 4.0 * (load - 0.35)
        humidity = h_base - 6.0 * day + self.hum.step(rng, dt)
        power = p_base * (0.6 + 0.8 * load) + rng.gauss(0.0, 1.5)

        if self.anomaly_left == 0 and rng.random() < self.anomaly_rate:
            self.anomaly = rng.choice(("heat", "humidity", "power"))
            self.anomaly_left = rng.randint(3, 8)
        if self.anomaly_left:
            self.anomaly_left -= 1
            if self.anomaly == "heat":
                temperature += rng.uniform(8.0, 15.0)
            elif self.anomaly == "humidity":
                humidity += rng.uniform(25.0, 40.0)
            else:
                power *= rng.uniform(1.8, 2.5)
        return {
            "temperature": round(temperature, 2),
            "humidity": round(min(100.0, max(0.0, humidity)), 2),
            "power": round(max(0.0, power), 1),
            "extra": {
                "cpu_load": round(load, 3),
                "mem_used_mb": round(180 + 300 * load + rng.gauss(0, 3), 1),
                "uptime_s": round(time.monotonic() - self.started, 1),
            },
        }
