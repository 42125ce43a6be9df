"""One grammar for durations everywhere (windows, retention, hold-downs, cool-downs).

A number and a unit: ``ms``, ``s``, ``m``, ``h``, ``d`` or ``w``. The CLI, the HTTP query
parameters and ``plinth.toml`` all parse through ``parse_duration``, so ``90s`` means the
same thing wherever a person types it.
"""

from __future__ import annotations

import re
from datetime import timedelta

from plinth.errors import InvalidDurationError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_UNITS = {
    "ms": "milliseconds",
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}


def parse_duration(text: str, *, what: str = "duration", allow_zero: bool = False) -> timedelta:
    """``90s``, ``15m``, ``1.5h``, ``7d``, ``2w`` as a timedelta; anything else is a 422.

    Zero is refused unless ``allow_zero`` (a zero window is a mistake; "older than 0s" is not).

    >>> parse_duration("90s")
    datetime.timedelta(seconds=90)
    >>> parse_duration("1.5h").total_seconds()
    5400.0
    >>> parse_duration("7d") == timedelta(weeks=1)
    True
    """
    match = _DURATION.match(str(text).strip())
    if not match or (float(match.group(1)) == 0 and not allow_zero):
        raise InvalidDurationError(text, what)
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def format_duration(seconds: float) -> str:
    """The shortest exact spelling ``parse_duration`` reads back.

    >>> format_duration(5400), format_duration(86400), format_duration(0.25)
    ('90m', '1d', '250ms')
    """
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000):g}ms"


def format_latency(seconds: float | None) -> str:
    """A latency for people: milliseconds below a second, seconds above, never an exponent.

    >>> format_latency(0.00321), format_latency(0.4567), format_latency(3.214)
    ('3.21 ms', '457 ms', '3.21 s')
    >>> format_latency(None), format_latency(0.9996), format_latency(1234.0)
    ('—', '1 s', '1234 s')
    """
    if seconds is None:
        return "—"
    ms = seconds * 1000.0
    if abs(ms) < 100:
        return f"{ms:.3g} ms"
    if abs(ms) < 999.5:
        return f"{ms:.0f} ms"
    if abs(seconds) < 99.95:
        return f"{seconds:.3g} s"
    return f"{seconds:.0f} s"
