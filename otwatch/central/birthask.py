"""When central asks a sensor to announce itself, at most once per interval per sensor.

Central answers a message from a stream it does not know (a status of a sensor it has no
stream for, events of another epoch) with its own birth for that sensor, whose ``epoch`` is
the one central knows (null: none). The sensor answers a birth of a foreign epoch with its
``SensorBirth``, and central then asks for what it lacks (a snapshot when the sensor had
deleted acknowledged rows). A central started on a fresh database thus learns an already
connected sensor from its retained status, without either restarting. Every events message
of an unknown stream would otherwise be answered, so the question is rate-limited per sensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BirthAsks"]

NS = 1_000_000_000


@dataclass
class BirthAsks:
    interval_ns: int = 10 * NS
    max_sensors: int = 100_000
    """Bound on remembered sensors (topic ids come from the broker's ACL, but stay bounded)."""
    _last: dict[str, int] = field(default_factory=dict)

    def due(self, sensor_id: str, now: int) -> bool:
        """True (and remembered) when ``sensor_id`` was not asked within the interval."""
        last = self._last.get(sensor_id)
        if last is not None and 0 <= now - last < self.interval_ns:
            return False
        if len(self._last) >= self.max_sensors:
            horizon = now - self.interval_ns
            self._last = {k: t for k, t in self._last.items() if t > horizon}
            if len(self._last) >= self.max_sensors:
                return False
        self._last[sensor_id] = now
        return True
