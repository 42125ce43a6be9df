"""Full-jitter exponential backoff and Retry-After, with the draw passed in."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

import plinth.core.backoff as backoff
from plinth.core.backoff import Backoff, retry_after_seconds


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(backoff).failed == 0


@given(
    retry=st.integers(0, 40),
    draw=st.floats(0, 1),
    base=st.floats(0.001, 2),
    cap=st.floats(0.001, 60),
)
def test_a_wait_lies_between_zero_and_the_capped_exponential(
    retry: int, draw: float, base: float, cap: float
) -> None:
    policy = Backoff(base, cap)
    wait = policy.delay(retry, draw=draw)
    assert 0.0 <= wait <= min(cap, base * 2**retry) + 1e-12
    assert wait == policy.ceiling(retry) * draw


def test_retry_after_wins_even_past_the_cap() -> None:
    policy = Backoff(0.5, 8.0)
    assert policy.delay(0, draw=0.0, retry_after_s=2.0) == 2.0
    assert policy.delay(0, draw=0.0, retry_after_s=120.0) == 120.0
    assert policy.delay(0, draw=0.0, retry_after_s=-1.0) == 0.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Sat, 05 Dec 2026 09:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Sat, 05 Dec 2026 08:59:00 GMT", now) == 0.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("inf") is None
    assert retry_after_seconds("") is None
