"""Batch scoring of a table through the same contract, model and log as online traffic."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from ulid import ULID

from plinth.services.logwriter import LogWriter
from plinth.services.registry import ServedModel
from plinth.services.scoring import Job, score

CHUNK_ROWS = 1000


@dataclass
class BatchSummary:
    rows: int
    scored: int
    failed: int
    warned: int


def score_frame(
    model: ServedModel,
    frame: pd.DataFrame,
    log: LogWriter | None,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, BatchSummary]:
    """Score every row; a bad row gets an ``error`` cell instead of failing the file."""
    records = [
        {k: v for k, v in row.items() if not _missing(v)}
        for row in frame.astype(object).to_dict(orient="records")
    ]
    request_id = f"batch-{ULID()}"
    out: list[dict[str, Any]] = []
    scored = failed = warned = 0
    for start in range(0, len(records), CHUNK_ROWS):
        chunk = records[start : start + CHUNK_ROWS]
        now = time.perf_counter()
        jobs = [Job([r], request_id, now, now + 3600.0, route="batch") for r in chunk]
        results = score(model, jobs)
        if log is not None:
            rows = [row for result in results for row in result.rows]
            log.submit(rows).result()
        for result in results:
            if result.error is not None:
                failed += 1
                detail = "; ".join(
                    f"{p.field}: {p.code}" if p.field else p.code for p in result.error.problems
                )
                out.append({"error": f"{result.error.code}" + (f" ({detail})" if detail else "")})
                continue
            answer = result.answers[0]
            scored += 1
            warned += bool(answer["warnings"])
            row: dict[str, Any] = {
                "prediction_id": answer["prediction_id"],
                "prediction": answer["prediction"],
            }
            for label, p in (answer.get("probabilities") or {}).items():
                row[f"probability_{label}"] = p
            if answer["confidence"] is not None:
                row["confidence"] = answer["confidence"]
            row["warnings"] = ",".join(sorted({w["code"] for w in answer["warnings"]}))
            row["error"] = ""
            out.append(row)
        if on_progress is not None:
            on_progress(len(chunk))
    scored_frame = pd.concat(
        [frame.reset_index(drop=True), pd.DataFrame(out, index=range(len(out)))], axis=1
    )
    return scored_frame, BatchSummary(len(records), scored, failed, warned)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
