"""``plinth contract show|set``: read and edit a version's input contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from plinth.cli.common import console, handle_errors, open_runtime, parse_ref
from plinth.errors import UnreadableContractFileError
from plinth.services.rollout.applied import DEFAULT_WAIT_S

contract_app = typer.Typer(
    rich_markup_mode=None,  # help is plain text: "[default: …]" must survive
    name="contract",
    help="Show or edit a version's input contract (JSON).",
    no_args_is_help=True,
)


@contract_app.command("show")
@handle_errors
def show_contract(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    home: Annotated[Path | None, typer.Option("--home", envvar="PLINTH_HOME")] = None,
) -> None:
    """Print the contract as JSON (edit it, then `plinth contract set`)."""
    name, version = parse_ref(ref)
    with open_runtime(home) as runtime:
        record = runtime.store.get_version(name, version)
    print(json.dumps(record.metadata["contract"], indent=2))


@contract_app.command("set")
@handle_errors
def set_contract(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    file: Annotated[Path, typer.Argument(help="The edited contract JSON.")],
    reason: Annotated[str, typer.Option(help="Why, kept in the contract history.")] = "",
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            help="Seconds to wait for every live worker to serve the new contract; 0 returns "
            "at once.",
        ),
    ] = DEFAULT_WAIT_S,
    home: Annotated[Path | None, typer.Option("--home", envvar="PLINTH_HOME")] = None,
) -> None:
    """Replace the contract (same fields and kinds) as a new contract revision; running
    servers (every worker and replica) reload the version with it within a second."""
    from plinth.services.registry.contracts import update_contract
    from plinth.services.rollout.applied import wait_for_contract
    from plinth.services.rollout.deployments import current_user

    name, version = parse_ref(ref)
    try:
        document = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise UnreadableContractFileError(
            f"Cannot read {file}: {exc}",
        ) from exc
    with open_runtime(home) as runtime:
        record = update_contract(
            runtime.store, name, version, document, reason=reason, who=current_user()
        )
        revision = int(record.metadata["contract_revision"])
        console.print(
            f"[green]updated[/] the contract of {record.ref} (contract revision {revision})",
            highlight=False,
        )
        if wait > 0:
            applied = wait_for_contract(runtime.store, record.name, record.version, revision, wait)
            console.print(f"  {applied.describe()}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``plinth contract show | set`` to ``app``."""
    app.add_typer(contract_app)
