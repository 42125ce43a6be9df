"""``plinth forget`` and ``plinth audit``: delete everything logged about one subject, and
read the trail of admin actions, from a terminal.

Works on the store directly, like ``deploy``: it needs the same ``PLINTH_HOME`` /
``PLINTH_DATABASE_URL`` as the server, not a running server (``POST /v1/forget`` is the
same action over HTTP, for an admin token).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from plinth.cli.common import HomeOption, console, handle_errors, open_runtime
from plinth.core.durations import parse_duration


@handle_errors
def forget(
    key: Annotated[
        str, typer.Option("--key", help="The request key the predictions were logged with.")
    ],
    model: Annotated[str | None, typer.Option("--model", help="Only this model's records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Delete every logged prediction, label and review item of one subject (its
    request key), on SQLite or PostgreSQL, and print how many went."""
    from plinth.services import audit
    from plinth.services.privacy import forget as forget_subject

    with open_runtime(home) as runtime:
        gone = forget_subject(
            runtime.store, key, model=model, who=audit.current_user(),
            policies=runtime.policies,
        )  # fmt: skip
    counts = {
        "predictions": gone.predictions,
        "labels": gone.labels,
        "label_history": gone.label_history,
        "review_items": gone.review_items,
    }
    if as_json:
        typer.echo(json.dumps(counts))
        return
    console.print(
        f"deleted {gone.predictions} predictions, {gone.labels} labels "
        f"({gone.label_history} earlier revisions) and {gone.review_items} review items",
        highlight=False,
    )


@handle_errors
def audit_command(
    limit: Annotated[int, typer.Option(help="Most events to show.", min=1)] = 50,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action, e.g. deployment.rollback or subject.forget."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only events this recent, e.g. 7d.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """The trail of admin actions, newest first: who deployed, promoted, rolled back or
    stopped a canary, edited a contract, asked for or approved retraining, forgot a
    subject, created or revoked a token, and when."""
    from plinth.services import audit

    cutoff = None
    if since is not None:
        cutoff = datetime.now(UTC) - parse_duration(since, what="--since")
    with open_runtime(home) as runtime:
        events = audit.read(runtime.store, limit=limit, action=action, since=cutoff)
    if as_json:
        rows = [
            {"at": e.at.isoformat(), "who": e.who, "action": e.action, "target": e.target,
             "detail": e.detail}
            for e in events
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("at (UTC)", "who", "action", "target", "detail")
    for e in events:
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.who, e.action, e.target, detail)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``plinth forget`` and ``plinth audit`` to ``app``."""
    app.command()(forget)
    app.command("audit")(audit_command)
