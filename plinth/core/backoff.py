"""How long to wait before retrying a call to a service Plinth does not host.

Exponential backoff with *full jitter* (AWS Architecture Blog, "Exponential Backoff and
Jitter"): the n-th retry waits a uniform time in ``[0, min(cap, base * 2**n)]``, so clients
that failed together do not retry together. A server that says when to come back
(``Retry-After``) is obeyed instead, up to the cap. Pure: the random draw is passed in.

>>> policy = Backoff(base_s=0.5, cap_s=8.0)
>>> [policy.delay(n, draw=1.0) for n in range(6)]
[0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
>>> policy.delay(2, draw=0.25), policy.delay(2, draw=0.9, retry_after_s=30.0)
(0.5, 30.0)
>>> retry_after_seconds("7"), retry_after_seconds("soon"), retry_after_seconds(None)
(7.0, None, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: retry ``n`` (0-based) waits up to ``base * 2**n``."""

    base_s: float = 0.5
    cap_s: float = 8.0

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry ``retry``."""
        return min(self.cap_s, self.base_s * math.pow(2.0, retry))

    def delay(self, retry: int, *, draw: float, retry_after_s: float | None = None) -> float:
        """The wait before retry ``retry``; ``draw`` is uniform in [0, 1]. A server's
        ``Retry-After`` wins, uncapped, since it knows when it will answer again."""
        if retry_after_s is not None:
            return max(0.0, retry_after_s)
        return self.ceiling(retry) * min(1.0, max(0.0, draw))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent
    or unreadable (then the usual backoff applies)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
