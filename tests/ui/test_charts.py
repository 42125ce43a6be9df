"""The console's SVG charts: placed by time, broken at gaps, reduced keeping spikes; styled
by the same rules as the HTML report's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files

from plinth.core.svg import CHART_CSS
from plinth.ui.charts import MAX_POINTS, control_chart, histogram, line_chart, seconds


def _starts(offsets_min: list[int]) -> list[str]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [(t0 + timedelta(minutes=m)).isoformat() for m in offsets_min]


def test_a_line_breaks_where_intervals_are_missing() -> None:
    svg = line_chart("t", _starts([0, 1, 2, 30, 31]), {"a": [1, 2, 3, 4, 5]}, "count", 60.0)
    assert svg.count("<polyline") == 2
    joined = line_chart("t", _starts([0, 1, 2, 3, 4]), {"a": [1, 2, 3, 4, 5]}, "count", 60.0)
    assert joined.count("<polyline") == 1
    assert "a: 5" in joined


def test_a_long_series_keeps_its_spike_and_no_data_says_so() -> None:
    n = MAX_POINTS * 10
    values: list[float | None] = [1.0] * n
    values[1234] = 99.0
    svg = line_chart("t", _starts(list(range(n))), {"p99": values}, "seconds", 60.0)
    points = svg.split('points="')[1].split('"')[0].split()
    assert len(points) <= MAX_POINTS
    assert "99 s" in svg  # the top of the axis is the spike
    assert "no intervals" in line_chart("Latency", [], {"p99": []})
    assert seconds(0.0123) == "12.3 ms" and seconds(1.5) == "1.5 s"


def test_a_histogram_compares_shares_and_drops_an_empty_null_slot() -> None:
    svg = histogram(["a", "b", "(null)"], [50, 50, 0], [1, 3, 0])
    assert "a: reference 50.0%" in svg and "b: window 75.0%" in svg
    assert "(null)" not in svg


def test_the_console_styles_charts_with_the_reports_rules() -> None:
    css = files("plinth.ui").joinpath("static/console.css").read_text()
    assert CHART_CSS in css  # one set of chart rules: a class drawn is a class styled


def test_a_control_chart_needs_its_points() -> None:
    chart = {"statistic": "mean", "section": "age"}
    assert control_chart(chart) == ""  # a report without detail has no points to draw
    starts = _starts([0, 1, 2])
    series = {"starts": starts, "z": [0.0, 3.0, 3.0], "ewma": [0.0, 0.6, 1.08],
              "lower": [-0.6, -0.77, -0.85], "upper": [0.6, 0.77, 0.85],
              "breach": [False, False, True]}  # fmt: skip
    drawn = control_chart({**chart, "series": series})
    assert "mean of age" in drawn and drawn.count('<circle class="breach"') == 1
