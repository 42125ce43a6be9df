"""Batch scoring of a table through the same contract, model, log and review gate as online
traffic: each chunk's prediction rows are committed first, then the review items of the rows
under the version's gate (the same ``ReviewWriter`` the server uses), so every review id
written to the output file exists and points at a logged prediction.

A chunk is one request of many records to the shared scorer (``score``): one contract pass,
one model call, one log group. A chunk with bad records is split: the records the contract
refused get their error cell and the others are scored again as one request; any other
failure (the model raised, an invalid output) scores that chunk's rows one by one, so a bad
row fails alone and its neighbours get the answers they would get on their own.

The log commit of a chunk runs on the log writer's thread while the next chunk is scored
(at most ``IN_FLIGHT`` chunks ahead); a chunk's review items are stored only once its
predictions are committed, and ``score_frame`` returns only when every row and item is.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from plinth.core.ids import new_id
from plinth.errors import ContractViolationError, PlinthError, Problem
from plinth.services.registry.versions import ServedModel
from plinth.services.review.writer import ReviewWriter
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.review_gate import ReviewDraft
from plinth.services.serving.scoring import Job, score
from plinth.store import PredictionRecord

CHUNK_ROWS = 2000
IN_FLIGHT = 2  # chunks whose log commit may still be running while the next is scored


@dataclass
class BatchSummary:
    rows: int
    scored: int
    failed: int
    warned: int
    reviewed: int = 0


@dataclass
class _Chunk:
    """One chunk's outcome: per record an answer or the text of its error cell."""

    answers: list[dict[str, Any] | None]
    errors: list[str | None]
    rows: list[PredictionRecord]
    reviews: list[ReviewDraft]


