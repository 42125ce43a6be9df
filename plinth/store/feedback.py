"""SQL for ground truth and people: labels and their history, review items, API tokens.

A label is one row per prediction; a newer label replaces it in place and the old value
moves to ``label_history`` in the same transaction. Review items change state with single
conditional UPDATEs (claim, resolve), so two reviewers racing for one item cannot both
win, on SQLite (one writer at a time) or PostgreSQL (the loser's UPDATE re-checks the row
after the winner commits and matches nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from plinth.store.records import split_trace
from plinth.store.schema import api_tokens, label_history, labels, predictions, review_items
from plinth.store.store import Store, _aware

# SQLite allows 32,766 bound parameters per statement; stay well below it.
_IN_CHUNK = 900
# Rows fetched per page when a read streams many prediction rows.
OUTPUT_PAGE_ROWS = 2000


@dataclass(frozen=True)
class PredictionRef:
    """What labelling needs to know about one logged prediction."""

    id: str
    model: str
    version: int
    ts: datetime
    output: dict[str, Any]
    request_id: str
    key: str | None


@dataclass(frozen=True)
class LabelRow:
    """The current label of one prediction, with a copy of the prediction it judges."""

    prediction_id: str
    model: str
    version: int
    prediction_ts: datetime
    output: dict[str, Any]
    label: Any
    source: str
    labelled_at: datetime
    received_at: datetime
    revision: int = 1


@dataclass(frozen=True)
class LabelHistoryRow:
    prediction_id: str
    revision: int
    label: Any
    source: str
    labelled_at: datetime
    received_at: datetime
    replaced_at: datetime


@dataclass(frozen=True)
class ReviewRow:
    """A review item as stored; ``status`` is pending, claimed or resolved."""

    id: str
    prediction_id: str
    model: str
    version: int
    created_at: datetime
    measure: str
    threshold: float
    score: float | None
    status: str = "pending"
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    action: str | None = None
    label: Any = None
    note: str | None = None
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class TokenRow:
    id: str
    name: str
    role: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class ClaimOutcome:
    """Whether a claim or resolve won, and the row as it is now (None if unknown id)."""

    won: bool
    row: ReviewRow | None


def _enc(value: Any) -> str:
    # Labels are JSON text in a TEXT column: SQLite would turn a bare JSON number in a
    # JSON column into a REAL and hand back a float the JSON reader cannot parse.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _dec(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _label_row(row: Any) -> LabelRow:
    return LabelRow(**{**row._mapping, "label": _dec(row.label)})


def _review_row(row: Any) -> ReviewRow:
    return ReviewRow(**{**row._mapping, "label": _dec(row.label)})


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _ref(row: Any) -> PredictionRef:
    m = row._mapping
    return PredictionRef(
        id=m["id"],
        model=m["model"],
        version=m["version"],
        ts=m["ts"],
        output=split_trace(m["output"])[0],
        request_id=m["request_id"],
        key=m["key"],
    )


_REF_COLUMNS = (
    predictions.c.id,
    predictions.c.model,
    predictions.c.version,
    predictions.c.ts,
    predictions.c.output,
    predictions.c.request_id,
    predictions.c.key,
)

_FEATURE_COLUMNS = (
    predictions.c.id,
    predictions.c.model,
    predictions.c.version,
    predictions.c.features,
    predictions.c.input,
)


class FeedbackStore:
    """Labels, review items and tokens over a ``Store``'s engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- predictions, as labelling sees them ------------------------------------------------

    def predictions_by_id(self, ids: Sequence[str]) -> dict[str, PredictionRef]:
        with self.store.reading() as conn:
            rows = self.store.find_predictions(conn, _REF_COLUMNS, ids)
        return {r.id: _ref(r) for r in rows}

    def predictions_by_key(self, model: str, keys: Sequence[str]) -> dict[str, list[PredictionRef]]:
        found: dict[str, list[PredictionRef]] = {}
        unique = list(dict.fromkeys(keys))
        with self.store.reading() as conn:
            for part in _chunks(unique):
                query = (
                    sa.select(*_REF_COLUMNS)
                    .where(predictions.c.model == model, predictions.c.key.in_(part))
                    .order_by(predictions.c.id)
                )
                for r in conn.execute(query):
                    found.setdefault(r.key, []).append(_ref(r))
        return found

    def prediction_counts(
        self, model: str, start: datetime, end: datetime, version: int | None = None
    ) -> dict[int, int]:
        """Predictions per version made in [start, end)."""
        query = (
            sa.select(predictions.c.version, sa.func.count())
            .where(
                predictions.c.model == model,
                predictions.c.ts >= _aware(start, "start"),
                predictions.c.ts < _aware(end, "end"),
            )
            .group_by(predictions.c.version)
        )
        if version is not None:
            query = query.where(predictions.c.version == version)
        with self.store.reading() as conn:
            return {int(v): int(n) for v, n in conn.execute(query)}

    def prediction_outputs(
        self, model: str, start: datetime, end: datetime, version: int, limit: int
    ) -> Iterator[dict[str, Any]]:
        """Outputs (prediction and probabilities) of one version's predictions in [start, end),
        streamed: a window holds up to ``limit`` rows, read every minute by every worker, so
        they are fetched in pages (a server-side cursor on PostgreSQL), never held at once."""
        query = (
            sa.select(predictions.c.output)
            .where(
                predictions.c.model == model,
                predictions.c.version == version,
                predictions.c.ts >= _aware(start, "start"),
                predictions.c.ts < _aware(end, "end"),
            )
            .limit(limit)
            .execution_options(yield_per=OUTPUT_PAGE_ROWS)
        )
        with self.store.reading() as conn:
            for row in conn.execute(query):
                yield split_trace(row.output)[0]

    def prediction_features(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The repaired features the model saw, per prediction id."""
        with self.store.reading() as conn:
            rows = self.store.find_predictions(conn, _FEATURE_COLUMNS, ids)
        layouts = self.store.layouts
        return {
            r.id: layouts.input_and_features(r.model, r.version, r.input, r.features)[1]
            for r in rows
        }

    def prediction_row(self, prediction_id: str) -> dict[str, Any] | None:
        with self.store.reading() as conn:
            rows = self.store.find_predictions(conn, list(predictions.c), [prediction_id])
        if not rows:
            return None
        found = dict(rows[0]._mapping)
        found["input"], found["features"] = self.store.layouts.input_and_features(
            found["model"], found["version"], found["input"], found["features"]
        )
        return found

    # -- labels -----------------------------------------------------------------------------

    def upsert_labels(self, rows: Sequence[LabelRow], now: datetime) -> list[bool]:
        """Store each label, replacing (and keeping in history) any earlier one.

        Returns, per row, whether it replaced an earlier label.
        """
        if not rows:
            return []
        with self.store.writing() as conn:
            return _upsert_labels(conn, rows, _aware(now, "now"))

    def get_label(self, prediction_id: str) -> LabelRow | None:
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(labels).where(labels.c.prediction_id == prediction_id)
            ).first()
        return None if row is None else _label_row(row)

    def label_history(self, prediction_id: str) -> list[LabelHistoryRow]:
        """Replaced labels of one prediction, oldest first."""
        query = (
            sa.select(*[c for c in label_history.c if c.name != "id"])
            .where(label_history.c.prediction_id == prediction_id)
            .order_by(label_history.c.revision)
        )
        with self.store.reading() as conn:
            return [
                LabelHistoryRow(**{**r._mapping, "label": _dec(r.label)})
                for r in conn.execute(query)
            ]

    def read_labels(
        self, model: str, start: datetime, end: datetime, version: int | None = None
    ) -> list[LabelRow]:
        """Labels of predictions made in [start, end), oldest prediction first."""
        query = (
            sa.select(labels)
            .where(
                labels.c.model == model,
                labels.c.prediction_ts >= _aware(start, "start"),
                labels.c.prediction_ts < _aware(end, "end"),
            )
            .order_by(labels.c.prediction_ts)
        )
        if version is not None:
            query = query.where(labels.c.version == version)
        with self.store.reading() as conn:
            return [_label_row(r) for r in conn.execute(query)]

    # -- review items -----------------------------------------------------------------------

    def insert_reviews(self, rows: Sequence[ReviewRow]) -> None:
        if not rows:
            return
        values = [
            {
                "id": r.id,
                "prediction_id": r.prediction_id,
                "model": r.model,
                "version": r.version,
                "created_at": _aware(r.created_at, "created_at"),
                "measure": r.measure,
                "threshold": r.threshold,
                "score": r.score,
                "status": "pending",
                "context": r.context,
            }
            for r in rows
        ]
        with self.store.writing() as conn:
            conn.execute(review_items.insert(), values)

    def set_context(self, review_id: str, context: dict[str, Any]) -> None:
        with self.store.writing() as conn:
            conn.execute(
                review_items.update().where(review_items.c.id == review_id).values(context=context)
            )

    def get_review(self, review_id: str) -> ReviewRow | None:
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(review_items).where(review_items.c.id == review_id)
            ).first()
        return None if row is None else _review_row(row)

    def list_reviews(
        self,
        now: datetime,
        *,
        model: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[ReviewRow]:
        """Items oldest first; ``pending`` includes claims whose lease ran out."""
        query = sa.select(review_items).order_by(review_items.c.created_at, review_items.c.id)
        if model is not None:
            query = query.where(review_items.c.model == model)
        if status is not None:
            query = query.where(_status_is(status, _aware(now, "now")))
        with self.store.reading() as conn:
            return [_review_row(r) for r in conn.execute(query.limit(limit))]

    def claim(self, review_id: str, reviewer: str, now: datetime, until: datetime) -> ClaimOutcome:
        """Take the item for ``reviewer`` until ``until``, unless someone else holds it."""
        now = _aware(now, "now")
        with self.store.writing() as conn:
            done = conn.execute(
                review_items.update()
                .where(review_items.c.id == review_id, _takeable(reviewer, now))
                .values(status="claimed", claimed_by=reviewer, claimed_until=_aware(until, "until"))
            )
            row = conn.execute(
                sa.select(review_items).where(review_items.c.id == review_id)
            ).first()
        return ClaimOutcome(done.rowcount == 1, None if row is None else _review_row(row))

    def resolve(
        self,
        review_id: str,
        reviewer: str,
        now: datetime,
        *,
        action: str,
        label: Any,
        note: str | None,
        label_row: LabelRow,
    ) -> ClaimOutcome:
        """Close the item and store its outcome as a label, in one transaction."""
        now = _aware(now, "now")
        with self.store.writing() as conn:
            done = conn.execute(
                review_items.update()
                .where(review_items.c.id == review_id, _takeable(reviewer, now))
                .values(
                    status="resolved",
                    resolved_at=now,
                    resolved_by=reviewer,
                    action=action,
                    label=_enc(label),
                    note=note,
                )
            )
            if done.rowcount == 1:
                _upsert_labels(conn, [label_row], now)
            row = conn.execute(
                sa.select(review_items).where(review_items.c.id == review_id)
            ).first()
        return ClaimOutcome(done.rowcount == 1, None if row is None else _review_row(row))

    def queue_numbers(self, now: datetime, model: str | None = None) -> dict[str, dict[str, Any]]:
        """Per model: open items, the oldest open item's creation time, and recent
        resolution times in seconds (the last 1,000 resolved items)."""
        now = _aware(now, "now")
        open_ = review_items.c.status != "resolved"
        depth = sa.select(
            review_items.c.model, sa.func.count(), sa.func.min(review_items.c.created_at)
        ).where(open_)
        resolved = (
            sa.select(review_items.c.model, review_items.c.created_at, review_items.c.resolved_at)
            .where(review_items.c.status == "resolved")
            .order_by(review_items.c.resolved_at.desc())
            .limit(1000)
        )
        if model is not None:
            depth = depth.where(review_items.c.model == model)
            resolved = resolved.where(review_items.c.model == model)
        result: dict[str, dict[str, Any]] = {}
        with self.store.reading() as conn:
            for name, count, oldest in conn.execute(depth.group_by(review_items.c.model)):
                result.setdefault(name, {"open": 0, "oldest": None, "resolution_s": []})
                result[name].update(open=int(count), oldest=oldest)
            for name, created, done in conn.execute(resolved):
                entry = result.setdefault(name, {"open": 0, "oldest": None, "resolution_s": []})
                entry["resolution_s"].append((done - created).total_seconds())
        return result

    def resolved_cases(self, model: str, limit: int) -> list[tuple[str, dict[str, Any], Any]]:
        """(review id, features, label) of the newest resolved items that still have their
        prediction logged: precedent for the next reviewer."""
        # Items first, then their predictions by id (find_predictions: on PostgreSQL one
        # partition each, where a join would probe every partition per item); a page more
        # only when some of this page's predictions are gone (pruned, forgotten).
        page = (
            sa.select(review_items.c.id, review_items.c.prediction_id, review_items.c.label)
            .where(review_items.c.model == model, review_items.c.status == "resolved")
            .order_by(review_items.c.resolved_at.desc(), review_items.c.id.desc())
            .limit(limit)
        )
        layouts = self.store.layouts
        cases: list[tuple[str, dict[str, Any], Any]] = []
        with self.store.reading() as conn:
            offset = 0
            while len(cases) < limit:
                items = conn.execute(page.offset(offset)).all()
                rows = self.store.find_predictions(
                    conn, _FEATURE_COLUMNS, [i.prediction_id for i in items]
                )
                found = {r.id: r for r in rows}
                for item in items:
                    r = found.get(item.prediction_id)
                    if r is not None:
                        features = layouts.input_and_features(
                            r.model, r.version, r.input, r.features
                        )[1]
                        cases.append((item.id, features, _dec(item.label)))
                if len(items) < limit:
                    break
                offset += limit
        return cases[:limit]

    # -- tokens -----------------------------------------------------------------------------

    def add_token(self, row: TokenRow) -> None:
        with self.store.writing() as conn:
            conn.execute(
                api_tokens.insert().values(
                    id=row.id,
                    name=row.name,
                    role=row.role,
                    token_hash=row.token_hash,
                    created_at=_aware(row.created_at, "created_at"),
                )
            )

    def list_tokens(self, *, include_revoked: bool = False) -> list[TokenRow]:
        query = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        with self.store.reading() as conn:
            return [TokenRow(**r._mapping) for r in conn.execute(query)]

    def revoke_token(self, token_id: str, now: datetime) -> bool:
        with self.store.writing() as conn:
            done = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=_aware(now, "now"))
            )
        return done.rowcount == 1


def _status_is(status: str, now: datetime) -> sa.ColumnElement[bool]:
    c = review_items.c
    if status == "pending":
        return sa.or_(c.status == "pending", sa.and_(c.status == "claimed", c.claimed_until < now))
    if status == "claimed":
        return sa.and_(c.status == "claimed", c.claimed_until >= now)
    return c.status == status


def _takeable(reviewer: str, now: datetime) -> sa.ColumnElement[bool]:
    """Open, and not held by another reviewer under a live lease."""
    c = review_items.c
    return sa.or_(
        c.status == "pending",
        sa.and_(c.status == "claimed", sa.or_(c.claimed_until < now, c.claimed_by == reviewer)),
    )


def _upsert_labels(conn: Connection, rows: Sequence[LabelRow], now: datetime) -> list[bool]:
    ids = list(dict.fromkeys(r.prediction_id for r in rows))
    existing: dict[str, Row[Any]] = {}
    for part in _chunks(ids):
        # FOR UPDATE: a concurrent replacement of the same label waits here (PostgreSQL);
        # SQLite writers are already serialised by BEGIN IMMEDIATE.
        query = sa.select(labels).where(labels.c.prediction_id.in_(part)).with_for_update()
        existing.update((r.prediction_id, r) for r in conn.execute(query))
    replaced: list[bool] = []
    history: list[dict[str, Any]] = []
    fresh: dict[str, dict[str, Any]] = {}
    updates: list[dict[str, Any]] = []
    for r in rows:
        values = {
            "prediction_id": r.prediction_id,
            "model": r.model,
            "version": r.version,
            "prediction_ts": _aware(r.prediction_ts, "prediction_ts"),
            "output": r.output,
            "label": _enc(r.label),
            "source": r.source,
            "labelled_at": _aware(r.labelled_at, "labelled_at"),
            "received_at": _aware(r.received_at, "received_at"),
        }
        old = existing.get(r.prediction_id)
        if old is None and r.prediction_id in fresh:
            # the same prediction twice in one batch: the later one replaces the earlier
            earlier = fresh[r.prediction_id]
            history.append(_history(earlier, now))
            earlier.update(values, revision=earlier["revision"] + 1)
            replaced.append(True)
            continue
        if old is None:
            fresh[r.prediction_id] = {**values, "revision": 1}
            replaced.append(False)
            continue
        history.append(_history(dict(old._mapping), now))
        revision = int(old.revision) + 1
        updates.append({**values, "revision": revision, "pid": r.prediction_id})
        # later rows for this id in the same batch see this one as the current label
        existing[r.prediction_id] = _FakeRow({**values, "revision": revision})  # type: ignore[assignment]
        replaced.append(True)
    if history:
        conn.execute(label_history.insert(), history)
    if fresh:
        conn.execute(labels.insert(), list(fresh.values()))
    for values in updates:
        pid = values.pop("pid")
        conn.execute(labels.update().where(labels.c.prediction_id == pid).values(**values))
    _close_reviews(conn, rows, now)
    return replaced


LABELLED = "labelled"  # a review item's action when a label from elsewhere closed it


def _close_reviews(conn: Connection, rows: Sequence[LabelRow], now: datetime) -> None:
    """A label from any source answers the review question: close the open items of those
    predictions (resolved by ``label:SOURCE``, action ``labelled``), or the queue and its SLA
    alert would wait for work nobody needs to do. A reviewer's own resolution is already
    closed when its label is stored, so it is left as it is."""
    last = {r.prediction_id: r for r in rows}  # the latest label of each prediction wins
    open_ids: list[str] = []
    for part in _chunks(list(last)):
        open_ids += conn.execute(
            sa.select(review_items.c.prediction_id).where(
                review_items.c.prediction_id.in_(part), review_items.c.status != "resolved"
            )
        ).scalars()
    for pid in open_ids:
        row = last[pid]
        conn.execute(
            review_items.update()
            .where(review_items.c.prediction_id == pid, review_items.c.status != "resolved")
            .values(
                status="resolved",
                resolved_at=now,
                resolved_by=f"label:{row.source}",
                action=LABELLED,
                label=_enc(row.label),
                note=f"closed by a label from source {row.source!r}",
                claimed_until=None,
            )
        )


class _FakeRow:
    """A stand-in row for a label replaced earlier in the same batch."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values
        self.revision = values["revision"]


def _history(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "prediction_id": values["prediction_id"],
        "revision": values["revision"],
        "label": values["label"],
        "source": values["source"],
        "labelled_at": values["labelled_at"],
        "received_at": values["received_at"],
        "replaced_at": now,
    }
