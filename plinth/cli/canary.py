"""``plinth canary NAME [--watch]``: judge a live canary now, and the deploy flags for its policy.

The same analysis ``plinth serve`` runs in the background (``plinth.services.rollout.canary``), on
demand: it prints every check with both arms' numbers and, unless ``--dry-run``, applies the
verdict the policy allows (promote, roll back) as a new revision with the evidence.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import handle_errors, open_runtime

if TYPE_CHECKING:
    from plinth.services.rollout.canary import CanaryAnalysis
    from plinth.services.rollout.deployments import Revision

console = Console()


def _checks_table(title: str, evidence: dict[str, Any]) -> Table:
    table = Table("check", "canary", "champion", "limit", "p", "result", title=title)
    for check in evidence.get("checks", []):
        passed = check.get("passed")
        result = "skipped" if passed is None else ("pass" if passed else "[red]FAIL[/]")

        def number(value: Any) -> str:
            return "" if value is None else f"{value:.4g}"

        table.add_row(
            check["name"],
            number(check.get("canary")),
            number(check.get("champion")),
            number(check.get("limit")),
            number(check.get("p_value")),
            result if passed is not None else f"skipped: {escape(check.get('note', ''))}",
        )
    return table


def _arms_line(evidence: dict[str, Any]) -> str:
    parts = []
    for arm in ("canary", "champion"):
        a = evidence.get(arm) or {}
        parts.append(
            f"{arm} v{a.get('version')}: {a.get('requests')} requests, "
            f"{a.get('errors')} errors, p95 {a.get('p95_ms')} ms"
        )
    return "; ".join(parts) + f" over {evidence.get('duration_s', 0):.0f} s"


def show_decisions(out: Console, revisions: list[Revision], limit: int = 5) -> None:
    """Below ``plinth history``: the checks behind the newest automated decisions."""
    shown = 0
    for revision in revisions:
        evidence = revision.evidence or {}
        if "checks" not in evidence:
            continue
        title = f"revision {revision.revision}: {revision.action} ({evidence.get('decision')})"
        out.print(_checks_table(title, evidence))
        out.print(escape(_arms_line(evidence)), highlight=False)
        shown += 1
        if shown == limit:
            return


def _show(analysis: CanaryAnalysis, applied: Revision | None, interval_s: float) -> None:
    evidence = analysis.evidence()
    title = (
        f"{analysis.name}: canary {analysis.canary_version} vs champion "
        f"{analysis.champion_version} → {analysis.verdict.decision}"
    )
    console.print(_checks_table(title, evidence))
    console.print(escape(_arms_line(evidence)), highlight=False)
    console.print(escape("; ".join(analysis.verdict.reasons)), highlight=False)
    console.print(
        f"counts come from the servers' monitoring profiles, written every {interval_s:g} s "
        "(PLINTH_PROFILE_INTERVAL_S): the newest requests are not counted yet",
        highlight=False,
        style="dim",
    )
    if applied is not None:
        console.print(
            f"[green]{applied.action}[/] {applied.name} revision {applied.revision}: "
            f"{escape(applied.spec.describe())}",
            highlight=False,
        )
    elif analysis.verdict.decision != "wait" and not analysis.acts:
        console.print(f"policy action is {analysis.policy.action!r}: nothing was changed")


@handle_errors
def canary(
    name: Annotated[str, typer.Argument(help="Model name.")],
    watch: Annotated[
        bool, typer.Option("--watch", help="Repeat until the canary is promoted or ended.")
    ] = False,
    every: Annotated[float, typer.Option(help="Seconds between passes with --watch.")] = 10.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Judge only; never change the deployment.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="PLINTH_HOME", help="Plinth's data folder."),
    ] = None,
) -> None:
    """Judge NAME's live canary against its champion, and act as its policy says.

    The counts come from the monitoring profiles the servers write every
    PLINTH_PROFILE_INTERVAL_S (60 s): a canary started a moment ago shows no traffic yet.
    """
    from plinth.services.rollout.canary import CanaryAnalyzer

    with open_runtime(home) as runtime:
        analyzer = CanaryAnalyzer(
            runtime.store,
            policies=runtime.policies.canary,
            interval_hint_s=runtime.settings.profile_interval_s,
        )
        while True:
            analysis = analyzer.analyze(name)
            if analysis is None:
                runtime.store.get_version(name)  # a clear error for an unknown model
                console.print(f"{name} has no live canary.")
                return
            applied = None if dry_run else analyzer.act(analysis)
            if as_json:
                body = analysis.evidence()
                body["applied"] = None if applied is None else applied.to_dict()
                print(json.dumps(body, indent=2))
            else:
                _show(analysis, applied, runtime.settings.profile_interval_s)
            if not watch or applied is not None:
                return
            time.sleep(every)


def register(app: typer.Typer) -> None:
    """Add ``plinth canary`` to ``app``."""
    app.command()(canary)
