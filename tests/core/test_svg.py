"""The shared SVG drawings: control charts keep every breach, bands mark a realised value
outside them, and no label is ever an exponent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from plinth.core.charting import ewma_series
from plinth.core.svg import (
    CONTROL_POINTS,
    band_chart,
    control_chart,
    format_number,
    line_chart,
)


def _starts(n: int) -> list[str]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [(t0 + timedelta(minutes=m)).isoformat() for m in range(n)]


def _dots(svg: str) -> int:
    """How many points the chart's one path of dots draws."""
    return svg.split('class="points" d="')[1].split('"')[0].count("h0")


def _chart(z: np.ndarray) -> str:
    s = ewma_series(z, 0.0, 1.0)
    return control_chart(
        "mean of age", _starts(z.size), z.tolist(), s.ewma.tolist(), s.lower.tolist(),
        s.upper.tolist(), s.breach.tolist(),
    )  # fmt: skip


def test_a_control_chart_draws_centre_limits_points_and_each_breach() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=60)
    z[50:] += 4.0  # a step: the EWMA leaves its limits within a few points
    s = ewma_series(z, 0.0, 1.0)
    svg = _chart(z)
    assert svg.count('class="centre"') == 1 and svg.count('<polyline class="limit"') == 2
    assert _dots(svg) == 60
    assert svg.count('<circle class="breach"') == int(s.breach.sum()) > 0
    assert f"{int(s.breach.sum())} points out of limits" in svg
    calm = _chart(rng.normal(size=30) * 0.1)
    assert 'class="breach"' not in calm and "out of limits" not in calm


def test_a_long_control_chart_is_reduced_but_keeps_a_lone_breach() -> None:
    z = np.zeros(CONTROL_POINTS * 12)
    z[1000] = 40.0  # one wild interval: its EWMA point breaches
    svg = _chart(z)
    assert _dots(svg) == CONTROL_POINTS
    s = ewma_series(z, 0.0, 1.0)
    assert 1 <= svg.count('<circle class="breach"') <= int(s.breach.sum())
    assert f"{int(s.breach.sum())} points out of limits" in svg  # counted before reduction
    limits = svg.split('<polyline class="limit" points="')[1].split('"')[0].split()
    assert len(limits) < 40  # settled limits need only their ends


def test_a_band_marks_a_realised_value_outside_it() -> None:
    inside = band_chart(0.88, 0.8, 0.93, realised=0.9, holdout=0.91)
    assert '<rect class="band"' in inside and 'class="estimate"' in inside
    assert '<circle class="realised"' in inside and "outside" not in inside
    assert 'class="holdout"' in inside
    outside = band_chart(0.88, 0.8, 0.93, realised=0.6, holdout=0.91)
    assert '<circle class="realised outside"' in outside and "(outside the band)" in outside
    assert band_chart(None, None, None) == ""
    only_holdout = band_chart(None, None, None, holdout=0.5)
    assert 'class="holdout"' in only_holdout and "band" not in only_holdout.split("svg", 2)[2]


def test_numbers_and_latencies_never_show_an_exponent() -> None:
    for value in (3.2e-12, 1e-5, 0.00012345, 0.5, 12.3456, 9999.95, 123456.7, 1e15, -2e6):
        assert not re.search(r"\de[+-]?\d", format_number(value)), value
    svg = line_chart("Latency", _starts(3), {"p99": [0.004, 3.21, 1234.0]}, "seconds", 60.0)
    assert "p99: 1234 s" in svg and "e+" not in svg
