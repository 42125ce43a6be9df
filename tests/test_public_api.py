from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import plinth


def test_all_is_sorted_and_real() -> None:
    assert plinth.__all__ == sorted(plinth.__all__)
    for name in plinth.__all__:
        assert hasattr(plinth, name), name


def test_cli_help_lists_the_commands() -> None:
    plinth_bin = Path(sys.executable).parent / "plinth"
    done = subprocess.run(
        [str(plinth_bin), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    for command in ("register", "models", "show", "serve", "predict", "replay", "prune"):
        assert command in done.stdout
