"""``plinth feedback | performance | review | tokens``: ground truth and people, in the terminal.

These commands work on the store directly, like ``deploy``: they need the same
``PLINTH_HOME`` / ``PLINTH_DATABASE_URL`` as the server, not a running server.
"""

from __future__ import annotations

import getpass
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import HomeOption, console, handle_errors, open_runtime, progress_bar
from plinth.core.durations import parse_duration
from plinth.errors import LabelsFileColumnsError, ResolutionChoiceError

if TYPE_CHECKING:
    import pandas as pd

    from plinth.services.feedback.labels import ItemOutcome

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CHUNK_ROWS = 1000

review_app = typer.Typer(
    rich_markup_mode=None, help="Work the review queue: list, show, claim, resolve."
)
tokens_app = typer.Typer(
    rich_markup_mode=None, help="API tokens and their roles (predict, reviewer, admin)."
)


def _label_items(frame: pd.DataFrame, name: str, label: str = "label") -> list[dict[str, Any]]:
    by = [c for c in ("prediction_id", "key") if c in frame.columns]
    if len(by) != 1 or label not in frame.columns:
        raise LabelsFileColumnsError(
            f"The labels file has columns {list(frame.columns)[:10]}.",
            hint=f"Give a {label!r} column (or name yours with --label-column) and one of "
            "prediction_id or key (time and source are optional).",
        )
    extra = [c for c in ("time", "source") if c in frame.columns]
    items = []
    columns = frame[[by[0], label, *extra]].rename(columns={label: "label"})
    for record in columns.astype(object).to_dict(orient="records"):
        item = {k: v for k, v in record.items() if not _missing(v)}
        item.setdefault("label", None)
        if by[0] == "key":
            item["key"] = str(item["key"]) if "key" in item else None
            item["model"] = name
        if "time" in item:
            item["time"] = str(item["time"])
        items.append(item)
    return items


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@handle_errors
def feedback(
    name: Annotated[str, typer.Argument(help="Model name (labels by key need it).")],
    labels: Annotated[
        Path, typer.Option("--labels", help="CSV/Parquet: prediction_id|key, label[, time].")
    ],
    source: Annotated[str, typer.Option(help="Where the labels come from.")] = "caller",
    label_column: Annotated[
        str,
        typer.Option(
            help="The column holding the labels, e.g. the target column of a "
            "file scored with plinth predict."
        ),
    ] = "label",
    home: HomeOption = None,
) -> None:
    """Import ground-truth labels; a later label for a prediction replaces the earlier."""
    from plinth.services.datasets import read_table

    items = _label_items(read_table(labels), name, label_column)
    failures: list[ItemOutcome] = []
    stored = replaced = 0
    with open_runtime(home) as runtime:
        service = runtime.feedback
        with progress_bar(f"labels for {name}", len(items)) as advance:
            for start in range(0, len(items), CHUNK_ROWS):
                chunk = items[start : start + CHUNK_ROWS]
                result = service.ingest(chunk, model=name, source=source)
                stored += result.stored
                replaced += result.replaced
                for outcome in result.items:
                    if not outcome.ok:
                        outcome.index += start
                        failures.append(outcome)
                advance(len(chunk))
    console.print(
        f"[green]stored[/] {stored} new and {replaced} replaced labels for {name}; "
        f"{len(failures)} failed",
        highlight=False,
    )
    for outcome in failures[:20]:
        console.print(
            f"  row {outcome.index + 2}: {escape(outcome.message or '')} "
            f"[dim]\\[{outcome.code}][/]",
            highlight=False,
        )
    if len(failures) > 20:
        console.print(f"  … and {len(failures) - 20} more")
    if failures and not (stored or replaced):
        raise typer.Exit(1)


