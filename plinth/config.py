"""Reading ``plinth.toml``: per-model policies for alerts, canaries and review.

One reader for every section, so a syntax error is reported the same way whoever reads
the file first. A missing file means "all defaults"; the path comes from the settings
(``PLINTH_MONITORING_FILE``, default ``./plinth.toml``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError


def read_plinth_toml(path: Path) -> dict[str, Any]:
    """The parsed document, or an empty one when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"Cannot read {path}: {exc}.",
            code="config.plinth_toml",
            hint="Fix the TOML syntax, or point PLINTH_MONITORING_FILE at another file.",
        ) from exc
