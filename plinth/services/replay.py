"""Replay: run a logged prediction's exact features through its exact artifact again."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from plinth.core.privacy import altered_fields
from plinth.errors import HashMismatchError, Problem, ReplayRedactedError
from plinth.errors.privacy import REDACTED
from plinth.services.registry.versions import Registry
from plinth.services.serving.scoring import answer_rows, output_record
from plinth.store import PredictionRecord, Store


@dataclass
class ReplayResult:
    """The logged and the recomputed output, and where they differ."""

    record: PredictionRecord
    logged: dict[str, Any]
    replayed: dict[str, Any]
    differences: list[str] = field(default_factory=list)
    # Set for a remote model: the request was sent again, and its answer may differ.
    note: str | None = None

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
    try:
        predictions, probabilities, details = answer_rows(model, frame)
    finally:
        model.flavor.close()
    classes = [str(c) for c in model.output.classes or []]
    replayed = output_record(predictions, probabilities, classes, 0, details)
    logged_remote = record.output.get("remote")
    if isinstance(logged_remote, dict) and details is not None:
        return _remote_result(record, replayed, logged_remote)
    return ReplayResult(record, record.output, replayed, diff(record.output, replayed))


REMOTE_NOTE = (
    "A remote model was asked again: the same request (same spec, same rendered prompt), "
    "but the provider may answer differently even at temperature 0."
)


def _remote_result(
    record: PredictionRecord, replayed: dict[str, Any], logged_remote: dict[str, Any]
) -> ReplayResult:
    """Compare what the answer is (prediction, probabilities, the parsed object); the
    request must be the logged one, while usage, cost and attempts may differ freely."""
    remote = replayed.get("remote", {})

    def answer(output: dict[str, Any], parsed: Any) -> dict[str, Any]:
        kept = {k: v for k, v in output.items() if k in ("prediction", "probabilities")}
        return {**kept, "parsed": parsed}

    logged = answer(record.output, logged_remote.get("parsed"))
    again = answer(replayed, remote.get("parsed"))
    differences = diff(logged, again)
    if logged_remote.get("request_sha256") != remote.get("request_sha256"):
        differences.insert(0, "request: the re-sent request differs from the logged one")
    return ReplayResult(record, logged, again, differences, note=REMOTE_NOTE)


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
