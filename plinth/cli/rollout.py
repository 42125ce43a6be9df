"""``plinth deploy | promote | rollback | history``: versioned rollout from the terminal.

Commands write a new deployment revision to the store, then wait (``--wait``, 10 s by
default) until every live serving worker reports it applied: a worker that cannot load a
version it routes to makes the command fail with that load error's code and hint, while the
workers keep serving the revision before. ``register`` adds
the commands to the main Typer app, which passes in its error handler so these commands
report errors exactly like the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plinth.cli.canary import show_decisions
from plinth.cli.common import handle_errors, open_runtime
from plinth.services.rollout.applied import DEFAULT_WAIT_S

if TYPE_CHECKING:
    from plinth.services.rollout.deployments import Deployments, Revision

console = Console()

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="PLINTH_HOME", help="Plinth's data folder [default: ./.plinth]."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the history.")]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        help="Seconds to wait for every live worker to apply the change; 0 returns at once.",
    ),
]


@contextmanager
def _deployments(home: Path | None) -> Iterator[Deployments]:
    with open_runtime(home) as runtime:
        yield runtime.deployments


def _done(verb: str, revision: Revision, service: Deployments, wait: float) -> None:
    """Say what was recorded, then wait for the live workers to apply it (or say why not)."""
    console.print(
        f"[green]{verb}[/] {revision.name} revision {revision.revision}: "
        f"{escape(revision.spec.describe())}",
        highlight=False,
    )
    if wait <= 0:
        return
    from plinth.services.rollout.applied import wait_for_revision

    applied = wait_for_revision(service.store, revision.name, revision.id, revision.revision, wait)
    console.print(f"  {escape(applied.describe())}", highlight=False)


@handle_errors
def deploy(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to deploy.")],
    canary: Annotated[
        float | None,
        typer.Option(help="Make VERSION the canary at this percent; the champion stays."),
    ] = None,
    shadow: Annotated[
        list[int] | None,
        typer.Option("--shadow", help="Version that gets a copy of traffic (repeatable)."),
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            "--fallback", help="Fallback entry, a version or 'default' (repeatable, in order)."
        ),
    ] = None,
    deadline_ms: Annotated[
        int | None, typer.Option(help="Per-attempt deadline before falling back.")
    ] = None,
    auto: Annotated[
        bool | None,
        typer.Option(
            "--auto/--no-auto",
            help="Canary analysis promotes or rolls back by itself (--no-auto: report only).",
        ),
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(help="Requests per arm before the analysis decides.")
    ] = None,
    min_duration: Annotated[
        float | None, typer.Option(help="Seconds of canary traffic before promoting.")
    ] = None,
    max_error_rate: Annotated[
        float | None,
        typer.Option(help="Tolerated error-rate increase over the champion (0.01 = 1 pt)."),
    ] = None,
    max_p95_increase: Annotated[
        float | None, typer.Option(help="Tolerated p95 latency increase (0.25 = 25 %).")
    ] = None,
    max_output_distance: Annotated[
        float | None, typer.Option(help="Largest Jensen-Shannon distance of outputs.")
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            help="module:function(predicted, expected) -> score in [0, 1]: judges the "
            "arms' labelled answers [default: exact match]."
        ),
    ] = None,
    reason: ReasonOption = "",
    wait: WaitOption = DEFAULT_WAIT_S,
    home: HomeOption = None,
) -> None:
    """Deploy VERSION as champion, or with --canary PCT as the canary.


    Every problem (unknown versions, a bad fallback chain, canary-analysis settings out
    of range) is listed at once, with a hint each; nothing is changed.
    """
    from plinth.services.rollout.deployments import parse_fallback

    with _deployments(home) as service:
        revision = service.deploy(
            name,
            version,
            canary=canary,
            shadows=shadow,
            fallback=None if fallback is None else parse_fallback(fallback),
            deadline_ms=deadline_ms,
            canary_settings={
                "auto": auto,
                "min_requests": min_requests,
                "min_duration": min_duration,
                "max_error_rate": max_error_rate,
                "max_p95_increase": max_p95_increase,
                "max_output_distance": max_output_distance,
                "scorer": scorer,
            },
            reason=reason,
        )
        _done("deployed", revision, service, wait)


@handle_errors
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: ReasonOption = "",
    wait: WaitOption = DEFAULT_WAIT_S,
    home: HomeOption = None,
) -> None:
    """Make the canary the champion."""
    with _deployments(home) as service:
        revision = service.promote(name, reason=reason)
        _done("promoted", revision, service, wait)


@handle_errors
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    to: Annotated[
        int | None, typer.Option("--to", help="Revision to return to [default: previous].")
    ] = None,
    reason: ReasonOption = "",
    wait: WaitOption = DEFAULT_WAIT_S,
    home: HomeOption = None,
) -> None:
    """Serve an earlier revision's spec again (recorded as a new revision)."""
    with _deployments(home) as service:
        revision = service.rollback(name, to=to, reason=reason)
        _done("rolled back", revision, service, wait)


@handle_errors
def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Every deployment revision of NAME, newest first."""
    with _deployments(home) as service:
        revisions = service.history(name)
    if as_json:
        print(json.dumps([r.to_dict() for r in revisions], indent=2))
        return
    if not revisions:
        console.print(f"{name} was never deployed: its newest version serves all traffic.")
        return
    table = Table(
        "rev", "when (UTC)", "who", "action", "champion", "canary", "shadows", "fallback",
        "deadline", "reason", title=f"{name} deployments",
    )  # fmt: skip
    for r in revisions:
        spec = r.spec
        reason_text = r.reason
        if r.evidence:
            verdict = r.evidence.get("summary")
            reason_text = f"{reason_text} [{verdict}]" if verdict else reason_text
        table.add_row(
            str(r.revision),
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            r.who,
            r.action,
            str(spec.champion),
            "" if spec.canary is None else f"{spec.canary.version} @ {spec.canary.weight:g}%",
            ", ".join(map(str, spec.shadows)),
            " → ".join(map(str, spec.fallback)),
            "" if spec.deadline_ms is None else f"{spec.deadline_ms} ms",
            reason_text,
        )
    console.print(table)
    show_decisions(console, revisions)


def register(app: typer.Typer) -> None:
    """Add the rollout commands to ``app``."""
    app.command()(deploy)
    app.command()(promote)
    app.command()(rollback)
    app.command()(history)
