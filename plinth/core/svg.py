"""Inline SVG charts as strings: time series, histograms, control charts and metric bands.

One drawing library for the console (``plinth.ui``) and the self-contained HTML report
(``plinth.services.monitoring.report_html``), so both show the same pictures of the same
numbers. Drawn on the server: a page is complete without JavaScript and fetches nothing.
Colours come from CSS classes only (``s0``… ``ref``/``cur``, ``limit``, ``breach``, ``band``),
styled by ``CHART_CSS`` through the page's colour variables, so light and dark themes
restyle them and a strict content security policy (no inline styles) allows them.
A series longer than ``MAX_POINTS`` is reduced to that many buckets, keeping each
bucket's extreme value (a spike or a breach stays visible).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from plinth.core.durations import format_latency

MAX_POINTS = 360
#: Control charts come by the dozen (two per feature): fewer, wider buckets each.
CONTROL_POINTS = 120
WIDTH, HEIGHT = 640, 172
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 24, 22
#: Legends sit in the band above the plot, never over a line.
LEGEND_Y = 13

#: The chart rules both pages carry (the console in console.css, the report inline); they
#: read the colour variables ``--s0``… ``--ref``, ``--cur``, ``--bad``, ``--muted``, ``--line``.
CHART_CSS = """\
svg.chart{width:100%;height:auto;display:block}
svg .axis{stroke:var(--muted);stroke-width:1}svg .grid{stroke:var(--line);stroke-dasharray:3 3}
svg .tick{fill:var(--muted);font-size:10px}svg .legend{font-size:11px;stroke:none}
svg polyline{fill:none;stroke-width:1.6}
svg polyline.s0,svg circle.s0{stroke:var(--s0);fill:var(--s0)}svg polyline.s0{fill:none}
svg polyline.s1,svg circle.s1{stroke:var(--s1);fill:var(--s1)}svg polyline.s1{fill:none}
svg polyline.s2,svg circle.s2{stroke:var(--s2);fill:var(--s2)}svg polyline.s2{fill:none}
svg text.s0{fill:var(--s0)}svg text.s1{fill:var(--s1)}svg text.s2{fill:var(--s2)}
svg.hist{width:220px;height:auto;display:block}
svg rect.ref{fill:var(--ref)}svg rect.cur{fill:var(--cur)}
svg .centre{stroke:var(--muted);stroke-width:1}
svg polyline.limit{stroke:var(--bad);stroke-width:1;stroke-dasharray:5 3;opacity:.8}
svg path.points{fill:none;stroke:var(--muted);stroke-width:3.5;stroke-linecap:round;opacity:.7}
svg circle.breach{fill:var(--bad);stroke:var(--card);stroke-width:1}
svg text.bad{fill:var(--bad)}
svg.band{width:260px;height:auto;display:block}
svg rect.band{fill:var(--s0);opacity:.22}svg line.estimate{stroke:var(--s0);stroke-width:2}
svg circle.realised{fill:var(--s1)}svg circle.realised.outside{fill:var(--bad)}
svg path.holdout{fill:none;stroke:var(--fg);stroke-width:1.4}
"""


def format_count(value: float) -> str:
    """A count for people: 1,234 (fractions of one only when below one)."""
    return f"{value:,.0f}" if value >= 1 or value == 0 else f"{value:.2g}"


def format_number(value: float | int | None, digits: int = 4) -> str:
    """A statistic for people, never an exponent: 0.1234, 12.35, 12,345, < 0.0001.

    >>> format_number(0.123456), format_number(12345.6), format_number(3.2e-12)
    ('0.1235', '12,346', '< 0.0001')
    >>> format_number(None), format_number(7), format_number(-0.5), format_number(9999.9)
    ('—', '7', '-0.5', '10,000')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    floor = 10.0**-digits
    if 0 < abs(value) < floor:
        return f"< {floor:.{digits}f}" if value > 0 else f"> -{floor:.{digits}f}"
    text = f"{value:.{digits}g}"
    return f"{value:,.0f}" if "e" in text else text


UNITS: dict[str, Callable[[float], str]] = {
    "count": format_count,
    "seconds": format_latency,
}


def _buckets(n: int, size: int) -> list[range]:
    """``n`` indices in at most ``size`` consecutive buckets."""
    if n <= size:
        return [range(i, i + 1) for i in range(n)]
    step = n / size
    return [range(int(i * step), int((i + 1) * step)) for i in range(size)]


def _reduce(values: Sequence[float | None], size: int) -> list[float | None]:
    """At most ``size`` points: the largest finite value of each bucket."""
    if len(values) <= size:
        return list(values)
    out: list[float | None] = []
    for bucket in _buckets(len(values), size):
        chunk = [values[i] for i in bucket if values[i] is not None]
        out.append(max(chunk) if chunk else None)  # type: ignore[type-var]
    return out


