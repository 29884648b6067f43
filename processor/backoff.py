"""Growing delays between retries, shared by every retry loop of the runtime."""

from __future__ import annotations


class Backoff:
    """Exponential delays for retries: 0.5 s, 1 s, 2 s ... up to `maximum`, reset on success."""

    def __init__(self, maximum: float, initial: float = 0.5) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial
