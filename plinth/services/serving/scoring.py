"""Score a batch of requests for one version: contract, model, output contract, log rows.

This is the synchronous heart of the request path and runs on a worker thread, never on
the event loop. Everything is done once per batch (one contract pass, one model call);
a request whose records break the contract, or whose rows the model fails on, fails
alone — its batch-mates are still answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from plinth.core.contract import ContractResult
from plinth.core.ids import new_ids
from plinth.core.output import confidence as top_probability
from plinth.errors import (
    BadModelOutputError,
    ContractViolationError,
    DeadlineExceededError,
    ModelError,
    ModelRaisedError,
    PlinthError,
    Problem,
)
from plinth.flavors.base import CALL_ATTEMPTS, CALL_DEADLINE
from plinth.services import telemetry
from plinth.services.registry.versions import ServedModel
from plinth.services.serving import review_gate
from plinth.services.tracing import RequestTrace, StageTimes
from plinth.store import PredictionRecord

log = logging.getLogger("plinth.scoring")

# Called on the scoring thread with the rows that were answered: the model frame the
# contract produced, the predictions and (for classifiers) the probabilities. Monitoring
# folds these into interval profiles. An observer must be cheap and must not raise; if it
# does, the error is logged and the replies go out regardless.
BatchObserver = Callable[[ServedModel, pd.DataFrame, np.ndarray, "np.ndarray | None"], None]


@runtime_checkable
class ReplyObserver(Protocol):
    """An observer that also counts the answered requests (monitoring's collector), once
    per answered batch: each result with its seconds since the request arrived."""

    def observe_replies(
        self, model: ServedModel, replies: Sequence[tuple[JobResult, float]]
    ) -> None: ...


@dataclass
class Job:
    """One caller's request: its records and where the reply should go."""

    records: list[Any]
    request_id: str
    received: float  # time.perf_counter() at arrival
    deadline: float  # perf_counter() value after which the job is answered with an error
    route: str = "champion"
    key: str | None = None
    trace: RequestTrace | None = None  # the request's span, when tracing is on


@dataclass
class JobResult:
    """Either the per-record answers and their log rows, or the one error for the job."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    rows: list[PredictionRecord] = field(default_factory=list)
    error: PlinthError | None = None
    # Review items for answers below the version's gate, stored right after ``rows``.
    reviews: list[review_gate.ReviewDraft] = field(default_factory=list)


def score(
    model: ServedModel,
    jobs: list[Job],
    observers: Sequence[BatchObserver] = (),
    times: StageTimes | None = None,
) -> list[JobResult]:
    """Answer every job in ``jobs`` with one contract pass and (usually) one model call.

    ``times`` (tracing only) gets the epoch time at each stage's edges."""
    results = [JobResult() for _ in jobs]
    now = time.perf_counter()
    live: list[int] = []
    for i, job in enumerate(jobs):
        if now > job.deadline:
            results[i].error = DeadlineExceededError(
                "The request waited past its deadline before the model could run.",
                hint="The server is overloaded; retry with backoff or raise the deadline.",
            )
        else:
            live.append(i)
    if not live:
        return results

    records = [r for i in live for r in jobs[i].records]
    if times is not None:
        started = times.now()
    checked = model.contract.apply(records)
    if times is not None:
        times.contract = (started, times.now())
    starts = np.cumsum([0] + [len(jobs[i].records) for i in live])
    valid_jobs: list[int] = []
    for n, i in enumerate(live):
        problems = [p for k in range(starts[n], starts[n + 1]) for p in checked.problems[k]]
        if problems:
            results[i].error = contract_error(problems, int(starts[n]))
        else:
            valid_jobs.append(n)
    if not valid_jobs:
        return results
    _predict_jobs(model, jobs, live, valid_jobs, starts, checked, results, observers, times)
    return results


def answer_and_row(
    model: ServedModel,
    *,
    prediction_id: str,
    ts: datetime,
    output: dict[str, Any],
    confidence: float | None,
    route: str,
    warnings: list[dict[str, Any]],
    record: dict[str, Any],
    features: dict[str, Any],
    latency_ms: float,
    request_id: str,
    key: str | None,
    trace_id: str | None = None,
) -> tuple[dict[str, Any], PredictionRecord]:
    """One answer as the caller sees it and as the log keeps it (every path answers so:
    the model, the fallback chain's default responder)."""
    answer = {
        "prediction_id": prediction_id,
        "prediction": output["prediction"],
        **({"probabilities": output["probabilities"]} if "probabilities" in output else {}),
        "confidence": confidence,
        "version": model.version,
        "route": route,
        "warnings": warnings,
    }
    remote = output.get("remote")
    if isinstance(remote, dict):  # the structured answer and what it cost, not the request
        answer["remote"] = {k: remote.get(k) for k in ("parsed", "usage", "cost", "cached")}
    # [models.NAME.log]: what must not be stored is dropped or hashed here, before the row
    # exists, so no store, writer queue or error message ever holds the raw value.
    policy = model.log_policy
    if policy.changes_records:
        marks = policy.marks(record, model.name)
        if marks:
            warnings = warnings + marks
            record = policy.apply(record)
        features = policy.apply(features)
    row = PredictionRecord(
        id=prediction_id,
        ts=ts,
        model=model.name,
        version=model.version,
        sha256=model.sha256,
        route=route,
        input=record,
        features=features,
        output=output,
        confidence=confidence,
        latency_ms=latency_ms,
        warnings=warnings,
        request_id=request_id,
        key=policy.stored_key(key),
        fields=model.field_order,
        trace_id=trace_id,
    )
    return answer, row


def contract_error(problems: list[Problem], offset: int = 0) -> ContractViolationError:
    """Renumber record positions so they index into the caller's own list."""
    renumbered = [
        Problem(p.code, p.message, p.hint, p.field, None if p.record is None else p.record - offset)
        for p in problems
    ]
    return ContractViolationError(renumbered)


def _predict_jobs(
    model: ServedModel,
    jobs: list[Job],
    live: list[int],
    valid_jobs: list[int],
    starts: np.ndarray,
    checked: ContractResult,
    results: list[JobResult],
    observers: Sequence[BatchObserver],
    times: StageTimes | None = None,
) -> None:
    # Position of each input record inside checked.frame (valid records only).
    frame_pos = np.full(int(starts[-1]), -1, dtype=np.int64)
    frame_pos[checked.valid] = np.arange(len(checked.valid))
    rows = np.concatenate([frame_pos[starts[n] : starts[n + 1]] for n in valid_jobs])
    if len(rows) == len(checked.frame) and (rows == np.arange(len(rows))).all():
        frame = checked.frame  # the usual batch: every record valid, nothing to select
    else:
        frame = checked.frame.iloc[rows].reset_index(drop=True)
    features = checked.features()
    # A flavor that waits on I/O (a remote model) keeps to the batch's earliest deadline.
    deadline = CALL_DEADLINE.set(min(jobs[live[n]].deadline for n in valid_jobs))
    # Traced, a remote flavor notes each HTTP attempt here (one span per attempt).
    noting = CALL_ATTEMPTS.set(times.attempts) if times is not None else None
    try:
        t0 = time.perf_counter()
        if times is not None and not times.model[0]:
            times.model = (times.now(), 0)
        predictions, probabilities, details = answer_rows(model, frame)
        telemetry.MODEL_SECONDS.labels(model.name, str(model.version)).observe(
            time.perf_counter() - t0
        )
        if times is not None:  # a batch split to find a culprit: first call to last
            times.model = (times.model[0], times.now())
        telemetry.BATCH_RECORDS.labels(model.name).observe(len(frame))
    except Exception as exc:
        if times is not None:  # a failed call ends too (its attempts fall inside it)
            times.model = (times.model[0], times.now())
        if len(valid_jobs) > 1:
            # Isolate the culprit: score each request on its own.
            for n in valid_jobs:
                _predict_jobs(model, jobs, live, [n], starts, checked, results, observers, times)
            return
        # A flavor's own model error (a remote endpoint down, a reply off its schema)
        # keeps its code, so the fallback chain and the metrics say why.
        results[live[valid_jobs[0]]].error = (
            exc
            if isinstance(exc, ModelError)
            else ModelRaisedError(f"The model raised {type(exc).__name__}: {exc}")
        )
        return
    finally:
        CALL_DEADLINE.reset(deadline)
        if noting is not None:
            CALL_ATTEMPTS.reset(noting)
    if times is not None:
        started = times.now()
    verdicts = model.output.check(predictions, probabilities, len(frame))
    if times is not None:
        times.output = (started, times.now())
    conf = top_probability(probabilities) if probabilities is not None else None
    # The review gate: one vectorised pass over the batch; None when the version has none.
    gated = review_gate.gate(model, frame, predictions, probabilities)
    if times is not None and gated is not None:
        times.review = (times.output[1], times.now())
    classes = [str(c) for c in model.output.classes or []]
    ts = datetime.now(UTC)
    done = time.perf_counter()
    ids = iter(new_ids(len(frame)))  # one draw for the batch's ids, in answer order
    outputs = output_records(predictions, probabilities, classes, details)
    confs = None if conf is None else np.asarray(conf, dtype=float).tolist()
    offset = 0
    answered: list[range] = []
    for n in valid_jobs:
        i = live[n]
        job = jobs[i]
        count = len(job.records)
        span = range(offset, offset + count)
        offset += count
        bad = [v for v in (verdicts[k] for k in span) if v is not None]
        if bad:
            results[i].error = BadModelOutputError(
                f"The model returned invalid output for {len(bad)} of {count} records.",
                problems=[
                    Problem(p.code, p.message, p.hint, p.field, k - span.start)
                    for k, p in zip(span, (verdicts[k] for k in span), strict=True)
                    if p is not None
                ],
            )
            continue
        answered.append(span)
        latency_ms = (done - job.received) * 1000.0
        result = results[i]
        for k, pos in zip(span, range(int(starts[n]), int(starts[n]) + count), strict=True):
            output = outputs[k]
            record_conf = None if confs is None else confs[k]
            warnings = [w.to_dict() for w in checked.warnings[pos]]
            prediction_id = next(ids)
            answer, row = answer_and_row(
                model,
                prediction_id=prediction_id,
                ts=ts,
                output=output,
                confidence=record_conf,
                route=job.route,
                warnings=warnings,
                record=_as_object(job.records[pos - int(starts[n])]),
                features=features[int(frame_pos[pos])],
                latency_ms=latency_ms,
                request_id=job.request_id,
                key=job.key,
                trace_id=None if job.trace is None else job.trace.trace_id,
            )
            if gated is not None and gated[0][k]:
                draft = review_gate.draft(model, prediction_id, ts, float(gated[1][k]), output)
                answer["review"] = {"id": draft.row.id, "status": "pending"}
                draft.features = features[int(frame_pos[pos])]
                result.reviews.append(draft)
            result.answers.append(answer)
            result.rows.append(row)
    if observers and answered:
        _notify(observers, model, frame, predictions, probabilities, answered)


def _notify(
    observers: Sequence[BatchObserver],
    model: ServedModel,
    frame: pd.DataFrame,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    answered: list[range],
) -> None:
    if sum(len(r) for r in answered) < len(frame):
        rows = np.concatenate([np.arange(r.start, r.stop) for r in answered])
        frame = frame.iloc[rows]
        predictions = predictions[rows]
        probabilities = None if probabilities is None else probabilities[rows]
    for observer in observers:
        try:
            observer(model, frame, predictions, probabilities)
        except Exception:  # monitoring must never fail a reply
            log.exception("batch observer %r failed", observer)


def prepare(model: ServedModel) -> bool:
    """Let the flavor pick its cheapest exact way of calling the model, once per load.

    The flavor checks the cheaper call against the usual one on records spread over the
    contract's ranges and keeps it only if every answer is identical, so serving, replay
    and batch scoring agree whichever way they call. True when the cheaper way is in use.
    """
    probe = model.contract.apply(model.contract.probe_records())
    if len(probe.valid) < len(probe.problems):  # a hand-edited contract: keep it simple
        return False
    try:
        return model.flavor.serve_faster(probe.frame)
    except Exception:  # pragma: no cover - serve_faster refuses rather than raises
        log.warning("could not prepare %s:%s", model.name, model.version, exc_info=True)
        return False


def answer_rows(
    model: ServedModel, frame: Any
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]] | None]:
    """``call_model`` plus each row's record of how it was answered, for the flavors that
    keep one (a remote model's request, reply and usage); None for the others."""
    answered = model.flavor.answer(frame)
    if answered is None:
        return (*call_model(model, frame), None)
    return answered.predictions, answered.probabilities, answered.details


