"""A circuit breaker per upstream and worker: after ``failures`` faults in a row the upstream is
skipped for ``seconds`` (requests get 503 at once instead of each waiting on a timeout); then one
request is let through, and its success closes the circuit again.

>>> breaker = Breaker(failures=2, seconds=10, clock=lambda: 0.0)
>>> breaker.failed(); breaker.failed(); breaker.allow()
False
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Breaker:
    """``on_change(state)`` hears each change: ``"open"`` when faults open the circuit, ``"closed"``
    when a request gets through again (a failed probe keeps it open: no change)."""

    def __init__(self, *, failures: int = 5, seconds: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], Any] | None = None) -> None:
        self.failures, self.seconds, self.clock, self.on_change = failures, seconds, clock, on_change
        self._in_a_row = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def retry_after(self) -> int:
        return max(1, int(self._open_until - self.clock()) + 1)

    def allow(self) -> bool:
        """Whether a request may go to the upstream now (one probe when the pause is over)."""
        if self._in_a_row < self.failures:
            return True
        if self.clock() < self._open_until or self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        was_open = self._in_a_row >= self.failures
        self._in_a_row, self._probing = 0, False
        if was_open and self.on_change is not None:
            self.on_change("closed")

    def failed(self) -> None:
        self._in_a_row += 1
        self._probing = False
        if self._in_a_row >= self.failures:
            self._open_until = self.clock() + self.seconds
            if self._in_a_row == self.failures and self.on_change is not None:
                self.on_change("open")
