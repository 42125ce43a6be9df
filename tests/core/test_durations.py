from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plinth.core.durations import format_duration, parse_duration
from plinth.errors import RequestError


def test_every_unit() -> None:
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration("1.5s") == timedelta(seconds=1.5)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration(" 1h ") == timedelta(hours=1)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("0s", allow_zero=True) == timedelta(0)


@pytest.mark.parametrize("text", ["soon", "", "10", "h", "-1h", "0s", "1y", "1 hour"])
def test_bad_durations_are_422_with_a_hint(text: str) -> None:
    with pytest.raises(RequestError, match="is not a duration") as caught:
        parse_duration(text)
    assert caught.value.code == "request.invalid_duration"
    assert caught.value.status == 422 and "90s" in caught.value.hint


@given(st.integers(min_value=1, max_value=10**7))
def test_format_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)).total_seconds() == seconds
