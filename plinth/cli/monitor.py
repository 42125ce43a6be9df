"""``plinth monitor``: the monitoring report in the terminal, as JSON or HTML, or on watch.

Reads interval profiles only (never the prediction log). ``--watch`` also evaluates the
alert rules every ``--every`` seconds, taking the same store lease as ``plinth serve``'s
evaluator, so a watch beside a running server never doubles an alert. It stops after
``--count`` rounds, or on Ctrl-C (SIGINT): the lease is released and the exit status is 0.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import console, err_console, handle_errors, open_runtime
from plinth.core.durations import format_latency, parse_duration
from plinth.errors import UnknownOutputFormatError

if TYPE_CHECKING:
    from plinth.runtime import Runtime
    from plinth.services.monitoring.alerts import Sink
    from plinth.services.monitoring.report import Baseline


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _ms(value: float | None) -> str:
    return format_latency(value)


def print_performance(performance: dict[str, Any]) -> None:
    """Realised vs estimated vs holdout performance per version over the window."""
    metric = "accuracy" if performance["task"] == "classification" else "r2"
    table = Table(
        "version", "predictions", "labelled", "coverage", f"realised {metric}",
        f"estimated {metric}", f"holdout {metric}", title="performance",
    )  # fmt: skip
    entries = performance["windows"][-1]["versions"] if performance["windows"] else []
    for entry in entries:
        estimated = (entry.get("estimated") or {}).get(metric)
        table.add_row(
            str(entry["version"]),
            str(entry["predictions"]),
            str(entry["labelled"]),
            _fmt(entry["coverage"], 3),
            _fmt((entry.get("realised") or {}).get(metric)),
            "—"
            if estimated is None
            else f"{estimated['value']:.3g} [{estimated['lower']:.3g}, {estimated['upper']:.3g}]",
            _fmt(entry.get("holdout", {}).get(metric)),
        )
    console.print(table if entries else "no predictions in this window")


def print_cost(cost: dict[str, Any]) -> None:
    """A remote model's calls, tokens and cost per version, and today's budget."""
    table = Table(
        "version", "calls", "cached", "prompt tokens", "completion tokens", "cost",
        title="remote calls and cost in this window",
    )  # fmt: skip
    for row in [*cost["versions"], {**cost["total"], "version": "all"}]:
        table.add_row(
            str(row["version"]), str(row["calls"]), str(row["cached"]),
            str(row["prompt_tokens"]), str(row["completion_tokens"]), f"{row['cost']:.4g}",
        )  # fmt: skip
    console.print(table)
    budget = cost.get("budget")
    if budget is not None:
        share = budget["share"] or 0.0
        style = "bold red" if share >= budget["alert_at"] else "default"
        console.print(
            f"budget {budget['day']}: spent {budget['spent']:.4g} of {budget['per_day']:g} "
            f"([{style}]{share:.0%}[/], alert at {budget['alert_at']:.0%}, "
            f"then {budget['on_budget']})",
            highlight=False,
        )


def print_report(report: dict[str, Any]) -> None:
    """The report as Rich tables: summary, drift per feature, charts, alerts."""
    from plinth.services.monitoring.report import describe_roles

    w, traffic, latency = report["window"], report["traffic"], report["latency"]
    resolution = w.get("resolution_s")
    of = "" if not resolution else f" of {_duration(resolution)}"
    console.print(
        f"[bold]{report['model']}:{report['version']}[/]  last {w['label']} "
        f"({w['intervals']} intervals{of})  baseline {report['baseline']}",
        highlight=False,
    )
    deployment = report.get("deployment")
    if deployment is not None:
        console.print(escape(describe_roles(report["version"], deployment)), highlight=False)
    console.print(
        f"requests {traffic['requests']}  records {traffic['records']}  "
        f"error rate {_fmt(traffic['error_rate'])}  "
        f"validation failure rate {_fmt(traffic['validation_rate'])}  "
        f"latency p50 {_ms(latency['p50'])} p95 {_ms(latency['p95'])} p99 {_ms(latency['p99'])}",
        highlight=False,
    )
    if report.get("cost") is not None:
        print_cost(report["cost"])
    drift = report["drift"]
    if drift is None:
        console.print("no profiled traffic in this window")
    else:
        table = Table(
            "feature", "method", "score", "p-value", "threshold", "n ref", "n cur", "drifted",
            title=f"drift: {drift['share_drifted']:.0%} of features "
            f"({'dataset drifted' if drift['drifted'] else 'dataset stable'})",
        )  # fmt: skip
        for r in [x for f in drift["features"] for x in f["results"]] + drift["output"]:
            table.add_row(
                r["feature"], r["method"], _fmt(r["score"]), _fmt(r["p_value"]),
                _fmt(r["threshold"]), str(r["n_reference"]), str(r["n_current"]),
                {"drifted": "[bold red]yes[/]", "insufficient": "[dim]too few[/]"}.get(
                    r["verdict"], "no"
                ),
            )  # fmt: skip
        console.print(table)
    if report["control"]:
        charts = Table(
            "statistic", "of", "points", "last", "ewma", "limits", "breaches", "now",
            title="control charts (EWMA on standardised interval statistics)",
        )  # fmt: skip
        for c in report["control"]:
            last = c["last"]
            charts.add_row(
                c["statistic"], c["section"], str(c["points"]), _fmt(last["value"]),
                _fmt(last["ewma"], 3), f"{last['lower']:.3g} … {last['upper']:.3g}",
                str(c["breaches"]), "[bold red]breach[/]" if c["breach"] else "ok",
            )  # fmt: skip
        console.print(charts)
    if report["alerts"]:
        alerts = Table("id", "rule", "state", "since", "summary", title="alerts")
        for a in report["alerts"]:
            state = "[bold red]firing[/]" if a["state"] == "firing" else a["state"]
            alerts.add_row(str(a["id"]), a["rule"], state, a["started_at"][:19], a["summary"])
        console.print(alerts)
    else:
        console.print("no alerts")
    if report.get("performance"):
        print_performance(report["performance"])


def _say_evaluated(round_: int, events: list[Any] | None, output_format: str) -> None:
    """One line per watch round (on stderr with --format json, so stdout stays JSON)."""
    at = datetime.now(UTC).strftime("%H:%M:%SZ")
    if events is None:
        what = "another process holds the alert lease; its alerts are shown"
    else:
        changes = ", ".join(f"{e.alert.rule} {e.event}" for e in events) or "no changes"
        what = f"alert rules evaluated: {changes}"
    line = f"[watch] round {round_} at {at}: {what}"
    (err_console if output_format == "json" else console).print(line, highlight=False, markup=False)


@handle_errors
def monitor(
    name: Annotated[str, typer.Argument(help="Model name.")],
    window: Annotated[str, typer.Option(help="Window to report on: 15m, 1h, 24h, 7d.")] = "1h",
    baseline: Annotated[
        str, typer.Option(help="reference (training profile) or previous (the window before).")
    ] = "reference",
    version: Annotated[
        int | None,
        typer.Option(help="Version [default: the champion that serves the traffic]."),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a self-contained HTML report (series, histograms, control charts, "
            "performance) to this file instead of printing the tables (--format json still "
            "prints JSON, then with every interval's numbers).",
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Evaluate alert rules and refresh until Ctrl-C (or --count rounds)."
        ),
    ] = False,
    every: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 30.0,
    count: Annotated[
        int | None, typer.Option(help="Stop --watch after this many refreshes.")
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="PLINTH_HOME", help="Plinth's data folder."),
    ] = None,
) -> None:
    """Drift, latency, errors, control charts and alerts for one model, from its profiles."""
    if output_format not in ("table", "json"):
        raise UnknownOutputFormatError(output_format)
    span = parse_duration(window)
    with open_runtime(home) as runtime:
        _watch_or_show(runtime, name, span, window, baseline, version, output_format, html,
                       watch, every, count)  # fmt: skip


def _watch_or_show(
    runtime: Runtime,
    name: str,
    span: timedelta,
    window: str,
    baseline: str,
    version: int | None,
    output_format: str,
    html: Path | None,
    watch: bool,
    every: float,
    count: int | None,
) -> None:
    from plinth.services.monitoring.alerts import AlertEvaluator, WebhookSink, log_sink
    from plinth.services.monitoring.report_html import render_html

    settings, store = runtime.settings, runtime.store
    webhook = WebhookSink(settings.webhook_url) if watch and settings.webhook_url else None
    try:
        monitor_service = runtime.monitor(name)
        sinks: list[Sink] = [log_sink]
        if webhook is not None:
            sinks.append(webhook)
        evaluator = (
            AlertEvaluator(
                store, runtime.policies.monitoring, sinks, review_sla_s=settings.review_sla_s
            )
            if watch
            else None
        )
        done = 0
        # Ctrl-C ends a watch between steps: a KeyboardInterrupt raised inside a database
        # call could leave the connection unusable for releasing the lease.
        with _stop_on_sigint(enabled=watch) as stop:
            try:
                while not stop.is_set():
                    if evaluator is not None:
                        events = evaluator.try_evaluate()
                        _say_evaluated(done + 1, events, output_format)
                    report = monitor_service.report(
                        name, window=span, baseline=cast("Baseline", baseline), version=version,
                        label=window, detail=html is not None,
                    )  # fmt: skip
                    # Ground truth beside the drift: realised, estimated and holdout performance.
                    report["performance"] = runtime.performance.report(
                        name, window=span, windows=1, trailing=True
                    )
                    if output_format == "json":
                        print(json.dumps(report, indent=2), flush=True)
                    elif html is None:  # with --html the file is the report
                        print_report(report)
                    if html is not None:
                        html.write_text(render_html(report), encoding="utf-8")
                        console.print(f"wrote {html}", highlight=False)
                    done += 1
                    if not watch or (count is not None and done >= count):
                        break
                    stop.wait(every)
                if stop.is_set():
                    # Ctrl-C is how a watch ends: say so, release the lease below, exit 0.
                    err_console.print(f"stopped watching after {done} round(s)", highlight=False)
            finally:
                if evaluator is not None:
                    evaluator.release()
    finally:
        if webhook is not None:
            webhook.close()


@contextmanager
def _stop_on_sigint(*, enabled: bool) -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C; a second Ctrl-C interrupts as usual."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def _first(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, _first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def register(app: typer.Typer) -> None:
    """Add ``plinth monitor`` to ``app``."""
    app.command()(monitor)