def score_frame(
    model: ServedModel,
    frame: pd.DataFrame,
    log: LogWriter | None,
    *,
    reviews: ReviewWriter | None = None,
    on_progress: Callable[[int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[pd.DataFrame, BatchSummary]:
    """Score every row; a bad row gets an ``error`` cell instead of failing the file.

    With a review gate on ``model`` and a ``reviews`` writer (which needs ``log``: an item
    names its logged prediction), rows under the gate become review items exactly as
    online answers do, and the output gains ``review_id`` and ``review_status`` columns
    (empty for rows the model was sure about)."""
    gated = model.review is not None and reviews is not None and log is not None
    request_id = f"batch-{new_id()}"
    out = _Output(gated)
    commits = _Commits(log, reviews if gated else None)
    try:
        for start in range(0, len(frame), chunk_rows):
            chunk = score_chunk(model, _records(frame.iloc[start : start + chunk_rows]), request_id)
            commits.add(chunk)
            out.add(chunk)
            if on_progress is not None:
                on_progress(len(chunk.answers))
        commits.finish()  # every row logged and every review item stored, or raise
    finally:
        commits.abandon()
    scored_frame = pd.concat([frame.reset_index(drop=True), out.frame()], axis=1)
    return scored_frame, out.summary


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """While scoring a file: what is alive already (modules, the model, the input table)
    outlives the scoring, so keep the cyclic garbage collector from walking it again at
    every full collection; those walks were a fifth of the CPU of scoring 100,000 rows.
    Both steps are constant-time list splices; objects become collectable again after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def score_chunk(model: ServedModel, records: list[dict[str, Any]], request_id: str) -> _Chunk:
    """Score ``records`` as one request; split it only when some record fails (see top)."""
    now = time.perf_counter()
    result = score(model, [Job(records, request_id, now, now + 3600.0, route="batch")])[0]
    if result.error is None:
        return _Chunk(list(result.answers), [None] * len(records), result.rows, result.reviews)
    problems = result.error.problems
    if (
        isinstance(result.error, ContractViolationError)
        and problems
        and all(p.record is not None for p in problems)
    ):
        refused: dict[int, list[Problem]] = {}
        for p in problems:
            if p.record is not None:
                refused.setdefault(p.record, []).append(p)
        keep = [i for i in range(len(records)) if i not in refused]
        rest = score_chunk(model, [records[i] for i in keep], request_id) if keep else None
        answers: list[dict[str, Any] | None] = [None] * len(records)
        errors: list[str | None] = [None] * len(records)
        for i, found in refused.items():
            errors[i] = _error_cell(result.error, found)
        if rest is not None:
            for i, answer, error in zip(keep, rest.answers, rest.errors, strict=True):
                answers[i], errors[i] = answer, error
        return _Chunk(
            answers, errors, [] if rest is None else rest.rows, [] if rest is None else rest.reviews
        )
    # The model raised or answered badly for some row: every row on its own, as online.
    now = time.perf_counter()
    jobs = [Job([r], request_id, now, now + 3600.0, route="batch") for r in records]
    chunk = _Chunk([], [], [], [])
    for single in score(model, jobs):
        if single.error is not None:
            chunk.answers.append(None)
            chunk.errors.append(_error_cell(single.error, single.error.problems))
        else:
            chunk.answers.append(single.answers[0])
            chunk.errors.append(None)
            chunk.rows.extend(single.rows)
            chunk.reviews.extend(single.reviews)
    return chunk


class _Output:
    """The answer columns, filled chunk by chunk.

    Plain lists of strings and floats, not a dict per row: a million dicts kept alive
    until the end made Python's cyclic garbage collector walk them again and again (a
    third of the CPU of a 100,000-row file)."""

    def __init__(self, gated: bool) -> None:
        self.gated = gated
        self.summary = BatchSummary(0, 0, 0, 0, 0)
        self.ids: list[str | None] = []
        self.predictions: list[Any] = []
        self.probabilities: dict[str, list[float | None]] = {}
        self.confidence: list[float | None] = []
        self.review_id: list[str | None] = []
        self.review_status: list[str | None] = []
        self.warnings: list[str | None] = []
        self.errors: list[str] = []

    def add(self, chunk: _Chunk) -> None:
        summary = self.summary
        summary.rows += len(chunk.answers)
        for answer, error in zip(chunk.answers, chunk.errors, strict=True):
            if answer is None:
                summary.failed += 1
                self._put(None, None, None, None, None, None, error or "")
                continue
            summary.scored += 1
            found = answer["warnings"]
            summary.warned += bool(found)
            review = (answer.get("review") or {}) if self.gated else None
            summary.reviewed += bool(review)
            self._put(
                answer,
                answer.get("probabilities") or {},
                answer["confidence"],
                None if review is None else review.get("id", ""),
                None if review is None else review.get("status", ""),
                ",".join(sorted({w["code"] for w in found})) if found else "",
                "",
            )

    def _put(
        self,
        answer: dict[str, Any] | None,
        probabilities: dict[str, float] | None,
        confidence: float | None,
        review_id: str | None,
        review_status: str | None,
        warnings: str | None,
        error: str,
    ) -> None:
        n = len(self.errors)
        self.ids.append(None if answer is None else answer["prediction_id"])
        self.predictions.append(None if answer is None else answer["prediction"])
        for label, p in (probabilities or {}).items():
            if label not in self.probabilities:
                self.probabilities[label] = [None] * n
            self.probabilities[label].append(p)
        for column in self.probabilities.values():
            if len(column) == n:
                column.append(None)
        self.confidence.append(confidence)
        self.review_id.append(review_id)
        self.review_status.append(review_status)
        self.warnings.append(warnings)
        self.errors.append(error)

    def frame(self) -> pd.DataFrame:
        return answers_frame(
            {
                "prediction_id": self.ids,
                "prediction": self.predictions,
                **{f"probability_{label}": p for label, p in self.probabilities.items()},
                "confidence": self.confidence,
                "review_id": self.review_id,
                "review_status": self.review_status,
                "warnings": self.warnings,
                "error": self.errors,
            },
            len(self.errors),
        )


def answers_frame(columns: Mapping[str, list[Any]], rows: int) -> pd.DataFrame:
    """The answer columns of a scored file, from plain lists (None where a row has no
    value), in one fixed order whatever engine scored it; a column no row has a value for
    is left out (a file of failed rows has only ``error``, a regressor no ``confidence``)."""
    first = ["prediction_id", "prediction"]
    last = ["confidence", "review_id", "review_status", "warnings", "error"]
    order = first + [c for c in columns if c not in first and c not in last] + last
    kept = {
        name: columns[name]
        for name in order
        if name in columns and any(v is not None for v in columns[name])
    }
    return pd.DataFrame(kept, index=range(rows))


class _Commits:
    """The chunks whose rows are on their way to the log, oldest first."""

    def __init__(self, log: LogWriter | None, reviews: ReviewWriter | None) -> None:
        self.log = log
        self.reviews = reviews
        self.logging: deque[tuple[Future[None], list[ReviewDraft]]] = deque()
        self.storing: list[Future[None]] = []

    def add(self, chunk: _Chunk) -> None:
        if self.log is None:
            return
        self.logging.append((self.log.submit(chunk.rows), chunk.reviews))
        while len(self.logging) > IN_FLIGHT:
            self._settle_oldest()

    def finish(self) -> None:
        while self.logging:
            self._settle_oldest()
        for stored in self.storing:
            stored.result()
        self.storing.clear()

    def abandon(self) -> None:
        """After a failure: drop what is queued (the writers commit it on close)."""
        self.logging.clear()
        self.storing.clear()

    def _settle_oldest(self) -> None:
        committed, drafts = self.logging.popleft()
        committed.result()  # raises the store's error: no review item, no output file
        if self.reviews is not None and drafts:
            # After their predictions are committed, as the server does before it replies.
            self.storing.append(self.reviews.submit(drafts))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as request records: a missing cell is a missing field, as in a JSON body."""
    return [
        {k: v for k, v in row.items() if not _missing(v)}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def _error_cell(error: PlinthError, problems: Sequence[Problem]) -> str:
    detail = "; ".join(f"{p.field}: {p.code}" if p.field else p.code for p in problems)
    return f"{error.code}" + (f" ({detail})" if detail else "")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
