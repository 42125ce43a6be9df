"""The console's charts: ``plinth.core.svg``'s drawings, marked safe for Jinja2.

The drawing itself is shared with the HTML monitoring report, so the console and the
report draw the same pictures; here it only becomes ``Markup`` (the SVG is built with
every label escaped). console.css carries ``CHART_CSS``'s rules (tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from plinth.core import svg
from plinth.core.durations import format_latency

MAX_POINTS = svg.MAX_POINTS


def seconds(value: float) -> str:
    """A latency for people: 8.1 ms, 412 ms, 1.12 s."""
    return format_latency(value)


def line_chart(
    title: str,
    starts: Sequence[str],
    series: dict[str, Sequence[float | None]],
    unit: str = "count",
    resolution_s: float | None = None,
) -> Markup:
    return Markup(svg.line_chart(title, starts, series, unit, resolution_s))


def histogram(labels: Sequence[str], reference: Sequence[int], current: Sequence[int]) -> Markup:
    return Markup(svg.histogram(labels, reference, current))


def control_chart(chart: dict[str, Any]) -> Markup:
    """One of the report's control charts (with its ``series``: a detail report)."""
    s = chart.get("series")
    if not s:
        return Markup("")
    title = f"{chart['statistic']} of {chart['section']}"
    return Markup(
        svg.control_chart(
            title, s["starts"], s["z"], s["ewma"], s["lower"], s["upper"], s["breach"]
        )
    )
