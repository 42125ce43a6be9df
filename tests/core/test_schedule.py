"""Cron schedules with an injected clock."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import pytest

from plinth.core import schedule as schedule_module
from plinth.core.schedule import Schedule


def test_doctests() -> None:
    assert doctest.testmod(schedule_module).failed == 0


def test_every_fifteen_minutes_fires_once_per_slot_as_the_clock_moves() -> None:
    s = Schedule("*/15 * * * *")
    now = datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    last, fired = now, []
    for _ in range(60):  # one hour in one-minute steps
        now += timedelta(minutes=1)
        if s.due(last, now):
            fired.append(now.strftime("%H:%M"))
        last = now
    assert fired == ["09:15", "09:30", "09:45", "10:00"]


@pytest.mark.parametrize("bad", ["", "* * *", "61 * * * *", "0 3 * * mon-xyz", 5])
def test_bad_expressions_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="cron expression"):
        Schedule(bad)  # type: ignore[arg-type]
