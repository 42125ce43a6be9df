"""What changed between two versions of a model: for a remote model, its prompt (as a
line diff), parameters, output schema and call settings; for a trained model, its
artifact, flavor, parameters and contract fields. ``plinth diff NAME A B`` prints it."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from plinth.store import VersionRecord


@dataclass
class Change:
    """One setting that differs; ``lines`` is a unified diff for multi-line text."""

    path: str
    before: Any
    after: Any
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after, "diff": self.lines}


def version_changes(a: VersionRecord, b: VersionRecord) -> list[Change]:
    """Every difference that matters to the answers between versions ``a`` and ``b``."""
    changes: list[Change] = []
    left, right = _comparable(a), _comparable(b)
    for path in sorted(set(left) | set(right)):
        before, after = left.get(path), right.get(path)
        if before == after:
            continue
        lines: list[str] = []
        if isinstance(before, str) and isinstance(after, str) and "\n" in before + after:
            lines = list(
                difflib.unified_diff(
                    before.splitlines(),
                    after.splitlines(),
                    f"{a.name}:{a.version} {path}",
                    f"{b.name}:{b.version} {path}",
                    lineterm="",
                )
            )
        changes.append(Change(path, before, after, lines))
    return changes


def _comparable(record: VersionRecord) -> dict[str, Any]:
    meta = record.metadata
    flat: dict[str, Any] = {"sha256": record.sha256, "flavor": record.flavor, "task": record.task}
    remote = meta.get("remote")
    if isinstance(remote, dict):
        for section, values in remote.items():
            for key, value in (values or {}).items():
                flat[f"{section}.{key}"] = (
                    json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
                )
    else:
        for key, value in (meta.get("lineage", {}).get("params") or {}).items():
            flat[f"params.{key}"] = value
    for spec in meta.get("contract", {}).get("fields", []):
        flat[f"contract.{spec['name']}"] = spec.get("kind")
    return flat
