"""How ``plinth`` is put together (plinth.cli.main): every command, in every module, answers a
PlinthError the same way (code, message, hint, exit 1 or 2) because each goes through
``handle_errors``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import typer

from plinth.cli.common import handle_errors
from plinth.cli.main import app

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
