"""Failed-attempt limiting: a caller that keeps failing is refused for a while.

``FailureLimiter`` remembers, per key (a client address), the times of its recent failures;
one with ``max_failures`` inside ``window_s`` is refused until the oldest of them leaves the
window. Memory is bounded: at most ``max_keys`` callers are remembered (the least recently
failing are forgotten first), so a flood of addresses cannot grow it.

>>> limiter = FailureLimiter(max_failures=2, window_s=60.0)
>>> limiter.failed("10.0.0.9", now=0.0); limiter.failed("10.0.0.9", now=1.0)
>>> limiter.retry_after("10.0.0.9", now=30.0), limiter.retry_after("10.0.0.7", now=30.0)
(30.0, 0.0)
>>> limiter.retry_after("10.0.0.9", now=60.5)
0.0
"""

from __future__ import annotations

from collections import OrderedDict, deque


class FailureLimiter:
    """At most ``max_failures`` per key within ``window_s`` seconds."""

    def __init__(self, max_failures: int = 10, window_s: float = 60.0, max_keys: int = 10_000):
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, key: str, now: float) -> None:
        """Remember one failure of ``key`` at ``now``."""
        times = self._failures.pop(key, None)
        if times is None:
            times = deque(maxlen=self.max_failures)
        times.append(now)
        self._failures[key] = times  # most recent last
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
