"""What every ``plinth`` command shares: consoles, error display, opening the store.

Start-up matters here: ``plinth --help`` imports every command module, so they import only
Typer, Rich and the errors at the top, and a command imports the services it uses (and
with them SQLAlchemy, pandas, scikit-learn) in its body. ``tests/cli/test_startup.py``
checks that the heavy libraries stay out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from plinth.errors import BadModelReferenceError, ConfigError, PlinthError

if TYPE_CHECKING:
    from plinth.config.settings import Settings
    from plinth.runtime import Runtime

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="PLINTH_HOME", help="Plinth's data folder [default: ./.plinth]."),
]


def handle_errors(func: F) -> F:
    """Show PlinthErrors the way the HTTP API does (code, message, hint) and exit non-zero:
    2 for a configuration problem (a setting or plinth.toml), 1 for anything else."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlinthError as exc:
            err_console.print(
                f"[bold red]error[/] {escape(f'[{exc.code}]')} {escape(exc.message)}",
                highlight=False,
            )
            for problem in exc.problems[:50]:
                where = f"record {problem.record}, " if problem.record is not None else ""
                field = f"{problem.field}: " if problem.field else ""
                line = f"  - {where}{field}{problem.message} [{problem.code}]"
                err_console.print(escape(line), highlight=False)
                if problem.hint and problem.hint != exc.hint:
                    err_console.print(f"    [dim]{escape(problem.hint)}[/]", highlight=False)
            if len(exc.problems) > 50:
                err_console.print(f"  … and {len(exc.problems) - 50} more")
            if exc.hint:
                err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False)
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A Rich bar on stderr (stdout stays clean for the command's output); yields
    ``advance(n)``. One look for every long-running command."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def open_settings(home: Path | None) -> Settings:
    """The settings from ``PLINTH_*``, with ``--home`` on top when given."""
    from plinth.config.settings import Settings

    settings = Settings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    return settings


@contextmanager
def open_runtime(home: Path | None, settings: Settings | None = None) -> Iterator[Runtime]:
    """The one way a command reaches the store and services: a Runtime, closed on exit."""
    from plinth.runtime import Runtime

    runtime = Runtime.open(settings or open_settings(home))
    try:
        yield runtime
    finally:
        runtime.close()


def parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        raise BadModelReferenceError(ref)
    return name, int(version) if version else None
