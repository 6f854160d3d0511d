"""Slowing down repeated failed sign-ins, per user name and per client address.

After ``free`` failures in a row for a key, the next attempt for that key must wait
``base_s * 2**(failures - free)`` seconds (capped at ``max_s``) after the last failure;
until then every attempt is refused without checking the password, so guessing runs at a
few tries per hour. A success clears the user name's count (not the address's: one
attacker's own account must not reset the address count). Keys quiet for ``forget_s`` are
forgotten, and at most ``max_keys`` are kept (the oldest go first), so a flood of names
cannot grow memory. The counts live in the process (one central instance per database is
the supported set-up; each instance counts for itself).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LoginThrottle", "ThrottleRule"]


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    free: int
    base_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.base_s * 2 ** min(failures - self.free, 32), self.max_s)


class LoginThrottle:
    def __init__(
        self,
        *,
        per_user: ThrottleRule = ThrottleRule(free=5),
        per_address: ThrottleRule = ThrottleRule(free=20),
        forget_s: float = 3600.0,
        max_keys: int = 10_000,
    ) -> None:
        self.rules = {"user": per_user, "address": per_address}
        self.forget_s = forget_s
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(user: str, address: str) -> list[tuple[str, str]]:
        return [("user", user.lower()), ("address", address)]

    def wait_s(self, keys: list[tuple[str, str]], now_s: float) -> float:
        """Seconds until an attempt for these keys is allowed (0: now)."""
        with self._lock:
            wait = 0.0
            for key in keys:
                failures, last = self._failures.get(key, (0, 0.0))
                if now_s - last > self.forget_s:
                    continue
                wait = max(wait, last + self.rules[key[0]].delay_s(failures) - now_s)
            return wait

    def failed(self, keys: list[tuple[str, str]], now_s: float) -> None:
        with self._lock:
            for key in keys:
                failures, last = self._failures.pop(key, (0, 0.0))
                if now_s - last > self.forget_s:
                    failures = 0
                self._failures[key] = (failures + 1, now_s)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user.lower()), None)
