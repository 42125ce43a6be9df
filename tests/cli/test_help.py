"""``--help`` keeps what it says (issue 11, item 7): defaults in square brackets, flags that
take no value shown as such, and ``plinth --version``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plinth.version import __version__

PLINTH = str(Path(sys.executable).parent / "plinth")


def _run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [PLINTH, *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


@pytest.mark.parametrize("command", ["serve", "deploy", "monitor", "history"])
def test_help_keeps_square_brackets_and_shows_no_type_for_flags(command: str) -> None:
    text = _run(command, "--help")
    assert "Plinth's data folder [default: ./.plinth]." in text or "[env var: PLINTH_HOME]" in text
    assert "data folder ." not in text  # Rich markup ate "[default: …]"
    assert "<bool>" not in text
    assert "--help  " in text or "--help " in text


def test_serve_help_shows_the_home_default_and_a_bare_access_log_flag() -> None:
    text = _run("serve", "--help")
    assert "Plinth's data folder [default: ./.plinth]." in text
    line = next(line for line in text.splitlines() if "--access-log" in line)
    assert line.split()[0] == "--access-log" and not line.split()[1].startswith("<")


def test_version() -> None:
    assert _run("--version").strip() == f"plinth {__version__}"
