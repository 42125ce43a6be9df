"""Cron schedules for retraining, judged against an injected clock.

A schedule fires when a cron time has passed since the last time it was looked at; the
caller keeps that "last looked" instant and passes ``now`` from its own clock, so tests move
time by hand instead of sleeping. Parsing and iteration are croniter's (five fields, the
usual ``*/15``, ranges, lists and names); times are UTC.

>>> from datetime import UTC, datetime
>>> s = Schedule("0 3 * * *")
>>> s.next_after(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
datetime.datetime(2026, 3, 3, 3, 0, tzinfo=datetime.timezone.utc)
>>> s.due(datetime(2026, 3, 3, 2, 0, tzinfo=UTC), datetime(2026, 3, 3, 3, 0, tzinfo=UTC))
True
>>> s.due(datetime(2026, 3, 3, 3, 0, tzinfo=UTC), datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
False
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import CroniterError, croniter


class Schedule:
    """A five-field cron expression in UTC."""

    def __init__(self, expression: str) -> None:
        if not isinstance(expression, str) or len(expression.split()) != 5:
            raise ValueError(f"{expression!r} is not a five-field cron expression like '0 3 * * *'")
        try:
            croniter(expression, datetime(2000, 1, 1, tzinfo=UTC))
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValueError(f"{expression!r} is not a valid cron expression: {exc}") from exc
        self.expression = expression

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r})"

    def next_after(self, moment: datetime) -> datetime:
        """The first cron time strictly after ``moment`` (UTC)."""
        found = croniter(self.expression, moment.astimezone(UTC)).get_next(datetime)
        assert isinstance(found, datetime)
        return found.astimezone(UTC)

    def due(self, last: datetime, now: datetime) -> bool:
        """Whether a cron time falls in (last, now]."""
        return self.next_after(last) <= now
