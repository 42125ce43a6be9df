"""Ground truth: labels for logged predictions, from callers (often days later) or reviewers.

A label names its prediction by ``prediction_id`` or by the request ``key`` the caller sent
with it. Every item is judged on its own: an unknown id or a label outside the version's
output contract fails that item alone (a 4xx entry in the reply) while the valid items of
the same request are stored, all in one transaction. A second label for a prediction
replaces the first; the first moves to the label history, so nothing is lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plinth.core.output import OutputContract
from plinth.errors import PlinthError
from plinth.errors.feedback import (
    AMBIGUOUS_KEY,
    INVALID_ITEM,
    INVALID_LABEL,
    INVALID_TIME,
    MISSING_LABEL,
    MODEL_MISMATCH,
    MODEL_REQUIRED,
    RESERVED_SOURCE,
    UNKNOWN_KEY,
    UNKNOWN_PREDICTION,
)
from plinth.store import Store
from plinth.store.feedback import FeedbackStore, LabelRow, PredictionRef

MAX_SOURCE_CHARS = 64
DEFAULT_SOURCE = "caller"
REVIEWER_SOURCE = "reviewer"
_ITEM_FIELDS = frozenset({"prediction_id", "key", "label", "source", "time", "model"})


@dataclass
class ItemOutcome:
    """What happened to one submitted label: HTTP-like status, and why if it failed."""

    index: int
    status: int  # 201 stored, 200 replaced an earlier label, 404 / 409 / 422 failed
    prediction_ids: list[str] = field(default_factory=list)
    code: str | None = None
    message: str | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 300

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.ok:
            body["result"] = "replaced" if self.status == 200 else "stored"
            body["prediction_ids"] = self.prediction_ids
        else:
            body["error"] = {"code": self.code, "message": self.message}
            if self.hint:
                body["error"]["hint"] = self.hint
        return body


@dataclass
class IngestResult:
    """Per-item outcomes of one submission, in the order the items came."""

    items: list[ItemOutcome]

    @property
    def stored(self) -> int:
        return sum(1 for i in self.items if i.status == 201)

    @property
    def replaced(self) -> int:
        return sum(1 for i in self.items if i.status == 200)

    @property
    def failed(self) -> int:
        return sum(1 for i in self.items if not i.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "replaced": self.replaced,
            "failed": self.failed,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass
class _Parsed:
    index: int
    prediction_id: str | None
    key: str | None
    model: str | None
    label: Any
    source: str
    time: datetime | None


def now_utc() -> datetime:
    return datetime.now(UTC)


def coerce_label(output: OutputContract, label: Any) -> tuple[Any, str | None]:
    """The label as the model's own type, or (None, why not).

    Classes are matched exactly first, then by their text (a CSV gives "1" for class 1);
    regression labels must be finite numbers (numeric text is accepted).
    """
    if output.task == "classification":
        classes = output.classes or []
        for c in classes:
            if label == c and type(label) is type(c):
                return c, None
        text = str(label)
        matches = [c for c in classes if str(c) == text]
        if len(matches) == 1:
            return matches[0], None
        shown = ", ".join(repr(c) for c in classes[:20])
        return None, f"label {label!r} is not one of the model's classes ({shown})"
    if isinstance(label, bool):
        return None, "a regression label must be a number, not a boolean"
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None, f"label {label!r} is not a number"
    if not math.isfinite(value):
        return None, f"label {label!r} is not a finite number"
    return value, None


def parse_time(value: Any) -> datetime:
    """An aware datetime from ISO 8601 text (``Z`` allowed); naive times are refused."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"time {value!r} is not ISO 8601") from exc
    else:
        raise ValueError(f"time {value!r} is not ISO 8601 text")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"time {value!r} has no time zone; add Z or +00:00")
    return parsed.astimezone(UTC)