def _time(label: str) -> str:
    return datetime.fromisoformat(label).strftime("%d %b %H:%M")


def _frame(title: str, starts: Sequence[str], top_label: str, bottom_label: str) -> list[str]:
    """The SVG element, its title, the axis, the top gridline and the corner labels."""
    plot_h = HEIGHT - TOP - BOTTOM
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">'
        f"{escape(top_label)}</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h + 4}" text-anchor="end">'
        f"{escape(bottom_label)}</text>",
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(_time(starts[0]))}</text>',
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{escape(_time(starts[-1]))}</text>",
    ]


def _x_of(times: Sequence[float]) -> Callable[[int], float]:
    plot_w = WIDTH - LEFT - RIGHT
    first, span = times[0], max(times[-1] - times[0], 1e-9)

    def x(i: int) -> float:
        return LEFT + (plot_w * (times[i] - first) / span if len(times) > 1 else plot_w / 2)

    return x


def line_chart(
    title: str,
    starts: Sequence[str],
    series: dict[str, Sequence[float | None]],
    unit: str = "count",
    resolution_s: float | None = None,
) -> str:
    """One chart of one or more series aligned with ``starts`` (None: no value in that
    interval), placed by time: a line breaks where intervals are missing (no traffic).
    ``unit`` is ``count`` or ``seconds`` (shown in ms or s)."""
    fmt = UNITS[unit]
    if not starts:
        return f'<p class="muted">{escape(title)}: no intervals in this window.</p>'
    times = [datetime.fromisoformat(s).timestamp() for s in starts]
    step = max(1, math.ceil(len(times) / MAX_POINTS))
    times = times[::step]
    reduced = {k: _reduce(v, len(times)) for k, v in series.items()}
    gap = 2.5 * max(resolution_s or 0.0, step * (resolution_s or 0.0))
    finite = [v for vs in reduced.values() for v in vs if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0) or 1.0
    plot_h = HEIGHT - TOP - BOTTOM
    x = _x_of(times)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = _frame(title, starts, fmt(top), "0")
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
            f'<text class="legend s{k}" x="{LEFT + 6 + 150 * k}" y="{LEGEND_Y}">'
            f"{escape(legend)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(labels: Sequence[str], reference: Sequence[int], current: Sequence[int]) -> str:
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
    return "".join(parts)