@handle_errors
def performance(
    name: Annotated[str, typer.Argument(help="Model name.")],
    window: Annotated[str, typer.Option(help="Window length: 1h, 1d, 7d.")] = "1d",
    windows: Annotated[int, typer.Option(help="How many windows back.")] = 7,
    version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Realised and estimated performance per window of prediction time."""
    with open_runtime(home) as runtime:
        report = runtime.performance.report(
            name, window=parse_duration(window), windows=windows, version=version
        )
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    metric = "accuracy" if report["task"] == "classification" else "mae"
    table = Table(title=f"{name}: performance by {window} window (prediction time)")
    for column in ("window start", "version", "predictions", "labelled", "coverage"):
        table.add_column(column, justify="right" if column != "window start" else "left")
    table.add_column("label delay (median)", justify="right")
    table.add_column(f"{metric} realised", justify="right")
    if report["task"] == "classification":
        table.add_column("estimated [band]", justify="right")
    table.add_column(f"{metric} holdout", justify="right")
    for w in report["windows"]:
        for e in w["versions"]:
            realised = (e["realised"] or {}).get(metric)
            delay = (e["label_delay_s"] or {}).get("median")
            cells = [
                w["start"][:16].replace("T", " "),
                str(e["version"]),
                str(e["predictions"]),
                str(e["labelled"]),
                _pct(e["coverage"]),
                _age(delay),
                _num(realised),
            ]
            if report["task"] == "classification":
                band = e.get("estimated", {}).get(metric)
                cells.append(
                    "-"
                    if band is None
                    else f"{band['value']:.3f} [{band['lower']:.3f}, {band['upper']:.3f}]"
                )
            cells.append(_num(e["holdout"].get(metric)))
            table.add_row(*cells)
    console.print(table)


@review_app.command("list")
@handle_errors
def review_list(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    status: Annotated[str, typer.Option(help="pending, claimed or resolved.")] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Review items, oldest first."""
    with open_runtime(home) as runtime:
        queue = runtime.review_queue
        items = queue.list_items(model=model, status=status, limit=limit)
        numbers = queue.numbers(model)
    if as_json:
        print(json.dumps(items, indent=2))
        return
    table = Table(title=f"review items ({status})")
    # The id is what a reviewer copies into `review show`: never cut it short.
    table.add_column("id", no_wrap=True, min_width=26)
    for column in ("model", "created (UTC)", "gate score", "status", "who"):
        table.add_column(column, overflow="fold")
    for item in items:
        score = item["gate"]["score"]
        table.add_row(
            item["id"],
            f"{item['model']}:{item['version']}",
            item["created_at"][:19].replace("T", " "),
            _num(score),
            item["status"],
            item["claimed_by"] or item["resolved_by"] or "",
        )
    console.print(table)
    for view in numbers:
        flag = " [red]over SLA[/]" if view.sla_breached else ""
        console.print(
            f"{view.model}: {view.open} open, oldest {_age(view.oldest_age_s)}{flag}, "
            f"median resolution {_age(view.median_resolution_s)}",
            highlight=False,
        )


@review_app.command("show")
@handle_errors
def review_show(
    review_id: Annotated[str, typer.Argument(help="Review item id.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """One item: input, prediction, probabilities, attribution and similar cases."""
    with open_runtime(home) as runtime:
        item = runtime.review_queue.show(review_id)
    if as_json:
        print(json.dumps(item, indent=2, default=str))
        return
    _print_item(item)


@review_app.command("claim")
@handle_errors
def review_claim(
    review_id: Annotated[str, typer.Argument(help="Review item id.")],
    reviewer: Annotated[str | None, typer.Option(help="Your name [default: $USER].")] = None,
    home: HomeOption = None,
) -> None:
    """Take an item for the lease (5 minutes by default) so no one else does."""
    with open_runtime(home) as runtime:
        item = runtime.review_queue.claim(review_id, reviewer or getpass.getuser())
    console.print(f"[green]claimed[/] {item['id']} until {item['claimed_until']}", highlight=False)


@review_app.command("resolve")
@handle_errors
def review_resolve(
    review_id: Annotated[str, typer.Argument(help="Review item id.")],
    approve: Annotated[
        bool, typer.Option("--approve", help="The model's answer is right.")
    ] = False,
    correct: Annotated[
        str | None, typer.Option("--correct", help="The right label instead.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Your name [default: $USER].")] = None,
    home: HomeOption = None,
) -> None:
    """Approve or correct an item; the outcome is stored as a label (source=reviewer)."""
    if approve == (correct is not None):
        raise ResolutionChoiceError(
            "Say either --approve or --correct LABEL.",
        )
    with open_runtime(home) as runtime:
        item = runtime.review_queue.resolve(
            review_id,
            reviewer or getpass.getuser(),
            "approve" if approve else "correct",
            correct,
            note,
        )
    console.print(
        f"[green]resolved[/] {item['id']} ({item['action']}): label {item['label']!r}",
        highlight=False,
    )


@tokens_app.command("create")
@handle_errors
def tokens_create(
    role: Annotated[str, typer.Option(help="predict, reviewer or admin.")],
    name: Annotated[str, typer.Option(help="Who or what holds it.")] = "",
    home: HomeOption = None,
) -> None:
    """Create a token; it is printed once and stored only as a hash. The first token
    switches authentication on for every route."""
    with open_runtime(home) as runtime:
        row, token = runtime.tokens.create(role, name)
    console.print(f"[green]created[/] {row.id} ({row.role}, {row.name})", highlight=False)
    print(token)


@tokens_app.command("list")
@handle_errors
def tokens_list(home: HomeOption = None) -> None:
    """Active tokens (ids, roles, names; never the tokens)."""
    with open_runtime(home) as runtime:
        rows = runtime.tokens.active()
    table = Table(title="API tokens")
    for column in ("id", "role", "name", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.id, row.role, row.name, row.created_at.isoformat()[:19])
    console.print(table)
    if not rows and not runtime.settings.tokens:
        console.print("No tokens: authentication is off.")


@tokens_app.command("revoke")
@handle_errors
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id from `plinth tokens list`.")],
    home: HomeOption = None,
) -> None:
    """Revoke a token (workers stop accepting it within a few seconds)."""
    with open_runtime(home) as runtime:
        runtime.tokens.revoke(token_id)
    console.print(f"[green]revoked[/] {token_id}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the feedback, performance, review and tokens commands to ``app``."""
    app.command()(feedback)
    app.command()(performance)
    app.add_typer(review_app, name="review")
    app.add_typer(tokens_app, name="tokens")


SHOWN_DRIVERS = 3


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _print_item(item: dict[str, Any]) -> None:
    gate = item["gate"]
    console.print(
        f"[bold]{item['id']}[/] {item['model']}:{item['version']} — {item['status']}, "
        f"{gate['measure']} {_num(gate['score'])} < {gate['threshold']}",
        highlight=False,
    )
    output = item.get("output", {})
    console.print(f"prediction: [bold]{escape(repr(output.get('prediction')))}[/]")
    if output.get("probabilities"):
        probs = ", ".join(f"{k}: {v:.3f}" for k, v in output["probabilities"].items())
        console.print(f"probabilities: {escape(probs)}", highlight=False)
    inputs = Table(title="input")
    inputs.add_column("feature")
    inputs.add_column("value")
    for key, value in (item.get("input") or {}).items():
        inputs.add_row(str(key), escape(repr(value)))
    console.print(inputs)
    context = item.get("context") or {}
    attribution = context.get("attribution")
    if attribution:
        drivers = Table(title=f"what drove it ({attribution['method']}, {attribution['explains']})")
        drivers.add_column("feature")
        drivers.add_column("contribution", justify="right")
        for entry in attribution["top"]:
            drivers.add_row(entry["feature"], f"{entry['value']:+.4f}")
        console.print(drivers)
    neighbours = context.get("neighbours")
    if neighbours:
        # Beside each case, its values of the features that drove this prediction most.
        decisive = [t["feature"] for t in (attribution or {}).get("top", [])[:SHOWN_DRIVERS]]
        similar = Table(title="most similar cases")
        for column in ("from", "id", "distance", "label", *decisive):
            similar.add_column(column, overflow="fold")
        inputs_row = item.get("features") or item.get("input") or {}
        similar.add_row(
            "[bold]this case[/]", "", "", "", *(_value(inputs_row.get(f)) for f in decisive)
        )
        for n in neighbours["training"]:
            values = n.get("features") or {}
            similar.add_row(
                "training",
                str(n["row"]),
                f"{n['distance']:.3f}",
                repr(n["label"]),
                *(_value(values.get(f)) for f in decisive),
            )
        for n in neighbours["reviews"]:
            similar.add_row(
                "review",
                n["review_id"],
                f"{n['distance']:.3f}",
                repr(n["label"]),
                *("" for _ in decisive),
            )
        console.print(similar)
    if not context:
        console.print("[dim]context not computed yet[/]")
    if item["status"] == "resolved":
        console.print(
            f"resolved by {item['resolved_by']}: {item['action']} → {item['label']!r}"
            + (f" ({escape(item['note'])})" if item.get("note") else ""),
            highlight=False,
        )
