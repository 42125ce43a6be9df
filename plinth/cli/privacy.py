"""``plinth forget``: delete everything logged about one subject, from a terminal.

Works on the store directly, like ``deploy``: it needs the same ``PLINTH_HOME`` /
``PLINTH_DATABASE_URL`` as the server, not a running server (``POST /v1/forget`` is the
same action over HTTP, for an admin token).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from plinth.cli.common import HomeOption, console, open_runtime
from plinth.services.privacy import forget as forget_subject


def register(app: typer.Typer, handle_errors: Callable[[Any], Any]) -> None:
    """Add the forget command to ``app``."""

    @app.command()
    @handle_errors
    def forget(
        key: Annotated[
            str, typer.Option("--key", help="The request key the predictions were logged with.")
        ],
        model: Annotated[
            str | None, typer.Option("--model", help="Only this model's records.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        home: HomeOption = None,
    ) -> None:
        """Delete every logged prediction, label and review item of one subject (its
        request key), on SQLite or PostgreSQL, and print how many went."""
        with open_runtime(home) as runtime:
            gone = forget_subject(runtime.store, key, model=model)
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
