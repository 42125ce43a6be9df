"""Plain records the store reads and writes; services build and consume them.

They hold JSON-ready Python values only (dicts, lists, str, float, int, bool, None),
so the store can serialise them without knowing what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class VersionRecord:
    """One immutable model version as registered.

    ``metadata`` holds the JSON documents the registry writes: ``contract``,
    ``output_contract``, ``reference_profile``, ``metrics``, ``lineage``, ``tags``,
    ``artifact`` (file name, size, format) and anything later issues add.
    ``version`` is 0 on a record not yet stored; the store assigns 1, 2, 3 per name.
    """

    name: str
    version: int
    sha256: str
    flavor: str
    task: str
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelSummary:
    """A model name with its newest version, for listings."""

    name: str
    latest_version: int
    versions: int
    task: str
    updated_at: datetime


#: Where a prediction's trace id is kept inside the stored output document.
TRACE_KEY = "trace_id"


def split_trace(output: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A stored output document as (the output, the trace id it carried)."""
    if TRACE_KEY not in output:
        return output, None
    rest = dict(output)
    return rest, rest.pop(TRACE_KEY)


@dataclass(frozen=True)
class PredictionRecord:
    """One served prediction, exactly as it must be replayable later.

    ``id`` is time-sortable (a ULID string). ``input`` is the raw record as received,
    ``features`` the repaired features the model actually saw, ``output`` holds
    ``prediction`` and, for classifiers, ``probabilities``. ``fields`` (the version's
    contract fields, in order) lets the log store a record that has exactly those keys as
    a positional array; it is not part of the record's meaning.
    """

    id: str
    ts: datetime
    model: str
    version: int
    sha256: str
    route: str
    input: dict[str, Any]
    features: dict[str, Any]
    output: dict[str, Any]
    confidence: float | None
    latency_ms: float
    warnings: list[dict[str, Any]]
    request_id: str
    key: str | None = None
    fields: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    # The OpenTelemetry trace that served it (PLINTH_TRACING); kept inside the output's
    # JSON document under "trace_id" and taken out again on reading.
    trace_id: str | None = None
