"""Inline SVG charts for the console: time series and reference-vs-window histograms.

Drawn on the server, so a page is complete without JavaScript and nothing is fetched from
anywhere. Colours come from CSS classes (``s0``, ``s1``… and ``ref``/``cur``), so the
light and dark themes restyle them. A series longer than ``MAX_POINTS`` is reduced to
that many buckets, keeping each bucket's largest value (a spike stays visible).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

MAX_POINTS = 360
WIDTH, HEIGHT = 640, 160
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 22


def seconds(value: float) -> str:
    """A latency for people: 8.1 ms, 412 ms, 1.12 s."""
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


UNITS: dict[str, Callable[[float], str]] = {
    "count": lambda v: f"{v:,.0f}" if v >= 1 or v == 0 else f"{v:.2g}",
    "seconds": seconds,
}


def _reduce(values: Sequence[float | None], size: int) -> list[float | None]:
    """At most ``size`` points: the largest finite value of each bucket."""
    if len(values) <= size:
        return list(values)
    out: list[float | None] = []
    step = len(values) / size
    for i in range(size):
        chunk = [v for v in values[int(i * step) : int((i + 1) * step)] if v is not None]
        out.append(max(chunk) if chunk else None)
    return out


def _time(label: str) -> str:
    at = datetime.fromisoformat(label)
    return at.strftime("%d %b %H:%M")


def line_chart(
    title: str,
    starts: Sequence[str],
    series: dict[str, Sequence[float | None]],
    unit: str = "count",
    resolution_s: float | None = None,
) -> Markup:
    """One chart of one or more series aligned with ``starts`` (None: no value in that
    interval), placed by time: a line breaks where intervals are missing (no traffic).
    ``unit`` is ``count`` or ``seconds`` (shown in ms)."""
    fmt = UNITS[unit]
    if not starts:
        return Markup(f'<p class="muted">{escape(title)}: no intervals in this window.</p>')
    times = [datetime.fromisoformat(s).timestamp() for s in starts]
    step = max(1, math.ceil(len(times) / MAX_POINTS))
    times = times[::step]
    reduced = {k: _reduce(v, len(times)) for k, v in series.items()}
    gap = 2.5 * max(resolution_s or 0.0, step * (resolution_s or 0.0))
    finite = [v for vs in reduced.values() for v in vs if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first, span = times[0], max(times[-1] - times[0], 1e-9)

    def x(i: int) -> float:
        return LEFT + (plot_w * (times[i] - first) / span if len(times) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{escape(fmt(top))}'
        "</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h + 4}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(_time(starts[0]))}</text>',
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{escape(_time(starts[-1]))}</text>",
    ]
    for k, (label, values) in enumerate(reduced.items()):
        runs: list[list[str]] = [[]]
        previous: float | None = None
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v):
                if runs[-1]:
                    runs.append([])
                continue
            if previous is not None and gap and times[i] - previous > gap and runs[-1]:
                runs.append([])
            previous = times[i]
            runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="s{k}" cx="{cx}" cy="{cy}" r="2"/>')
            elif run:
                parts.append(f'<polyline class="s{k}" points="{" ".join(run)}"/>')
        last = next((v for v in reversed(values) if v is not None), None)
        legend = f"{label}: {fmt(last)}" if last is not None else label
        parts.append(
            f'<text class="legend s{k}" x="{LEFT + 6 + 150 * k}" y="{TOP + 12}">'
            f"{escape(legend)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(labels: Sequence[str], reference: Sequence[int], current: Sequence[int]) -> Markup:
    """Reference and window shares per bin, side by side (shares: any window compares)."""
    ref_total, cur_total = max(sum(reference), 1), max(sum(current), 1)
    ref = [r / ref_total for r in reference]
    cur = [c / cur_total for c in current]
    # Drop the null slot when neither side has any: one bar pair less to read.
    if labels and labels[-1] == "(null)" and ref[-1] == 0 and cur[-1] == 0:
        labels, ref, cur = labels[:-1], ref[:-1], cur[:-1]
    top = max([*ref, *cur, 1e-9])
    width, height, bottom = 320, 110, 16
    slot = width / max(len(labels), 1)
    bar = slot * 0.42
    parts = [f'<svg class="hist" viewBox="0 0 {width} {height + bottom}" role="img">']
    for i, label in enumerate(labels):
        x0 = i * slot + slot * 0.08
        for j, (share, cls) in enumerate(((ref[i], "ref"), (cur[i], "cur"))):
            h = share / top * (height - 4)
            parts.append(
                f'<rect class="{cls}" x="{x0 + j * bar:.1f}" y="{height - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                f"{'reference' if cls == 'ref' else 'window'} {share:.1%}</title></rect>"
            )
    parts.append(f'<line class="axis" x1="0" y1="{height}" x2="{width}" y2="{height}"/>')
    if labels:
        parts.append(
            f'<text class="tick" x="0" y="{height + 12}">{escape(labels[0][:18])}</text>'
            f'<text class="tick" x="{width}" y="{height + 12}" text-anchor="end">'
            f"{escape(labels[-1][:18])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
