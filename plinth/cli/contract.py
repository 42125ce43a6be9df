"""``plinth contract show|set``: read and edit a version's input contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from plinth.cli.common import console, handle_errors, open_runtime, parse_ref
from plinth.errors import UnreadableContractFileError
from plinth.services.registry.contracts import update_contract

contract_app = typer.Typer(
    name="contract",
    help="Show or edit a version's input contract (JSON).",
    no_args_is_help=True,
)


@contract_app.command("show")
def show_contract(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    home: Annotated[Path | None, typer.Option("--home", envvar="PLINTH_HOME")] = None,
) -> None:
    """Print the contract as JSON (edit it, then `plinth contract set`)."""

    @handle_errors
    def run() -> None:
        name, version = parse_ref(ref)
        with open_runtime(home) as runtime:
            record = runtime.store.get_version(name, version)
        print(json.dumps(record.metadata["contract"], indent=2))

    run()


@contract_app.command("set")
def set_contract(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    file: Annotated[Path, typer.Argument(help="The edited contract JSON.")],
    reason: Annotated[str, typer.Option(help="Why, kept in the contract history.")] = "",
    home: Annotated[Path | None, typer.Option("--home", envvar="PLINTH_HOME")] = None,
) -> None:
    """Replace the contract (same fields and kinds); servers apply it when they next load."""

    @handle_errors
    def run() -> None:
        name, version = parse_ref(ref)
        try:
            document = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise UnreadableContractFileError(
                f"Cannot read {file}: {exc}",
            ) from exc
        with open_runtime(home) as runtime:
            record = update_contract(runtime.store, name, version, document, reason=reason)
        console.print(f"[green]updated[/] the contract of {record.ref}", highlight=False)

    run()
