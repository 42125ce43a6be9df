"""Where a model version came from: code commit, interpreter and library versions."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

_LIBRARIES = ("plinth-ml", "scikit-learn", "numpy", "pandas", "scipy", "skops")
# The optional flavors' libraries, recorded when installed.
_OPTIONAL = ("onnxruntime", "onnx", "skl2onnx", "xgboost", "lightgbm", "mlflow-skinny", "mlflow")


def git_commit(cwd: Path) -> dict[str, Any] | None:
    """The commit checked out in ``cwd`` and whether the tree had changes, if it is a repo."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES + _OPTIONAL:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