def control_chart(
    title: str,
    starts: Sequence[str],
    z: Sequence[float],
    ewma: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    breach: Sequence[bool],
) -> str:
    """An EWMA chart of standardised points: the centre line at 0, the control limits,
    each point's z (grey dots), the EWMA line, and every breach as a red dot.

    The scale follows the limits and the EWMA; a point beyond it is drawn on the edge,
    so one wild interval does not flatten the chart. Over ``CONTROL_POINTS`` points,
    each bucket shows its most extreme z and EWMA and whether any of it breached.
    """
    if not starts:
        return f'<p class="muted">{escape(title)}: no points in this window.</p>'
    breaches = sum(bool(b) for b in breach)
    times = [datetime.fromisoformat(s).timestamp() for s in starts]
    buckets = _buckets(len(times), CONTROL_POINTS)
    # Per bucket: its last time and limits, its most extreme EWMA and z, any breach.
    at = [b[-1] for b in buckets]
    times = [times[i] for i in at]
    starts = [starts[i] for i in at]
    ewma = [max((ewma[i] for i in b), key=abs) for b in buckets]
    z = [max((z[i] for i in b), key=abs) for b in buckets]
    lower = [lower[i] for i in at]
    upper = [upper[i] for i in at]
    breach = [any(breach[i] for i in b) for b in buckets]
    reach = max([*map(abs, ewma), *map(abs, upper), *map(abs, lower), 1e-9]) * 1.25
    plot_h = HEIGHT - TOP - BOTTOM
    x = _x_of(times)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (min(max(v, -reach), reach) + reach) / (2 * reach))

    parts = _frame(title, starts, f"+{reach:.3g}", f"-{reach:.3g}")
    parts.append(
        f'<line class="centre" x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}"/>'
        f'<text class="tick" x="{LEFT - 4}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>'
    )
    # Every point's z as one path of dots (a zero-length segment with round caps each):
    # a 30-day report has ~100 charts, so one element per chart, not one per point.
    dots = "".join(f"M{x(i):.1f} {y(v):.1f}h0" for i, v in enumerate(z))
    parts.append(f'<path class="points" d="{dots}"><title>z of each interval</title></path>')
    for name, limit in (("upper", upper), ("lower", lower)):
        parts.append(
            f'<polyline class="limit" points="{_flat(x, y, limit)}"><title>{name} limit'
            "</title></polyline>"
        )
    if len(ewma) > 1:
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(ewma))
        parts.append(f'<polyline class="s0" points="{line}"/>')
    for i, value in enumerate(ewma):
        if breach[i]:
            parts.append(
                f'<circle class="breach" cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.2">'
                f"<title>{escape(_time(starts[i]))}: EWMA {value:.2f} outside "
                f"{lower[i]:.2f} … {upper[i]:.2f}</title></circle>"
            )
        elif len(ewma) == 1:
            parts.append(f'<circle class="s0" cx="{x(i):.1f}" cy="{y(value):.1f}" r="2"/>')
    legend = f"EWMA {ewma[-1]:+.2f}, limits ±{upper[-1]:.2f}"
    parts.append(f'<text class="legend s0" x="{LEFT + 6}" y="{LEGEND_Y}">{escape(legend)}</text>')
    if breaches:
        parts.append(
            f'<text class="legend bad" x="{WIDTH - RIGHT - 4}" y="{LEGEND_Y}" '
            f'text-anchor="end">{breaches} point{"s" if breaches > 1 else ""} out of limits'
            "</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _flat(x: Callable[[int], float], y: Callable[[float], float], values: list[float]) -> str:
    """A polyline's points, leaving out those on the same pixel row as both neighbours
    (control limits settle after a few points: a long flat run needs only its ends)."""
    if len(values) == 1:
        return f"{LEFT},{y(values[0]):.1f} {WIDTH - RIGHT},{y(values[0]):.1f}"
    rows = [f"{y(v):.1f}" for v in values]
    keep = [
        i for i in range(len(values))
        if i in (0, len(values) - 1) or not rows[i - 1] == rows[i] == rows[i + 1]
    ]  # fmt: skip
    return " ".join(f"{x(i):.1f},{rows[i]}" for i in keep)


def band_chart(
    estimate: float | None,
    lower: float | None,
    upper: float | None,
    realised: float | None = None,
    holdout: float | None = None,
) -> str:
    """One metric on a line: the estimated band (shaded) and its value (a bar), the
    realised value from labels (a dot, red when outside the band) and holdout (a diamond)."""
    values = [v for v in (estimate, lower, upper, realised, holdout) if v is not None]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.15, abs(hi) * 0.01, 1e-3)
    # A metric that lives in [0, 1] (accuracy, AUC, coverage) keeps its axis there.
    bounded = lo >= 0 and hi <= 1
    lo, hi = lo - pad, hi + pad
    if bounded:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    width, height, left, right = 260, 34, 6, 6

    def x(v: float) -> float:
        return left + (width - left - right) * (v - lo) / (hi - lo)

    mid = 14
    parts = [
        f'<svg class="band" viewBox="0 0 {width} {height}" role="img">',
        f'<line class="axis" x1="{left}" y1="{mid}" x2="{width - right}" y2="{mid}"/>',
    ]
    if lower is not None and upper is not None:
        parts.append(
            f'<rect class="band" x="{x(lower):.1f}" y="{mid - 8}" '
            f'width="{max(x(upper) - x(lower), 1):.1f}" height="16"><title>estimated band '
            f"{format_number(lower, 3)} … {format_number(upper, 3)}</title></rect>"
        )
    if estimate is not None:
        parts.append(
            f'<line class="estimate" x1="{x(estimate):.1f}" y1="{mid - 8}" '
            f'x2="{x(estimate):.1f}" y2="{mid + 8}"><title>estimated '
            f"{format_number(estimate, 3)}</title></line>"
        )
    if holdout is not None:
        hx = x(holdout)
        parts.append(
            f'<path class="holdout" d="M{hx:.1f},{mid - 6} L{hx + 5:.1f},{mid} '
            f'L{hx:.1f},{mid + 6} L{hx - 5:.1f},{mid} Z"><title>holdout '
            f"{format_number(holdout, 3)}</title></path>"
        )
    if realised is not None:
        outside = lower is not None and upper is not None and not lower <= realised <= upper
        parts.append(
            f'<circle class="realised{" outside" if outside else ""}" cx="{x(realised):.1f}" '
            f'cy="{mid}" r="4"><title>realised {format_number(realised, 3)}'
            f"{' (outside the band)' if outside else ''}</title></circle>"
        )
    parts.append(
        f'<text class="tick" x="{left}" y="{height - 1}">{escape(format_number(lo, 3))}</text>'
        f'<text class="tick" x="{width - right}" y="{height - 1}" text-anchor="end">'
        f"{escape(format_number(hi, 3))}</text></svg>"
    )
    return "".join(parts)