def call_model(model: ServedModel, frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and (for classifiers) probabilities, the way serving and replay both do it."""
    if model.output.task == "classification" and model.flavor.has_proba:
        probabilities = model.flavor.predict_proba(frame)
        if probabilities is None:  # pragma: no cover - has_proba guarantees it
            raise ValueError("predict_proba returned None")
        probabilities = np.asarray(probabilities, dtype=float)
        classes = model.output.classes or []
        if probabilities.ndim == 2 and probabilities.shape[1] == len(classes):
            # One call, not two: the label is the most probable class.
            labels = np.asarray(classes, dtype=object)
            predictions = labels[np.argmax(probabilities, axis=1)]
            return predictions, probabilities
        return model.flavor.predict(frame), probabilities
    return model.flavor.predict(frame), None


def output_record(
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    classes: list[str],
    row: int,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON output logged for one row: its prediction and class probabilities (and,
    for a remote model, under ``remote`` its request, raw reply, usage and attempts)."""
    output: dict[str, Any] = {"prediction": _plain(predictions[row])}
    if probabilities is not None:
        output["probabilities"] = dict(
            zip(classes, (float(p) for p in probabilities[row]), strict=True)
        )
    if details is not None:
        output["remote"] = details[row]
    return output


def output_records(
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    classes: list[str],
    details: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``output_record`` for every row of a batch, equal value for value: one ``tolist``
    per array instead of a numpy scalar per cell (a third of the per-row cost of a batch
    of 1,000 rows went to indexing numpy one cell at a time)."""
    if isinstance(predictions, np.ndarray) and predictions.ndim == 1:
        labels = predictions.tolist()  # Python scalars, exactly what ``.item()`` gives
        if predictions.dtype == object:  # may hold numpy scalars of its own
            labels = [_plain(v) for v in labels]
    else:
        labels = [_plain(predictions[i]) for i in range(len(predictions))]
    outputs: list[dict[str, Any]] = [{"prediction": label} for label in labels]
    if probabilities is not None:
        rows = np.asarray(probabilities).tolist()
        for output, row in zip(outputs, rows, strict=True):
            output["probabilities"] = dict(zip(classes, map(float, row), strict=True))
    if details is not None:
        for output, detail in zip(outputs, details, strict=True):
            output["remote"] = detail
    return outputs


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _as_object(record: Any) -> dict[str, Any]:
    return dict(record) if isinstance(record, dict) else {"_value": record}
