"""JSON views of stored records, shared by the HTTP API and the CLI's ``--json``."""

from __future__ import annotations

from typing import Any

from plinth.store import PredictionRecord, VersionRecord

BULKY_METADATA = ("reference_profile", "estimator", "review_context")


def version_view(record: VersionRecord, *, with_profile: bool = False) -> dict[str, Any]:
    """A version as users read it; the bulky statistical state only on request.

    The reference profile, the performance estimator and the reviewer-context sample
    (background and neighbour rows) can run to hundreds of kilobytes; listings and
    ``plinth show`` do not need them.
    """
    metadata = dict(record.metadata)
    if not with_profile:
        for bulky in BULKY_METADATA:
            metadata.pop(bulky, None)
    return {
        "name": record.name,
        "version": record.version,
        "sha256": record.sha256,
        "flavor": record.flavor,
        "task": record.task,
        "created_at": record.created_at.isoformat(),
        **metadata,
    }


def prediction_view(record: PredictionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "ts": record.ts.isoformat(),
        "model": record.model,
        "version": record.version,
        "sha256": record.sha256,
        "route": record.route,
        "request_id": record.request_id,
        "key": record.key,
        "input": record.input,
        "features": record.features,
        "output": record.output,
        "confidence": record.confidence,
        "latency_ms": record.latency_ms,
        "warnings": record.warnings,
        **({"trace_id": record.trace_id} if record.trace_id is not None else {}),
    }
