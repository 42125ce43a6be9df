"""The monitoring report as one self-contained HTML page: inline CSS and SVG, no network.

It renders the JSON report (``Monitor.report`` with ``detail=True``, plus the performance
report ``plinth monitor`` adds) and nothing else, so the page, the API and the terminal
always agree. The charts are ``plinth.core.svg``'s, the console's own drawings; colours
come from CSS variables that follow the reader's light or dark preference, and nothing
needs JavaScript. Latencies read as ms or s, rates as percentages, never an exponent.
"""

from __future__ import annotations

from html import escape
from typing import Any

from plinth.core import svg
from plinth.core.durations import format_latency
from plinth.services.monitoring.report import describe_roles

#: The console's palette (console.css), light and dark from the reader's preference.
_PALETTE = """
:root{color-scheme:light dark;--bg:#f7f7f5;--card:#fff;--fg:#1d1d1f;--muted:#6b6b70;
--line:#e3e3e0;--bad:#b3261e;--bad-bg:#fdecea;--ok:#1e7a34;--ref:#8e9aa6;--cur:#e06c00;
--s0:#2456c7;--s1:#e06c00;--s2:#8b2fc9}
@media (prefers-color-scheme:dark){:root{--bg:#141416;--card:#1e1f22;--fg:#e8e8ea;
--muted:#9a9aa2;--line:#33343a;--bad:#ff8a80;--bad-bg:#3a1d1b;--ok:#7bd88f;--ref:#7d8893;
--cur:#ff9d3d;--s0:#7aa2ff;--s1:#ff9d3d;--s2:#c98bff}}
"""
_LAYOUT = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:var(--bg);color:var(--fg)}
main{max-width:1180px;margin:0 auto;padding:1em 1.2em 3em}
h1{font-size:1.5em;margin:.6em 0 .2em}h2{font-size:1.15em;margin:0 0 .6em}h3{font-size:1em}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:1em 1.2em;margin:1em 0}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;
border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
th{color:var(--muted);font-weight:600;font-size:.92em}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:var(--bad);font-weight:600}.ok{color:var(--ok)}.muted{color:var(--muted)}
tr.bad td:first-child{box-shadow:inset 3px 0 var(--bad)}
.legend .key{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;
vertical-align:middle}.key.ref{background:var(--ref)}.key.cur{background:var(--cur)}
.stats{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}
.stats div{flex:1 1 120px;border:1px solid var(--line);border-radius:6px;padding:.4em .8em}
.stats b{display:block;font-size:1.3em;font-variant-numeric:tabular-nums}
.stats span{color:var(--muted);font-size:.85em}.stats div.bad{border-color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:1em}
.hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:1em}
figure{margin:0}figcaption{font-weight:600;font-size:.92em;margin-top:.2em}
.scroll{overflow-x:auto}
"""
_CSS = _PALETTE + _LAYOUT + svg.CHART_CSS
#: How a drift result reads in the "drifted" column.
_VERDICTS = {"drifted": "yes", "stable": "no", "insufficient": "too few values"}


def _num(value: Any, digits: int = 4) -> str:
    return escape(svg.format_number(value, digits))


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def histogram_svg(labels: list[str], reference: list[int], current: list[int]) -> str:
    """Reference and current shares per bin (the console's histogram)."""
    return svg.histogram(labels, reference, current)


def _header(report: dict[str, Any]) -> list[str]:
    name, version, window = report["model"], report["version"], report["window"]
    deployment = report.get("deployment")
    roles = (
        ""
        if deployment is None
        else f"<p class='muted'>{escape(describe_roles(version, deployment))}</p>"
    )
    return [
        f"<h1>{escape(name)}:{version} — last {escape(window['label'])}</h1>",
        f"<p class='muted'>{_when(window['start'])} to {_when(window['end'])}, "
        f"{window['intervals']} intervals{_resolution(window.get('resolution_s'))}, "
        f"baseline: {escape(report['baseline'])}</p>",
        roles,
    ]


def _traffic(report: dict[str, Any]) -> list[str]:
    """The window's totals, then traffic, latency, errors and contract failures over time."""
    traffic, latency, drift = report["traffic"], report["latency"], report["drift"]
    firing = [a for a in report["alerts"] if a["state"] == "firing"]
    drifted = "—" if drift is None else str(len(drift["drifted_features"]))

    def stat(value: str, label: str, bad: bool = False) -> str:
        return f"<div class='{'bad' if bad else ''}'><b>{value}</b><span>{label}</span></div>"

    out = [
        "<section id='traffic'><h2>Traffic and latency</h2><div class='stats'>",
        stat(svg.format_count(traffic["requests"]), "requests"),
        stat(svg.format_count(traffic["records"]), "records"),
        stat(_pct(traffic["error_rate"]), "error rate", (traffic["error_rate"] or 0) > 0.01),
        stat(
            _pct(traffic["validation_rate"]),
            "contract failures",
            (traffic["validation_rate"] or 0) > 0.05,
        ),
        stat(drifted, "drifted features", bool(drift and drift["drifted_features"])),
        stat(str(len(firing)), "alerts firing", bool(firing)),
        "</div><table>",
        f"<tr><th>p50</th><td class='n'>{format_latency(latency['p50'])}</td><th>p95</th>"
        f"<td class='n'>{format_latency(latency['p95'])}</td><th>p99</th>"
        f"<td class='n'>{format_latency(latency['p99'])}</td>"
        f"<th>requests timed</th><td class='n'>{svg.format_count(latency['count'])}</td></tr>",
        "</table>",
    ]
    s = report.get("series")
    if s is not None:
        starts, res = s["starts"], s["resolution_s"]
        charts = (
            ("Requests per interval", "Traffic: requests", {"requests": s["requests"]}, "count"),
            ("Records per interval", "Traffic: records (rows scored)",
             {"records": s["records"]}, "count"),
            ("Latency percentiles per interval", "Latency (p50, p95, p99)",
             {"p50": s["p50"], "p95": s["p95"], "p99": s["p99"]}, "seconds"),
            ("Errors and contract failures per interval", "Errors and contract failures",
             {"errors": s["errors"], "contract failures": s["validation_failures"]}, "count"),
        )  # fmt: skip
        out.append("<div class='charts'>")
        for title, caption, lines, unit in charts:
            out.append(
                f"<figure>{svg.line_chart(title, starts, lines, unit, res)}"
                f"<figcaption>{escape(caption)}</figcaption></figure>"
            )
        out.append("</div>")
    problems = traffic.get("validation_problems") or {}
    errors = traffic.get("errors") or {}
    if errors or problems:
        out.append("<table><tr><th>errors by code</th><th>contract problems by field</th></tr>")
        out.append(
            "<tr><td>"
            + ", ".join(f"{escape(k)}: {v}" for k, v in errors.items())
            + "</td><td>"
            + ", ".join(f"{escape(k)}: {v}" for k, v in problems.items())
            + "</td></tr></table>"
        )
    out.append("</section>")
    return out


def _drift(report: dict[str, Any]) -> list[str]:
    """The drift tests, then every feature's histogram (drifted first) and the output's."""
    drift = report["drift"]
    out = ["<section id='drift'><h2>Drift</h2>"]
    if drift is None:
        return [*out, "<p class='muted'>No traffic in this window.</p></section>"]
    verdict = "bad" if drift["drifted"] else "ok"
    out.append(
        f"<p class='{verdict}'>{drift['share_drifted']:.0%} of input features drifted "
        f"({svg.format_count(drift['rows']['current'])} rows vs "
        f"{svg.format_count(drift['rows']['reference'])} in the baseline): "
        f"{'dataset drifted' if drift['drifted'] else 'dataset stable'}</p>"
    )
    out.append(
        "<div class='scroll'><table><tr><th>feature</th><th>method</th><th>score</th>"
        "<th>p-value</th><th>threshold</th><th>n ref</th><th>n cur</th><th>drifted</th></tr>"
    )
    for r in [r for f in drift["features"] for r in f["results"]] + drift["output"]:
        cls = "bad" if r["drifted"] else ""
        out.append(
            f"<tr class='{cls}'><td>{escape(r['feature'])}</td><td>{escape(r['method'])}"
            f"</td><td class='n'>{_num(r['score'])}</td><td class='n'>{_num(r['p_value'])}"
            f"</td><td class='n'>{_num(r['threshold'])}</td><td class='n'>"
            f"{_num(r['n_reference'])}</td><td class='n'>{_num(r['n_current'])}</td>"
            f"<td>{_VERDICTS[r['verdict']]}</td></tr>"
        )
    out.append("</table></div>")
    histograms = report["histograms"]
    if histograms:
        out.append(
            "<h3>Features: baseline vs window</h3><p class='legend'>"
            "<span class='key ref'></span>baseline<span class='key cur'></span>window "
            "<span class='muted'>(share of rows per bin; drifted features first)</span></p>"
            "<div class='hists'>"
        )
        for feature, h in histograms.items():
            if feature == "(output)":
                caption = "predictions (output)"
            elif h.get("drifted", True):
                caption = f"{escape(feature)} <span class='bad'>drifted</span>"
            else:
                caption = f"{escape(feature)} <span class='ok'>stable</span>"
            out.append(
                f"<figure>{histogram_svg(h['labels'], h['reference'], h['current'])}"
                f"<figcaption>{caption}</figcaption></figure>"
            )
        out.append("</div>")
    out.append("</section>")
    return out


def _performance(performance: dict[str, Any]) -> list[str]:
    """Realised, estimated (with its band) and holdout performance per version and metric."""
    primary = "accuracy" if performance.get("task") == "classification" else "r2"
    windows = performance.get("windows") or []
    entries = windows[-1]["versions"] if windows else []
    out = [
        "<section id='performance'><h2>Performance</h2>",
        "<p class='muted'>Realised from labels; estimated from the predicted probabilities "
        "(with its band) before labels come; holdout as measured at registration.</p>",
    ]
    if not entries:
        return [*out, "<p class='muted'>No predictions in this window.</p></section>"]
    out.append(
        "<p class='legend muted'>In the picture: shaded = estimated band, bar = estimate, "
        "dot = realised (red when outside the band), diamond = holdout.</p>"
    )
    for e in entries:
        realised = e.get("realised") or {}
        estimated = e.get("estimated") or {}
        holdout = e.get("holdout") or {}
        metrics = [k for k in (*estimated, *realised) if k != "rows"]
        metrics = list(dict.fromkeys(metrics)) or [primary]
        delay = (e.get("label_delay_s") or {}).get("median")
        out.append(
            f"<h3>version {e['version']}: {_num(e['predictions'])} predictions, "
            f"{_num(e['labelled'])} labelled ({_pct(e['coverage'], 1)}), "
            f"median label delay {_delay(delay)}</h3>"
            "<div class='scroll'><table><tr><th>metric</th><th>holdout</th><th>realised</th>"
            "<th>estimated</th><th>band</th><th></th></tr>"
        )
        for k in metrics:
            est = estimated.get(k)
            outside = bool(est and est.get("realised_inside") is False)
            band = "—" if est is None else f"{_num(est['lower'], 3)} … {_num(est['upper'], 3)}"
            held = holdout.get(k) if isinstance(holdout.get(k), int | float) else None
            drawing = svg.band_chart(
                est and est["value"], est and est["lower"], est and est["upper"],
                realised.get(k), held,
            )  # fmt: skip
            out.append(
                f"<tr class='{'bad' if outside else ''}'><td>{escape(k)}</td>"
                f"<td class='n'>{_num(held, 3)}</td>"
                f"<td class='n'>{_num(realised.get(k), 3)}</td>"
                f"<td class='n'>{'—' if est is None else _num(est['value'], 3)}</td>"
                f"<td class='n'>{band}{' <span class=bad>outside</span>' if outside else ''}"
                f"</td><td>{drawing}</td></tr>"
            )
        out.append("</table></div>")
    out.append("</section>")
    return out


def _delay(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _control(report: dict[str, Any]) -> list[str]:
    """Each control chart drawn (breaching ones first), then the table of last points."""
    charts = report["control"]
    out = ["<section id='control'><h2>Control charts (EWMA, standardised)</h2>"]
    if not charts:
        return [*out, "<p class='muted'>No intervals to chart.</p></section>"]
    out.append(
        "<p class='muted'>Each interval's statistic as z against its calibration (grey dots), "
        "its EWMA (line), the control limits (dashed) and the centre line at 0; a red dot is "
        "a point out of limits.</p>"
    )
    ordered = sorted(charts, key=lambda c: (not c["breach"], -c["breaches"]))
    drawn = [c for c in ordered if c.get("series")]
    if drawn:
        out.append("<div class='charts'>")
        for c in drawn:
            s = c["series"]
            title = f"{c['statistic']} of {c['section']}"
            state = (
                "<span class='bad'>breach now</span>"
                if c["breach"]
                else f"<span class='bad'>{_plural(c['breaches'], 'breach')} earlier</span>"
                if c["breaches"]
                else "<span class='ok'>in control</span>"
            )
            picture = svg.control_chart(
                title, s["starts"], s["z"], s["ewma"], s["lower"], s["upper"], s["breach"]
            )
            out.append(
                f"<figure>{picture}<figcaption>{escape(title)} {state}</figcaption></figure>"
            )
        out.append("</div>")
    out.append(
        "<div class='scroll'><table><tr><th>statistic</th><th>of</th><th>points</th>"
        "<th>last value</th><th>EWMA</th><th>limits</th><th>breaches</th><th>first breach</th>"
        "<th>now</th></tr>"
    )
    for c in ordered:
        last = c["last"]
        value = (
            format_latency(last["value"])
            if c["statistic"].endswith("latency")
            else _num(last["value"])
        )
        out.append(
            f"<tr class='{'bad' if c['breach'] else ''}'><td>{escape(c['statistic'])}</td><td>"
            f"{escape(c['section'])}</td><td class='n'>{c['points']}</td><td class='n'>"
            f"{value}</td><td class='n'>{_num(last['ewma'], 3)}</td>"
            f"<td class='n'>{_num(last['lower'], 3)} … {_num(last['upper'], 3)}</td>"
            f"<td class='n'>{c['breaches']}</td><td>{_when(c.get('first_breach'))}</td>"
            f"<td>{'breach' if c['breach'] else 'ok'}</td></tr>"
        )
    out.append("</table></div></section>")
    return out


def _alerts(report: dict[str, Any]) -> list[str]:
    out = ["<section id='alerts'><h2>Alerts</h2>"]
    if not report["alerts"]:
        return [*out, "<p class='ok'>No alerts in this window.</p></section>"]
    out.append("<table><tr><th>rule</th><th>state</th><th>since</th><th>summary</th></tr>")
    for a in report["alerts"]:
        cls = "bad" if a["state"] == "firing" else "muted"
        out.append(
            f"<tr class='{cls}'><td>{escape(a['rule'])}</td><td>{escape(a['state'])}</td>"
            f"<td>{_when(a['started_at'])}</td><td>{escape(a['summary'])}</td></tr>"
        )
    out.append("</table></section>")
    return out


def render_html(report: dict[str, Any]) -> str:
    """The whole report as a standalone HTML document."""
    out: list[str] = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<meta name='color-scheme' content='light dark'>",
        f"<title>Plinth monitor: {escape(report['model'])}:{report['version']}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        *_header(report),
        *_traffic(report),
        *(_cost(report["cost"]) if report.get("cost") is not None else []),
        *_drift(report),
    ]
    if report.get("performance") is not None:
        out.extend(_performance(report["performance"]))
    out.extend(_control(report))
    out.extend(_alerts(report))
    out.append("</main></body></html>")
    return "\n".join(out)


def _when(iso: str | None) -> str:
    """'2026-12-05 12:08 UTC' from an ISO time (the report's times are UTC)."""
    if not iso:
        return "—"
    return escape(f"{iso[:10]} {iso[11:16]} UTC")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("h") else f"{n} {word}s"


def _cost(cost: dict[str, Any]) -> list[str]:
    """A remote model's calls, tokens and cost per version, and today's budget."""
    out = [
        "<h2>Remote calls and cost</h2><table><tr><th>version</th><th>calls</th>"
        "<th>cached</th><th>prompt tokens</th><th>completion tokens</th><th>cost</th></tr>"
    ]
    for row in [*cost["versions"], {**cost["total"], "version": "all"}]:
        out.append(
            f"<tr><td>{escape(str(row['version']))}</td><td class='n'>{row['calls']}</td>"
            f"<td class='n'>{row['cached']}</td><td class='n'>{row['prompt_tokens']}</td>"
            f"<td class='n'>{row['completion_tokens']}</td>"
            f"<td class='n'>{_num(row['cost'])}</td></tr>"
        )
    out.append("</table>")
    budget = cost.get("budget")
    if budget is not None:
        share = budget["share"] or 0.0
        cls = "bad" if share >= budget["alert_at"] else "ok"
        out.append(
            f"<p class='{cls}'>Budget {escape(budget['day'])}: spent {budget['spent']:.4g} of "
            f"{budget['per_day']:g} ({share:.0%}; alert at {budget['alert_at']:.0%}, then "
            f"{escape(str(budget['on_budget']))}).</p>"
        )
    return out


def _resolution(seconds: float | None) -> str:
    """' of 1 h' / ' of 1 min': an old window is charted from hourly roll-ups."""
    if not seconds:
        return ""
    return f" of {seconds / 3600:g} h" if seconds >= 3600 else f" of {seconds / 60:g} min"
