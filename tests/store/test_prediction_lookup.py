"""Lookups by prediction id: on PostgreSQL they search the partition the id's time points to
first, and still find a row whose ``ts`` is far from its id's time."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from plinth.core.ids import new_ids
from plinth.errors import PredictionNotFoundError
from plinth.store import PredictionRecord, Store, partitions
from plinth.store.feedback import FeedbackStore, LabelRow, ReviewRow
from plinth.store.schema import predictions
from tests.store.test_store import prediction

NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def pg_store(store: Store, database_url: str) -> Store:
    """A store on PostgreSQL with the log's daily partitions from 10 days back."""
    if not database_url.startswith("postgresql"):
        pytest.skip("partitions are PostgreSQL's; SQLite keeps one table")
    store.ensure_log_partitions(NOON - timedelta(days=9))
    return store


def minted(at: datetime, seed: int = 0) -> str:
    """A prediction id minted at ``at``, as serving mints them."""
    return new_ids(1, now_ms=int(at.timestamp() * 1000), rng=random.Random(seed))[0]


def logged(n: int, *, id_at: datetime, ts: datetime) -> PredictionRecord:
    return prediction(n, id=minted(id_at, n), ts=ts)


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The SQL the store sends meanwhile, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM predictions" in statement:
            sent.append((statement, parameters))

    sa.event.listen(store._engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", note)


def scanned(store: Store, statement: str, parameters: Any) -> set[str]:
    """The tables PostgreSQL's plan for ``statement`` reads (partitions pruned away at
    planning are not in it)."""
    with store.reading() as conn:
        [[plan]] = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).all()
    plan = orjson.loads(plan) if isinstance(plan, str) else plan

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "Relation Name" in node:
                yield node["Relation Name"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return set(walk(plan))


def test_rows_are_found_by_id_wherever_their_ts_is(store: Store) -> None:
    rows = [
        logged(1, id_at=NOON, ts=NOON),  # as serving writes them
        logged(2, id_at=NOON, ts=NOON - timedelta(days=3)),  # a clock far behind its ids
        logged(3, id_at=NOON - timedelta(days=2), ts=NOON),  # ts far after the id
        prediction(4, id="imported-4", ts=NOON),  # not a ULID at all
        prediction(5, ts=NOON - timedelta(days=400)),  # a ULID of another time, old ts
    ]
    store.insert_predictions(rows)
    feedback = FeedbackStore(store)
    for row in rows:
        assert store.get_prediction(row.id).ts == row.ts
        found = feedback.prediction_row(row.id)
        assert found is not None and found["id"] == row.id
    by_id = feedback.predictions_by_id([r.id for r in rows] + [minted(NOON, 99)])
    assert sorted(by_id) == sorted(r.id for r in rows)
    assert {i: r.ts for i, r in by_id.items()} == {r.id: r.ts for r in rows}
    assert set(feedback.prediction_features([r.id for r in rows])) == {r.id for r in rows}
    with pytest.raises(PredictionNotFoundError, match="no prediction with id"):
        store.get_prediction(minted(NOON, 99))
    assert feedback.prediction_row(minted(NOON, 99)) is None


def test_a_lookup_by_id_reads_only_the_partition_its_id_points_to(pg_store: Store) -> None:
    store = pg_store
    days = [NOON - timedelta(days=d) for d in (3, 5, 8)]
    rows = [logged(n, id_at=day, ts=day) for n, day in enumerate(days)]
    store.insert_predictions(rows)
    with store.reading() as conn:
        assert len(partitions.existing_days(conn)) >= 15  # the month's lookups used to read all

    with statements(store) as sent:
        assert store.get_prediction(rows[0].id).id == rows[0].id
    assert len(sent) == 1  # found in its window: no search of the whole log
    assert scanned(store, *sent[0]) == {partitions.day_name(days[0].date())}

    with statements(store) as sent:
        assert len(FeedbackStore(store).predictions_by_id([r.id for r in rows])) == 3
    assert [scanned(store, *s) for s in sent] == [{partitions.day_name(day.date())} for day in days]

    # Not where its id points: the second statement searches everywhere, and finds it.
    stray = logged(9, id_at=days[0], ts=days[2])
    store.insert_predictions([stray])
    with statements(store) as sent:
        assert store.get_prediction(stray.id).ts == stray.ts
    assert len(sent) == 2
    assert partitions.day_name(days[2].date()) in scanned(store, *sent[1])


def test_precedent_skips_resolved_items_whose_prediction_is_gone(store: Store) -> None:
    feedback = FeedbackStore(store)
    rows = [logged(n, id_at=NOON, ts=NOON) for n in range(4)]
    store.insert_predictions(rows)
    for n, row in enumerate(rows):
        at = NOON + timedelta(minutes=n)
        feedback.insert_reviews(
            [ReviewRow(f"r{n}", row.id, row.model, row.version, row.ts, "top_probability", 0.7,
                       0.5)]
        )  # fmt: skip
        label = LabelRow(row.id, row.model, row.version, row.ts, row.output, f"y{n}", "review",
                         at, at)  # fmt: skip
        outcome = feedback.resolve(f"r{n}", "ann", at, action="correct", label=f"y{n}",
                                   note=None, label_row=label)  # fmt: skip
        assert outcome.won
    with store.writing() as conn:  # the newest two items' predictions were pruned
        conn.execute(predictions.delete().where(predictions.c.id.in_([rows[3].id, rows[2].id])))
    cases = feedback.resolved_cases("iris", 2)
    assert [(review_id, label) for review_id, _, label in cases] == [("r1", "y1"), ("r0", "y0")]
    assert cases[0][1] == rows[1].features
    assert [c[0] for c in feedback.resolved_cases("iris", 5)] == ["r1", "r0"]
