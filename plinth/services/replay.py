"""Replay: run a logged prediction's exact features through its exact artifact again."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from plinth.core.privacy import altered_fields
from plinth.errors import HashMismatchError, Problem, ReplayRedactedError
from plinth.errors.privacy import REDACTED
from plinth.services.registry.versions import Registry
from plinth.services.serving.scoring import call_model, output_record
from plinth.store import PredictionRecord, Store


@dataclass
class ReplayResult:
    """The logged and the recomputed output, and where they differ."""

    record: PredictionRecord
    logged: dict[str, Any]
    replayed: dict[str, Any]
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences


def replay(store: Store, registry: Registry, prediction_id: str) -> ReplayResult:
    """Recompute one prediction; identical for a deterministic model."""
    record = store.get_prediction(prediction_id)
    version = store.get_version(record.model, record.version)
    if version.sha256 != record.sha256:
        raise HashMismatchError(
            f"{record.model}:{record.version} now has artifact {version.sha256[:12]}…, "
            f"but the prediction was made by {record.sha256[:12]}….",
            hint="The version record was altered; restore the store from backup.",
        )
    model = registry.load(version)  # re-checks the artifact's sha256
    # The log policy dropped or hashed these before storage; the model saw the real values.
    altered = altered_fields(record.warnings)
    lost = [name for name in model.field_order if name in altered]
    if lost:
        raise ReplayRedactedError(
            f"{record.model}:{record.version} prediction {prediction_id} cannot be replayed "
            f"exactly: the log does not hold the values of {', '.join(lost)}.",
            problems=[
                Problem(
                    altered[name],
                    f"{name!r} was {'redacted' if altered[name] == REDACTED else 'hashed'} "
                    "before storage",
                    field=name,
                )
                for name in lost
            ],
        )
    frame = model.contract.frame([record.features])
    predictions, probabilities = call_model(model, frame)
    classes = [str(c) for c in model.output.classes or []]
    replayed = output_record(predictions, probabilities, classes, 0)
    return ReplayResult(record, record.output, replayed, diff(record.output, replayed))


def diff(logged: Any, replayed: Any, path: str = "output") -> list[str]:
    """Every place two JSON values differ, exactly (floats compared bit for bit)."""
    if isinstance(logged, dict) and isinstance(replayed, dict):
        out: list[str] = []
        for key in sorted(set(logged) | set(replayed), key=str):
            if key not in logged or key not in replayed:
                out.append(f"{path}.{key}: only in {'logged' if key in logged else 'replayed'}")
            else:
                out.extend(diff(logged[key], replayed[key], f"{path}.{key}"))
        return out
    if isinstance(logged, float) and isinstance(replayed, float):
        same = logged == replayed or (math.isnan(logged) and math.isnan(replayed))
        return [] if same else [f"{path}: {logged!r} → {replayed!r}"]
    if logged != replayed or type(logged) is not type(replayed):
        return [f"{path}: {logged!r} → {replayed!r}"]
    return []
