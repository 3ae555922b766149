"""Built-in normalizer: comfort index (Thom's discomfort index) and alert tier.

Thom's discomfort index, in °C::

    DI = T - 0.55 * (1 - 0.01 * RH) * (T - 14.5)

Below 21 nobody feels discomfort; 21-24 under half the people do; 24-27 most do;
27-29 most suffer; above 29 it is a health risk. The index needs both temperature
and humidity; without either, ``comfortIndex`` is null.

``alertStatus`` is the worst tier any metric reaches against its band in
``[alerts.*]`` of ``fogd.toml`` (temperature, humidity, power, comfort_index).
"""

from __future__ import annotations

from fogd.config import Config
from fogd.model import ALERT_LEVELS, Reading
from fogd.plugins.markers import hookimpl


def discomfort_index(temperature: float, humidity: float) -> float:
    """Thom's discomfort index (°C) from temperature (°C) and relative humidity (%)."""
    return temperature - 0.55 * (1.0 - 0.01 * humidity) * (temperature - 14.5)


def _tier(value: float | None, bounds: tuple[float, float, float, float]) -> int:
    if value is None:
        return 0
    clo, wlo, whi, chi = bounds
    if value <= clo or value >= chi:
        return 2
    if value <= wlo or value >= whi:
        return 1
    return 0


@hookimpl(tryfirst=True)
def fogd_normalize_readings(readings: list[Reading], config: Config) -> None:
    alerts = config.alerts
    tb, hb, pb, cb = (alerts.temperature.bounds(), alerts.humidity.bounds(),
                      alerts.power.bounds(), alerts.comfort_index.bounds())
    for r in readings:
        t, h = r.temperature, r.humidity
        ci = None if t is None or h is None else round(discomfort_index(t, h), 2)
        r.comfortIndex = ci
        r.alertStatus = ALERT_LEVELS[max(_tier(t, tb), _tier(h, hb), _tier(r.power, pb), _tier(ci, cb))]
