"""The console's templates and static files ship in the wheel (package-data covers them)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import plinth

PACKAGE = Path(plinth.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def test_package_data_covers_every_console_file() -> None:
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["plinth"]
    files = [
        p.relative_to(PACKAGE).as_posix()
        for folder in ("ui/templates", "ui/static")
        for p in (PACKAGE / folder).iterdir()
    ]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert not missing, f"add these to [tool.setuptools.package-data]: {missing}"
