"""Batch scoring of a table through the same contract, model, log and review gate as online
traffic: each chunk's prediction rows are committed first, then the review items of the rows
under the version's gate (the same ``ReviewWriter`` the server uses), so every review id
written to the output file exists and points at a logged prediction."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from plinth.core.ids import new_id
from plinth.services.registry.versions import ServedModel
from plinth.services.review.writer import ReviewWriter
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.scoring import Job, score

CHUNK_ROWS = 1000


@dataclass
class BatchSummary:
    rows: int
    scored: int
    failed: int
    warned: int
    reviewed: int = 0


def score_frame(
    model: ServedModel,
    frame: pd.DataFrame,
    log: LogWriter | None,
    *,
    reviews: ReviewWriter | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, BatchSummary]:
    """Score every row; a bad row gets an ``error`` cell instead of failing the file.

    With a review gate on ``model`` and a ``reviews`` writer (which needs ``log``: an item
    names its logged prediction), rows under the gate become review items exactly as
    online answers do, and the output gains ``review_id`` and ``review_status`` columns
    (empty for rows the model was sure about)."""
    gated = model.review is not None and reviews is not None and log is not None
    records = [
        {k: v for k, v in row.items() if not _missing(v)}
        for row in frame.astype(object).to_dict(orient="records")
    ]
    request_id = f"batch-{new_id()}"
    out: list[dict[str, Any]] = []
    scored = failed = warned = reviewed = 0
    for start in range(0, len(records), CHUNK_ROWS):
        chunk = records[start : start + CHUNK_ROWS]
        now = time.perf_counter()
        jobs = [Job([r], request_id, now, now + 3600.0, route="batch") for r in chunk]
        results = score(model, jobs)
        if log is not None:
            rows = [row for result in results for row in result.rows]
            log.submit(rows).result()
        if gated:
            assert reviews is not None
            # After their predictions are committed, as the server does before it replies.
            reviews.submit([d for result in results for d in result.reviews]).result()
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
            if gated:
                review = answer.get("review") or {}
                row["review_id"] = review.get("id", "")
                row["review_status"] = review.get("status", "")
                reviewed += bool(review)
            row["warnings"] = ",".join(sorted({w["code"] for w in answer["warnings"]}))
            row["error"] = ""
            out.append(row)
        if on_progress is not None:
            on_progress(len(chunk))
    scored_frame = pd.concat(
        [frame.reset_index(drop=True), pd.DataFrame(out, index=range(len(out)))], axis=1
    )
    return scored_frame, BatchSummary(len(records), scored, failed, warned, reviewed)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
