"""A per-key sliding-window rate limiter kept in memory (one process: behind several control processes
each keeps its own count, which only makes the limit looser by that factor)."""

from __future__ import annotations

from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``limit`` hits per key within ``window_s`` seconds; ``now`` is passed in."""

    def __init__(self, *, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> bool:
        """Count one hit of ``key``; False when it is over the limit (the hit is not counted then)."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._forget_idle(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:  # still full: drop the oldest half
            for key in list(self._hits)[: self._max_keys // 2]:
                del self._hits[key]
