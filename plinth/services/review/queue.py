"""The review queue: list, claim (a lease: two reviewers never hold one item) and resolve.

A resolution is stored as a label with ``source=reviewer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Gauge

from plinth.core.output import OutputContract
from plinth.core.review import expected_review_share
from plinth.core.review_policy import ReviewPolicy
from plinth.errors import (
    AlreadyResolvedError,
    InvalidReviewLabelError,
    MissingReviewLabelError,
    PlinthError,
    PredictionPrunedError,
    ReviewClaimedError,
    ReviewItemNotFoundError,
    UnknownReviewActionError,
    UnknownReviewStatusError,
)
from plinth.services.feedback.labels import REVIEWER_SOURCE, coerce_label, now_utc
from plinth.store import Store
from plinth.store.feedback import FeedbackStore, LabelRow, ReviewRow

if TYPE_CHECKING:
    from plinth.services.registry.versions import ServedModel

log = logging.getLogger("plinth.review")


ROLES = ("predict", "reviewer", "admin")
ACTIONS = ("approve", "correct")
STATUSES = ("pending", "claimed", "resolved")


QUEUE_DEPTH = Gauge(
    "plinth_review_queue_depth",
    "Review items not yet resolved (pending or claimed).",
    ["model"],
    multiprocess_mode="mostrecent",
)
OLDEST_PENDING = Gauge(
    "plinth_review_oldest_pending_seconds",
    "Age of the oldest unresolved review item.",
    ["model"],
    multiprocess_mode="mostrecent",
)
RESOLUTION_SECONDS = Gauge(
    "plinth_review_resolution_seconds",
    "Median time from review item to resolution, over the last 1,000 resolved items.",
    ["model"],
    multiprocess_mode="mostrecent",
)


# ---------------------------------------------------------------------- the queue


@dataclass
class QueueView:
    """Queue numbers for one model."""

    model: str
    open: int
    oldest_age_s: float | None
    median_resolution_s: float | None
    resolved_counted: int
    sla_s: float
    expected_share: dict[str, Any] | None = None

    @property
    def sla_breached(self) -> bool:
        return self.oldest_age_s is not None and self.oldest_age_s > self.sla_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "open": self.open,
            "oldest_age_s": self.oldest_age_s,
            "median_resolution_s": self.median_resolution_s,
            "resolved_counted": self.resolved_counted,
            "sla_s": self.sla_s,
            "sla_breached": self.sla_breached,
            "expected_share": self.expected_share,
        }


class ReviewQueue:
    """List, claim and resolve review items; a resolution is stored as a label."""

    def __init__(
        self,
        store: Store,
        *,
        lease: timedelta = timedelta(minutes=5),
        sla: timedelta = timedelta(hours=4),
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store = store
        self.sql = FeedbackStore(store)
        self.lease = lease
        self.sla = sla
        self.clock = clock

    def list_items(
        self, *, model: str | None = None, status: str | None = "pending", limit: int = 100
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise UnknownReviewStatusError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        now = self.clock()
        rows = self.sql.list_reviews(
            now, model=model, status=status, limit=max(1, min(limit, 1000))
        )
        return [review_view(r, now) for r in rows]

    def show(self, review_id: str) -> dict[str, Any]:
        """The item with its prediction (input, output, probabilities) and context."""
        row = self._get(review_id)
        view = review_view(row, self.clock())
        prediction = self.sql.prediction_row(row.prediction_id)
        if prediction is not None:
            view["input"] = prediction["input"]
            view["features"] = prediction["features"]
            view["output"] = prediction["output"]
            view["confidence"] = prediction["confidence"]
            view["predicted_at"] = prediction["ts"].isoformat()
        view["context"] = row.context
        return view

    def claim(self, review_id: str, reviewer: str) -> dict[str, Any]:
        """Hold the item for ``lease``; a second reviewer gets a 409 until it ends."""
        now = self.clock()
        outcome = self.sql.claim(review_id, reviewer, now, now + self.lease)
        if not outcome.won:
            raise self._lost(review_id, outcome.row, now)
        assert outcome.row is not None
        return review_view(outcome.row, now)

    def resolve(
        self,
        review_id: str,
        reviewer: str,
        action: str,
        label: Any = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Approve the model's answer or correct it; either way it becomes a label."""
        if action not in ACTIONS:
            raise UnknownReviewActionError(f"action {action!r} is not approve or correct")
        row = self._get(review_id)
        prediction = self.sql.prediction_row(row.prediction_id)
        output: dict[str, Any] = {} if prediction is None else prediction["output"]
        contract = OutputContract.from_dict(
            self.store.get_version(row.model, row.version).metadata["output_contract"]
        )
        if action == "approve":
            if label is not None:
                raise InvalidReviewLabelError(
                    "approve takes no label: it confirms the model's own answer",
                    hint='Use {"action": "correct", "label": ...} to change it.',
                )
            if "prediction" not in output:
                raise PredictionPrunedError(
                    "the prediction was pruned from the log, so there is nothing to approve"
                )
            label = output["prediction"]
        if label is None:
            raise MissingReviewLabelError("correct needs the right label")
        value, why = coerce_label(contract, label)
        if why is not None:
            raise InvalidReviewLabelError(why)
        now = self.clock()
        label_row = LabelRow(
            prediction_id=row.prediction_id,
            model=row.model,
            version=row.version,
            prediction_ts=row.created_at if prediction is None else prediction["ts"],
            output=output,
            label=value,
            source=REVIEWER_SOURCE,
            labelled_at=now,
            received_at=now,
        )
        outcome = self.sql.resolve(
            review_id, reviewer, now, action=action, label=value, note=note, label_row=label_row
        )
        if not outcome.won:
            raise self._lost(review_id, outcome.row, now)
        assert outcome.row is not None
        return review_view(outcome.row, now)

    def numbers(self, model: str | None = None) -> list[QueueView]:
        """Queue depth, oldest open item's age and median resolution time, per model."""
        now = self.clock()
        views = []
        for name, entry in sorted(self.sql.queue_numbers(now, model).items()):
            oldest = entry["oldest"]
            # Wall-clock times from many processes: after the clock was set back, an item
            # may look created in the future, or resolved before it was created. Such a span
            # counts as 0: the age gauge and the median resolution time never go negative.
            durations = [max(0.0, d) for d in entry["resolution_s"]]
            views.append(
                QueueView(
                    model=name,
                    open=entry["open"],
                    oldest_age_s=(
                        None if oldest is None else max(0.0, (now - oldest).total_seconds())
                    ),
                    median_resolution_s=float(np.median(durations)) if durations else None,
                    resolved_counted=len(durations),
                    sla_s=self.sla.total_seconds(),
                )
            )
        return views

    def publish(self, views: Sequence[QueueView]) -> None:
        """Set the Prometheus gauges from ``numbers()``."""
        for v in views:
            QUEUE_DEPTH.labels(v.model).set(v.open)
            OLDEST_PENDING.labels(v.model).set(v.oldest_age_s or 0.0)
            if v.median_resolution_s is not None:
                RESOLUTION_SECONDS.labels(v.model).set(v.median_resolution_s)

    def _get(self, review_id: str) -> ReviewRow:
        row = self.sql.get_review(review_id)
        if row is None:
            raise ReviewItemNotFoundError(review_id)
        return row

    def _lost(self, review_id: str, row: ReviewRow | None, now: datetime) -> PlinthError:
        if row is None:
            return ReviewItemNotFoundError(review_id)
        if row.status == "resolved":
            return AlreadyResolvedError(
                f"review item {review_id} was already resolved by {row.resolved_by}"
            )
        until = "" if row.claimed_until is None else row.claimed_until.isoformat()
        return ReviewClaimedError(
            f"review item {review_id} is claimed by {row.claimed_by} until {until}"
        )


def expected_share(model: ServedModel, policy: ReviewPolicy) -> dict[str, Any]:
    """The share of traffic this gate should send to review, from the holdout."""
    scores = model.review_assets().holdout_confidence
    if not scores or policy.measure != "top_probability":
        return {}
    return expected_review_share(scores, policy.threshold).to_dict()


def review_view(row: ReviewRow, now: datetime) -> dict[str, Any]:
    status = row.status
    if status == "claimed" and row.claimed_until is not None and row.claimed_until < now:
        status = "pending"  # the lease ran out
    return {
        "id": row.id,
        "prediction_id": row.prediction_id,
        "model": row.model,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "status": status,
        "gate": {"measure": row.measure, "threshold": row.threshold, "score": row.score},
        "claimed_by": row.claimed_by if status == "claimed" else None,
        "claimed_until": (
            row.claimed_until.isoformat() if status == "claimed" and row.claimed_until else None
        ),
        "resolved_at": None if row.resolved_at is None else row.resolved_at.isoformat(),
        "resolved_by": row.resolved_by,
        "action": row.action,
        "label": row.label if status == "resolved" else None,
        "note": row.note,
        "has_context": row.context is not None,
    }
