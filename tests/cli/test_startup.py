"""``plinth`` starts without the heavy libraries (issue 11, item 8).

``plinth --help`` imports every command module, so one module-level import of a service
would load pandas, scipy and scikit-learn (two seconds) before the help appears. Each test
runs a fresh interpreter, does what the command line does, and reads ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plinth.version import __version__

#: Never needed to list commands or models.
STATISTICS = ("pandas", "scipy", "sklearn", "numpy")
#: Not needed until a command reaches the store.
STORE = ("sqlalchemy", "alembic", "pydantic_settings")

# Runs ``plinth ARGS...`` in-process, then prints which of the named modules it loaded, as
# the last line of stdout.
_RUN = """
import json, sys
names, sys.argv = sys.argv[1].split(","), ["plinth", *sys.argv[2:]]
if sys.argv[1:] == ["(import)"]:
    import plinth.cli.main
    code = 0
else:
    from plinth.cli.main import main
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code
print()
print(json.dumps({"exit": code, "loaded": [n for n in names if n in sys.modules]}))
"""


def _run(args: list[str], watch: tuple[str, ...], env: dict[str, str]) -> tuple[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, ",".join(watch), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    *output, last = done.stdout.rstrip("\n").splitlines()
    result = json.loads(last)
    assert result["exit"] == 0, done.stdout + done.stderr
    return "\n".join(output), result["loaded"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    return {**clean, "PLINTH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


def test_the_check_sees_what_was_loaded(env: dict[str, str]) -> None:
    _, loaded = _run(["(import)"], ("typer", "no_such_module"), env)
    assert loaded == ["typer"]


def test_importing_the_cli_loads_no_statistics_and_no_store(env: dict[str, str]) -> None:
    _, loaded = _run(["(import)"], STATISTICS + STORE, env)
    assert loaded == []


@pytest.mark.parametrize("args", [["--help"], ["deploy", "--help"], ["contract", "--help"]])
def test_help_loads_no_statistics_and_no_store(env: dict[str, str], args: list[str]) -> None:
    text, loaded = _run(args, STATISTICS + STORE, env)
    assert "Usage: plinth" in text
    assert loaded == []


def test_top_level_help_still_lists_every_command(env: dict[str, str]) -> None:
    text, _ = _run(["--help"], (), env)
    commands = "register models show serve predict deploy canary feedback review retrain forget"
    for command in [*commands.split(), "contract", "monitor", "prometheus-rules"]:
        assert f"│ {command} " in text or f"  {command} " in text, command


def test_version_loads_no_statistics_and_no_store(env: dict[str, str]) -> None:
    text, loaded = _run(["--version"], STATISTICS + STORE, env)
    assert text.strip() == f"plinth {__version__}"
    assert loaded == []


def test_models_loads_no_statistics(env: dict[str, str], database_url: str) -> None:
    """``plinth models`` reads two tables: SQLAlchemy, never pandas, scipy or scikit-learn.
    Once the database is at the newest revision, not Alembic either."""
    env["PLINTH_DATABASE_URL"] = database_url
    text, loaded = _run(["models"], (*STATISTICS, "alembic"), env)  # first run: migrates
    assert "No models registered yet" in text
    assert loaded == ["alembic"]
    text, loaded = _run(["models", "--json"], (*STATISTICS, "alembic", "sqlalchemy"), env)
    assert json.loads(text) == []
    assert loaded == ["sqlalchemy"]


def test_models_on_sqlite_loads_no_postgresql_dialect(env: dict[str, str], tmp_path: Path) -> None:
    """~30 ms of every SQLite command went to loading SQLAlchemy's PostgreSQL dialect (and
    asyncpg's adapter) for two partial-index options and one upsert."""
    env["PLINTH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'plinth.db'}"
    _run(["models"], (), env)  # migrates
    _, loaded = _run(
        ["models"], ("sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql"), env
    )
    assert loaded == ["sqlalchemy.dialects.sqlite"]
