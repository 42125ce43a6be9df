"""SQL for the log's privacy duties: forgetting one subject, and per-model retention.

``forget`` removes everything stored about one request key — its prediction rows, their
labels and label history, and their review items — in one transaction, so a subject is
either wholly forgotten or not at all. The predictions are found per model through the
partial ``(model, key)`` index that feedback by key already uses; on PostgreSQL the DELETE
on the partitioned ``predictions`` table reaches every daily partition and the default one.

``prune_model`` deletes one model's rows older than its retention in chunks, each its own
transaction (as ``Store.prune_predictions`` does), so a large first prune never holds the
write lock long enough to stall the log writer. Labels stay: they are ground truth, kept
forever, and hold no raw input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from plinth.store.schema import label_history, labels, models, predictions, review_items
from plinth.store.store import PRUNE_CHUNK_ROWS, Store, _aware

_IN_CHUNK = 500  # ids per IN (...) list: well under every driver's parameter limit


@dataclass(frozen=True)
class Forgotten:
    """What ``forget`` deleted, table by table."""

    key: str
    predictions: int
    labels: int
    label_history: int
    review_items: int

    @property
    def total(self) -> int:
        return self.predictions + self.labels + self.label_history + self.review_items


class PrivacyStore:
    """Forgetting and retention over a ``Store``'s engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def forget(
        self,
        key: str,
        *,
        model: str | None = None,
        stored_as: Callable[[str], str] | None = None,
    ) -> Forgotten:
        """Delete every prediction logged with request key ``key`` (of ``model``, or of
        every model), with its labels, label history and review items. ``stored_as(model)``
        names the form a model's log keeps the key in (its keyed hash), looked for beside
        ``key`` itself (rows logged before the model hashed its keys)."""
        counts = {"predictions": 0, "labels": 0, "label_history": 0, "review_items": 0}
        with self.store.writing() as conn:
            names = (
                [model]
                if model is not None
                else list(conn.execute(sa.select(models.c.name)).scalars())
            )
            for name in names:
                keys = {key, stored_as(name)} if stored_as is not None else {key}
                where = sa.and_(predictions.c.model == name, predictions.c.key.in_(sorted(keys)))
                ids = list(conn.execute(sa.select(predictions.c.id).where(where)).scalars())
                for part in _chunks(ids):
                    for table, column in (
                        (label_history, label_history.c.prediction_id),
                        (labels, labels.c.prediction_id),
                        (review_items, review_items.c.prediction_id),
                    ):
                        gone = conn.execute(table.delete().where(column.in_(part)))
                        counts[table.name] += gone.rowcount
                if ids:
                    counts["predictions"] += conn.execute(
                        predictions.delete().where(where)
                    ).rowcount
        return Forgotten(key=key, **counts)

    def prune_model(self, model: str, older_than: datetime) -> int:
        """Delete ``model``'s predictions logged before ``older_than``; how many went."""
        cutoff = _aware(older_than, "older_than")
        oldest = (
            sa.select(predictions.c.id)
            .where(predictions.c.model == model, predictions.c.ts < cutoff)
            .limit(PRUNE_CHUNK_ROWS)
        )
        total = 0
        while True:
            with self.store.writing() as conn:
                deleted = conn.execute(  # ts: probe only the partitions before the cut-off
                    predictions.delete().where(
                        predictions.c.id.in_(oldest), predictions.c.ts < cutoff
                    )
                )
            total += deleted.rowcount
            if deleted.rowcount < PRUNE_CHUNK_ROWS:
                return total


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]
