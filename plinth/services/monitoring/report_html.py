"""The monitoring report as one self-contained HTML page: inline CSS and SVG, no network.

It renders the JSON report (``Monitor.report``) and nothing else, so the page, the API and
the terminal always agree. Each drifted feature gets reference-vs-current bars over the
reference's bins (shares, so windows of any size compare).
"""

from __future__ import annotations

from html import escape
from typing import Any

from plinth.core.durations import format_latency
from plinth.services.monitoring.report import describe_roles

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:600}.ok{color:#2e7d32}.muted{color:#777}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
figure{margin:1em 0}figcaption{font-weight:600}
"""
_REF, _CUR = "#90a4ae", "#e65100"
#: How a drift result reads in the "drifted" column.
_VERDICTS = {"drifted": "yes", "stable": "no", "insufficient": "too few values"}


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def _seconds(value: float | None) -> str:
    return format_latency(value)


def histogram_svg(labels: list[str], reference: list[int], current: list[int]) -> str:
    """Grouped bars of the reference and current shares per bin, as inline SVG."""
    ref_total, cur_total = max(sum(reference), 1), max(sum(current), 1)
    ref = [r / ref_total for r in reference]
    cur = [c / cur_total for c in current]
    top = max([*ref, *cur, 1e-9])
    width, height, pad, bottom = 760, 220, 36, 70
    slot = (width - pad) / max(len(labels), 1)
    bar = slot * 0.38
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}" '
        f'role="img"><line x1="{pad}" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>'
    ]
    for tick in (0.0, 0.5, 1.0):
        y = height - tick * (height - 10)
        parts.append(
            f'<text x="{pad - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{tick * top:.0%}</text>"
        )
    for i, label in enumerate(labels):
        x = pad + i * slot + slot * 0.1
        for j, (share, colour) in enumerate(((ref[i], _REF), (cur[i], _CUR))):
            h = share / top * (height - 10)
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: {share:.1%}'
                f"</title></rect>"
            )
        cx = x + bar
        parts.append(
            f'<text x="{cx:.1f}" y="{height + 12}" font-size="10" text-anchor="end" '
            f'transform="rotate(-40 {cx:.1f} {height + 12})">{escape(label[:24])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _performance(performance: dict[str, Any]) -> list[str]:
    """Realised, estimated and holdout performance per version (as ``plinth monitor``)."""
    metric = "accuracy" if performance.get("task") == "classification" else "r2"
    windows = performance.get("windows") or []
    entries = windows[-1]["versions"] if windows else []
    out = ["<h2>Performance</h2>"]
    if not entries:
        return [*out, "<p class='muted'>No predictions in this window.</p>"]
    out.append(
        f"<table><tr><th>version</th><th>predictions</th><th>labelled</th><th>coverage</th>"
        f"<th>realised {metric}</th><th>estimated {metric}</th><th>holdout {metric}</th></tr>"
    )
    for e in entries:
        est = (e.get("estimated") or {}).get(metric)
        shown = (
            "—"
            if est is None
            else (f"{_num(est['value'])} [{_num(est['lower'])}, {_num(est['upper'])}]")
        )
        out.append(
            f"<tr><td>{e['version']}</td><td class='n'>{e['predictions']}</td>"
            f"<td class='n'>{e['labelled']}</td><td class='n'>{_num(e['coverage'], 3)}</td>"
            f"<td class='n'>{_num((e.get('realised') or {}).get(metric))}</td>"
            f"<td class='n'>{shown}</td>"
            f"<td class='n'>{_num((e.get('holdout') or {}).get(metric))}</td></tr>"
        )
    out.append("</table>")
    return out


def _roles(version: int, deployment: dict[str, Any] | None) -> str:
    if deployment is None:
        return ""
    return f"<p class='muted'>{escape(describe_roles(version, deployment))}</p>"


def render_html(report: dict[str, Any]) -> str:
    """The whole report as a standalone HTML document."""
    name, version, window = report["model"], report["version"], report["window"]
    traffic, latency, drift = report["traffic"], report["latency"], report["drift"]
    out: list[str] = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Plinth monitor: {escape(name)}:{version}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{escape(name)}:{version} — last {escape(window['label'])}</h1>",
        f"<p class='muted'>{escape(window['start'])} to {escape(window['end'])}, "
        f"{window['intervals']} intervals{_resolution(window.get('resolution_s'))}, "
        f"baseline: {escape(report['baseline'])}</p>",
        _roles(version, report.get("deployment")),
        "<h2>Traffic and latency</h2><table>",
        f"<tr><th>requests</th><td class='n'>{traffic['requests']}</td>"
        f"<th>records</th><td class='n'>{traffic['records']}</td></tr>",
        f"<tr><th>error rate</th><td class='n'>{_num(traffic['error_rate'])}</td>"
        f"<th>validation failure rate</th><td class='n'>{_num(traffic['validation_rate'])}</td>"
        "</tr>",
        f"<tr><th>p50</th><td class='n'>{_seconds(latency['p50'])}</td><th>p95</th>"
        f"<td class='n'>{_seconds(latency['p95'])}</td><th>p99</th>"
        f"<td class='n'>{_seconds(latency['p99'])}</td></tr></table>",
    ]
    if report.get("cost") is not None:
        out.extend(_cost(report["cost"]))
    out.append("<h2>Drift</h2>")
    if drift is None:
        out.append("<p class='muted'>No traffic in this window.</p>")
    else:
        verdict = "bad" if drift["drifted"] else "ok"
        out.append(
            f"<p class='{verdict}'>{drift['share_drifted']:.0%} of input features drifted "
            f"({drift['rows']['current']} rows vs {drift['rows']['reference']} in the "
            "baseline)</p>"
        )
        out.append(
            "<table><tr><th>feature</th><th>method</th><th>score</th><th>p-value</th>"
            "<th>threshold</th><th>n ref</th><th>n cur</th><th>drifted</th></tr>"
        )
        rows = [r for f in drift["features"] for r in f["results"]] + drift["output"]
        for r in rows:
            cls = "bad" if r["drifted"] else ""
            out.append(
                f"<tr class='{cls}'><td>{escape(r['feature'])}</td><td>{escape(r['method'])}"
                f"</td><td class='n'>{_num(r['score'])}</td><td class='n'>{_num(r['p_value'])}"
                f"</td><td class='n'>{_num(r['threshold'])}</td><td class='n'>"
                f"{r['n_reference']}</td><td class='n'>{r['n_current']}</td>"
                f"<td>{_VERDICTS[r['verdict']]}</td></tr>"
            )
        out.append("</table>")
    if report["histograms"]:
        out.append(
            "<h2>Features</h2><p class='legend'>"
            f"<span style='background:{_REF}'></span>baseline"
            f"<span style='background:{_CUR}'></span>current window</p>"
        )
        for feature, h in report["histograms"].items():
            mark = " <span class='bad'>drifted</span>" if h.get("drifted", True) else ""
            out.append(
                f"<figure><figcaption>{escape(feature)}{mark}</figcaption>"
                f"{histogram_svg(h['labels'], h['reference'], h['current'])}</figure>"
            )
    if report.get("performance") is not None:
        out.extend(_performance(report["performance"]))
    out.append("<h2>Control charts (EWMA, standardised)</h2>")
    if report["control"]:
        out.append(
            "<table><tr><th>statistic</th><th>of</th><th>points</th><th>last value</th>"
            "<th>EWMA</th><th>limits</th><th>breaches</th><th>now</th></tr>"
        )
        for c in report["control"]:
            last = c["last"]
            cls = "bad" if c["breach"] else ""
            out.append(
                f"<tr class='{cls}'><td>{escape(c['statistic'])}</td><td>"
                f"{escape(c['section'])}</td><td class='n'>{c['points']}</td><td class='n'>"
                f"{_num(last['value'])}</td><td class='n'>{_num(last['ewma'], 3)}</td>"
                f"<td class='n'>{_num(last['lower'], 3)} … {_num(last['upper'], 3)}</td>"
                f"<td class='n'>{c['breaches']}</td><td>{'breach' if c['breach'] else 'ok'}"
                "</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p class='muted'>No intervals to chart.</p>")
    out.append("<h2>Alerts</h2>")
    if report["alerts"]:
        out.append("<table><tr><th>rule</th><th>state</th><th>since</th><th>summary</th></tr>")
        for a in report["alerts"]:
            cls = "bad" if a["state"] == "firing" else "muted"
            out.append(
                f"<tr class='{cls}'><td>{escape(a['rule'])}</td><td>{escape(a['state'])}</td>"
                f"<td>{escape(a['started_at'])}</td><td>{escape(a['summary'])}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p class='ok'>No alerts in this window.</p>")
    out.append("</body></html>")
    return "\n".join(out)


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
