"""FailureLimiter: per-key windows, and memory bounded whatever the number of keys."""

from __future__ import annotations

from plinth.core.ratelimit import FailureLimiter


def test_failures_age_out_of_the_window_one_by_one() -> None:
    limiter = FailureLimiter(max_failures=3, window_s=10.0)
    for t in (0.0, 4.0, 8.0):
        assert limiter.retry_after("k", t) == 0.0
        limiter.failed("k", t)
    assert limiter.retry_after("k", 9.0) == 1.0  # until the failure at 0 s leaves
    assert limiter.retry_after("k", 10.0) == 0.0  # two left in the window: may try
    limiter.failed("k", 10.0)
    assert limiter.retry_after("k", 11.0) == 3.0  # now until the one at 4 s leaves


def test_a_flood_of_addresses_is_forgotten_oldest_first() -> None:
    limiter = FailureLimiter(max_failures=1, window_s=60.0, max_keys=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}", float(n) / 100)
    assert len(limiter._failures) == 100
    assert limiter.retry_after("10.0.0.0", 10.0) == 0.0  # forgotten
    assert limiter.retry_after("10.0.3.231", 10.0) > 0.0  # the last one is remembered
