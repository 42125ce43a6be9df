"""How ``plinth`` is put together (plinth.cli.main): every command, in every module, answers a
PlinthError the same way (code, message, hint, exit 1 or 2) because each goes through
``handle_errors``; run for real, the code and hint reach stderr with exit status 1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from plinth.cli.common import handle_errors
from plinth.cli.main import app
from tests.e2e.conftest import Env
from tests.support import churn_table, write_csv

WRAPPER = handle_errors(lambda: None).__code__


def _commands(typer_app: typer.Typer, prefix: str = "") -> Iterator[tuple[str, Callable[..., Any]]]:
    for info in typer_app.registered_commands:
        assert info.callback is not None
        yield prefix + (info.name or info.callback.__name__), info.callback
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None
        name = group.name or group.typer_instance.info.name
        yield from _commands(group.typer_instance, f"{prefix}{name} ")


def test_every_command_goes_through_handle_errors() -> None:
    commands = dict(_commands(app))
    # one from each command module: main, rollout, canary, feedback, training, contract, monitor
    for name in ("register", "deploy", "canary", "review resolve", "retrain", "contract set"):
        assert name in commands, sorted(commands)
    assert "monitor" in commands
    unwrapped = [n for n, callback in commands.items() if callback.__code__ is not WRAPPER]
    assert unwrapped == []


def test_the_check_tells_a_command_without_handle_errors() -> None:
    bare = typer.Typer()

    @bare.command()
    def plain() -> None:
        """A command that would print a traceback for a PlinthError."""

    assert [n for n, c in _commands(bare) if c.__code__ is not WRAPPER] == ["plain"]


@pytest.mark.e2e
def test_cli_errors_show_code_and_hint(plinth_env: Env, tmp_path: Path) -> None:
    missing = plinth_env.cli("show", "nothing", check=False)
    assert missing.returncode == 1
    assert "registry.model_not_found" in missing.stderr
    pickled = tmp_path / "m.pkl"
    pickled.write_bytes(b"not really")
    write_csv(churn_table(), tmp_path / "train.csv")
    refused = plinth_env.cli(
        "register",
        str(pickled),
        "--name",
        "m",
        "--train",
        str(tmp_path / "train.csv"),
        "--target",
        "churn",
        check=False,
    )
    assert refused.returncode == 1
    assert "registry.pickle_not_trusted" in refused.stderr and "hint" in refused.stderr
    unknown = plinth_env.cli("replay", "01ARZ3NDEKTSV4RRFFQ69G5FAV", check=False)
    assert unknown.returncode == 1 and "log.prediction_not_found" in unknown.stderr