class Feedback:
    """Takes labels in, one item at a time in judgement and all at once in storage."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime] = now_utc,
        *,
        stored_key: Callable[[str, str], str] | None = None,
    ) -> None:
        self.store = store
        self.sql = FeedbackStore(store)
        self.clock = clock
        # (model, key) -> the key as that model's log keeps it (a keyed hash under
        # [models.NAME.log] hash_request_key): a label by key finds hashed rows too.
        self.stored_key = stored_key or (lambda model, key: key)
        self._contracts: dict[tuple[str, int], OutputContract] = {}

    def output_contract(self, model: str, version: int) -> OutputContract:
        key = (model, version)
        if key not in self._contracts:
            record = self.store.get_version(model, version)
            self._contracts[key] = OutputContract.from_dict(record.metadata["output_contract"])
        return self._contracts[key]

    def ingest(
        self,
        items: Sequence[Any],
        *,
        model: str | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> IngestResult:
        """Validate and store labels; each item gets its own outcome."""
        now = self.clock()
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        parsed: list[_Parsed] = []
        for index, item in enumerate(items):
            result = _parse(index, item, model, source)
            if isinstance(result, ItemOutcome):
                outcomes[index] = result
            else:
                parsed.append(result)

        by_id = self.sql.predictions_by_id([p.prediction_id for p in parsed if p.prediction_id])
        keys_by_model: dict[str, list[str]] = {}
        for p in parsed:
            if p.key is not None and p.model is not None:
                keys_by_model.setdefault(p.model, []).append(p.key)
                stored = self.stored_key(p.model, p.key)
                if stored != p.key:
                    keys_by_model[p.model].append(stored)
        by_key = {m: self.sql.predictions_by_key(m, keys) for m, keys in keys_by_model.items()}

        rows: list[LabelRow] = []
        owners: list[int] = []  # the item each row came from
        for p in parsed:
            targets = self._targets(p, by_id, by_key)
            if isinstance(targets, ItemOutcome):
                outcomes[p.index] = targets
                continue
            judged = self._judge(p, targets, now)
            if isinstance(judged, ItemOutcome):
                outcomes[p.index] = judged
                continue
            rows.extend(judged)
            owners.extend([p.index] * len(judged))
            outcomes[p.index] = ItemOutcome(p.index, 201, [t.id for t in targets])

        replaced = self.sql.upsert_labels(rows, now) if rows else []
        for owner, was_replaced in zip(owners, replaced, strict=True):
            if was_replaced:
                outcome = outcomes[owner]
                assert outcome is not None
                outcome.status = 200
        return IngestResult([o for o in outcomes if o is not None])

    def _targets(
        self,
        p: _Parsed,
        by_id: Mapping[str, PredictionRef],
        by_key: Mapping[str, Mapping[str, list[PredictionRef]]],
    ) -> list[PredictionRef] | ItemOutcome:
        if p.prediction_id is not None:
            ref = by_id.get(p.prediction_id)
            if ref is None:
                return _fail(
                    p.index,
                    404,
                    UNKNOWN_PREDICTION,
                    f"no prediction with id {p.prediction_id!r}",
                    "Use the prediction_id from the reply; predictions older than the "
                    "retention window (`plinth prune --older-than`) are deleted.",
                )
            if p.model is not None and ref.model != p.model:
                return _fail(
                    p.index,
                    422,
                    MODEL_MISMATCH,
                    f"prediction {p.prediction_id!r} was made by model {ref.model!r}, "
                    f"not {p.model!r}",
                    "Check the prediction id and the model name.",
                )
            return [ref]
        assert p.key is not None and p.model is not None
        found = by_key.get(p.model, {})
        stored = self.stored_key(p.model, p.key)
        refs = found.get(p.key, []) + (found.get(stored, []) if stored != p.key else [])
        if not refs:
            return _fail(
                p.index,
                404,
                UNKNOWN_KEY,
                f"no prediction of model {p.model!r} was requested with key {p.key!r}",
                "Send the same 'key' in the predict request, or label by prediction_id.",
            )
        requests = {r.request_id for r in refs}
        if len(requests) < len(refs):
            # One request with several records shares one key: the label cannot say which.
            return _fail(
                p.index,
                409,
                AMBIGUOUS_KEY,
                f"key {p.key!r} names a request with several records",
                "Label each record by its prediction_id instead.",
            )
        # Several single-record requests with one key are retries of one event: label all.
        return refs

    def _judge(
        self, p: _Parsed, targets: list[PredictionRef], now: datetime
    ) -> list[LabelRow] | ItemOutcome:
        rows: list[LabelRow] = []
        for ref in targets:
            try:
                contract = self.output_contract(ref.model, ref.version)
            except PlinthError as exc:
                return _fail(p.index, 404, exc.code, exc.message, exc.hint)
            value, why = coerce_label(contract, p.label)
            if why is not None:
                return _fail(
                    p.index,
                    422,
                    INVALID_LABEL,
                    why,
                    "Labels must fit the version's output contract "
                    "(GET /v1/models/{name} shows it).",
                )
            rows.append(
                LabelRow(
                    prediction_id=ref.id,
                    model=ref.model,
                    version=ref.version,
                    prediction_ts=ref.ts,
                    output=ref.output,
                    label=value,
                    source=p.source,
                    labelled_at=p.time or now,
                    received_at=now,
                )
            )
        return rows


def _fail(index: int, status: int, code: str, message: str, hint: str = "") -> ItemOutcome:
    return ItemOutcome(index, status, code=code, message=message, hint=hint or None)


def _parse(index: int, item: Any, model: str | None, source: str) -> _Parsed | ItemOutcome:
    hint = 'Send {"prediction_id": "...", "label": ...} or {"key": "...", "label": ...}.'
    if not isinstance(item, Mapping):
        return _fail(index, 422, INVALID_ITEM, "an item must be a JSON object", hint)
    unknown = sorted(set(item) - _ITEM_FIELDS)
    if unknown:
        return _fail(index, 422, INVALID_ITEM, f"unknown field(s): {', '.join(unknown)}", hint)
    prediction_id, key = item.get("prediction_id"), item.get("key")
    if (prediction_id is None) == (key is None):
        return _fail(index, 422, INVALID_ITEM, "give exactly one of prediction_id and key", hint)
    if prediction_id is not None and not isinstance(prediction_id, str):
        return _fail(index, 422, INVALID_ITEM, "prediction_id must be a string", hint)
    if key is not None and not isinstance(key, str):
        return _fail(index, 422, INVALID_ITEM, "key must be a string", hint)  # as in predict
    if "label" not in item or item["label"] is None:
        return _fail(index, 422, MISSING_LABEL, "the label is missing", hint)
    item_model = item.get("model", model)
    if item_model is not None and not isinstance(item_model, str):
        return _fail(index, 422, INVALID_ITEM, "model must be a string", hint)
    if key is not None and item_model is None:
        return _fail(
            index,
            422,
            MODEL_REQUIRED,
            "a label by key needs the model name",
            'Add "model": "NAME" to the item or the request.',
        )
    item_source = item.get("source", source)
    if not isinstance(item_source, str) or not 0 < len(item_source) <= MAX_SOURCE_CHARS:
        return _fail(
            index,
            422,
            INVALID_ITEM,
            f"source must be text of 1 to {MAX_SOURCE_CHARS} characters",
            hint,
        )
    if item_source == REVIEWER_SOURCE and source != REVIEWER_SOURCE:
        return _fail(
            index,
            422,
            RESERVED_SOURCE,
            "source 'reviewer' is kept for labels from resolved review items",
            "Resolve the item with POST /v1/review/{id}/resolve instead.",
        )
    when: datetime | None = None
    if item.get("time") is not None:
        try:
            when = parse_time(item["time"])
        except ValueError as exc:
            return _fail(
                index,
                422,
                INVALID_TIME,
                str(exc),
                "Write times as ISO 8601 with a zone, e.g. 2026-03-01T12:00:00Z.",
            )
    return _Parsed(
        index=index,
        prediction_id=prediction_id,
        key=None if key is None else str(key),
        model=item_model,
        label=item["label"],
        source=item_source,
        time=when,
    )
