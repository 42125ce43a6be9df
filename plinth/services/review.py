"""Confidence-gated human review: the gate, the queue, the reviewer's context, and roles.

The path of an unsure prediction:

1. The gate (``gate``, called by scoring once per batch, vectorised) marks answers whose
   measure is on the wrong side of the policy; the reply still carries the prediction,
   plus ``"review": {"id": ..., "status": "pending"}``.
2. ``ReviewWriter`` stores the items right after the batch's log rows commit (the reply
   waits for that commit, so the id it carries always exists), then, on its own thread,
   computes each item's context — a local attribution and the nearest training rows and
   resolved reviews — and attaches it. The context never delays a reply. Online traffic
   and batch scoring (``plinth predict``) take the same path.
   What the gate and the context use from the training data is fitted at registration
   (``plinth.services.review_assets``) and loaded once per worker with the version.
3. ``ReviewQueue`` lists, claims (a lease: two reviewers never hold one item) and resolves
   items; the outcome becomes a label with ``source=reviewer``.

Roles start here too: ``Tokens`` keeps a token -> role table (predict, reviewer, admin)
in the store; only sha256 hashes are stored.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prometheus_client import Gauge
from ulid import ULID

from plinth.config import read_plinth_toml
from plinth.core.attribution import shapley_sampling
from plinth.core.neighbours import NeighbourIndex
from plinth.core.output import OutputContract
from plinth.core.review import ReviewPolicy, expected_review_share, tree_spread
from plinth.errors import ConfigError, NotFoundError, PlinthError, RequestError
from plinth.services.feedback import REVIEWER_SOURCE, coerce_label, now_utc
from plinth.settings import Settings
from plinth.store import Store
from plinth.store.feedback import FeedbackStore, LabelRow, ReviewRow, TokenRow

if TYPE_CHECKING:
    from plinth.services.registry import ServedModel

log = logging.getLogger("plinth.review")

ROLES = ("predict", "reviewer", "admin")
ACTIONS = ("approve", "correct")
STATUSES = ("pending", "claimed", "resolved")

#: Attribution budget: model rows evaluated per review item, at most.
ATTRIBUTION_ROWS = 20_000
TOP_FEATURES = 10
NEIGHBOURS = 5
RESOLVED_PRECEDENT = 500

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


# ---------------------------------------------------------------------- the policy


def policy_source(settings: Settings) -> Callable[[str], ReviewPolicy | None]:
    """Where each model's gate comes from: ``[models.NAME]`` in plinth.toml
    (``review_below = 0.7``, optionally ``review_measure = "margin"``; regressors
    ``review_above = 2.5`` with ``review_measure = "tree_spread"`` or ``"ood"``), else
    ``PLINTH_REVIEW_BELOW`` for every classifier. Read once per call site."""
    per_model = _toml_models(settings.monitoring_file)
    default = settings.review_below

    def policy(name: str) -> ReviewPolicy | None:
        section = per_model.get(name, {})
        measure = section.get("review_measure", settings.review_measure)
        if "review_above" in section:
            return ReviewPolicy(float(section["review_above"]), measure)
        if "review_below" in section:
            return ReviewPolicy(float(section["review_below"]), measure)
        return None if default is None else ReviewPolicy(float(default), measure)

    return policy


def _toml_models(path: Path) -> dict[str, dict[str, Any]]:
    models = read_plinth_toml(path).get("models", {})
    return {k: v for k, v in models.items() if isinstance(v, dict)}


@dataclass
class ReviewDraft:
    """A review item made on the scoring thread, with what its context needs."""

    row: ReviewRow
    model: ServedModel
    features: dict[str, Any]
    output: dict[str, Any]


def draft(
    model: ServedModel, prediction_id: str, ts: datetime, score: float, output: dict[str, Any]
) -> ReviewDraft:
    """A review item for one gated answer (features are attached by the caller)."""
    policy = model.review
    assert policy is not None
    row = ReviewRow(
        id=str(ULID()),
        prediction_id=prediction_id,
        model=model.name,
        version=model.version,
        created_at=ts,
        measure=policy.measure,
        threshold=float(policy.threshold),
        score=score if math.isfinite(score) else None,
    )
    return ReviewDraft(row, model, {}, output)


def gate(
    model: ServedModel,
    frame: pd.DataFrame,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(needs review, measure) per row of one batch, or None when the version has no gate
    or the measure cannot be computed for it (never raised: a known reason, such as a
    version without an OOD reference, is logged once per version; a bug once per batch)."""
    policy = model.review
    if policy is None:
        return None
    try:
        if policy.review_below:
            if probabilities is None:
                return None
            scores = policy.scores(probabilities=probabilities)
            return policy.needs_review(probabilities=probabilities), scores
        scores = _uncertainty(model, policy, frame)
        return policy.needs_review(uncertainty=scores), scores
    except PlinthError as exc:  # e.g. review.no_ood_reference: the same every batch
        if exc.code not in model.gate_refusals:
            model.gate_refusals.add(exc.code)
            log.error("review gate off for %s:%s: %s", model.name, model.version, exc)
        return None
    except Exception:  # the gate must never fail a reply
        log.exception("review gate failed for %s:%s", model.name, model.version)
        return None


def _uncertainty(model: ServedModel, policy: ReviewPolicy, frame: pd.DataFrame) -> np.ndarray:
    if policy.measure == "tree_spread":
        estimator = model.flavor.model
        inputs: Any = frame
        steps = getattr(estimator, "steps", None)
        if steps:  # a pipeline: transform with every step but the last
            for _, step in steps[:-1]:
                inputs = step.transform(inputs)
            estimator = steps[-1][1]
        trees = getattr(estimator, "estimators_", None)
        if trees is None:
            raise ValueError("tree_spread needs a forest (an estimator with estimators_)")
        values = np.asarray(inputs.to_numpy() if hasattr(inputs, "to_numpy") else inputs)
        flat = [t for t in np.ravel(np.asarray(trees, dtype=object))]
        return tree_spread(np.column_stack([t.predict(values) for t in flat]))
    # ood: the reference fitted at registration, loaded once per worker with the version.
    return np.asarray(
        model.review_assets().ood_scorer(f"{model.name}:{model.version}").score(frame)
    )


# ---------------------------------------------------------------------- context


@dataclass
class _Prepared:
    background: pd.DataFrame | None
    neighbours: NeighbourIndex | None


class ContextBuilder:
    """Attribution and precedent for one review item, from what registration stored."""

    def __init__(self, sql: FeedbackStore, *, seed: int = 0) -> None:
        self.sql = sql
        self.seed = seed
        self._prepared: dict[tuple[str, int], _Prepared] = {}

    def _prepare(self, model: ServedModel) -> _Prepared:
        key = (model.name, model.version)
        if key not in self._prepared:
            assets = model.review_assets()  # stored at registration, loaded once
            background = assets.background
            self._prepared[key] = _Prepared(
                None if not background else model.contract.frame(background),
                assets.neighbours,
            )
        return self._prepared[key]

    def build(
        self, model: ServedModel, features: dict[str, Any], output: dict[str, Any]
    ) -> dict[str, Any]:
        prepared = self._prepare(model)
        row = model.contract.frame([features])
        context: dict[str, Any] = {}
        if prepared.background is not None and len(prepared.background):
            context["attribution"] = self._attribution(model, row, prepared.background)
        if prepared.neighbours is not None:
            context["neighbours"] = self._neighbours(model, row, prepared.neighbours)
        return context

    def _attribution(
        self, model: ServedModel, row: pd.DataFrame, background: pd.DataFrame
    ) -> dict[str, Any]:
        classifier = model.output.task == "classification" and model.flavor.has_proba

        def predict(frame: pd.DataFrame) -> Any:
            if classifier:
                return model.flavor.predict_proba(frame)
            return np.asarray(model.flavor.predict(frame), dtype=float)

        d = max(2, row.shape[1])
        n_background = max(10, min(len(background), ATTRIBUTION_ROWS // (2 * (d - 1))))
        result = shapley_sampling(
            predict, row, background, n_background=n_background, seed=self.seed
        )
        classes = model.output.classes or []
        explained = (
            classes[result.target]
            if classifier and result.target is not None and result.target < len(classes)
            else None
        )
        return {
            **result.to_dict(),
            "explains": "probability of " + repr(explained) if classifier else "prediction",
            "top": [{"feature": f, "value": v} for f, v in result.ranked(TOP_FEATURES)],
        }

    def _neighbours(
        self, model: ServedModel, row: pd.DataFrame, base: NeighbourIndex
    ) -> dict[str, Any]:
        index = base
        training = index.query(row, k=NEIGHBOURS)[0]
        resolved = self.sql.resolved_cases(model.name, RESOLVED_PRECEDENT)
        reviews: list[dict[str, Any]] = []
        if resolved:
            index = base.copy()  # the cached training sample stays as registered
            frame = model.contract.frame([features for _, features, _ in resolved])
            index.add(frame, [label for _, _, label in resolved], ids=[i for i, _, _ in resolved])
            added = {i for i, _, _ in resolved}
            everything = index.query(row, k=index.n_rows_)[0]
            reviews = [
                {"review_id": n.index, "distance": n.distance, "label": n.label}
                for n in everything
                if n.index in added
            ][:NEIGHBOURS]
        return {
            "training": [
                {
                    "row": n.index,
                    "distance": n.distance,
                    "label": n.label,
                    **_values(base, n.index),
                }
                for n in training
            ],
            "reviews": reviews,
            "distance": "mean per-feature Gower distance (numeric: |x - y| / IQR)",
        }


def _values(index: NeighbourIndex, row_id: Any) -> dict[str, Any]:
    """The stored row's feature values, undoing the index's scaling and encoding."""
    try:
        at = index.ids_.index(row_id)
    except ValueError:
        return {}
    values: dict[str, Any] = {}
    for j, column in enumerate(index.numeric_columns_):
        raw = index.numeric_[at, j]
        values[column] = None if np.isnan(raw) else float(raw * index.scale_[j] + index.center_[j])
    for j, column in enumerate(index.categorical_columns_):
        code = int(index.codes_[at, j])
        values[column] = index.vocabulary_[j][code] if code >= 0 else None
    return {"features": values}


# ---------------------------------------------------------------------- writing items

_STOP = object()


class ReviewWriter:
    """Stores review items in groups (the reply waits for this) and fills in their
    context afterwards on a second thread (nothing waits for that)."""

    def __init__(self, store: Store, *, with_context: bool = True) -> None:
        self.sql = FeedbackStore(store)
        self.builder = ContextBuilder(self.sql)
        self.with_context = with_context
        self._inserts: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._contexts: queue.Queue[Any] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._insert_loop, name="plinth-review-writer", daemon=True),
            threading.Thread(target=self._context_loop, name="plinth-review-context", daemon=True),
        ]
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def submit(self, drafts: Sequence[ReviewDraft]) -> Future[None]:
        """Queue items for storage; the future resolves once they are committed."""
        done: Future[None] = Future()
        if not drafts:
            done.set_result(None)
        else:
            self._inserts.put((list(drafts), done))
        return done

    def pending_contexts(self) -> int:
        """Stored items whose context is not attached yet (a progress bar's remainder)."""
        return self._contexts.unfinished_tasks

    def wait_for_context(self) -> None:
        """Block until every stored item's context is attached (tests, shutdown)."""
        self._contexts.join()

    def close(self, timeout: float = 30.0) -> None:
        if self._started:
            self._inserts.put(_STOP)
            for thread in self._threads:
                thread.join(timeout)
            self._started = False

    def _insert_loop(self) -> None:
        while True:
            item = self._inserts.get()
            if item is _STOP:
                self._contexts.put(_STOP)
                return
            group = [item]
            while True:
                try:
                    nxt = self._inserts.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._inserts.put(_STOP)
                    break
                group.append(nxt)
            drafts = [d for batch, _ in group for d in batch]
            error: BaseException | None = None
            try:
                self.sql.insert_reviews([d.row for d in drafts])
            except Exception as exc:  # never let the writer thread die
                error = exc
            for _, done in group:
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            if error is None and self.with_context:
                for draft in drafts:
                    self._contexts.put(draft)

    def _context_loop(self) -> None:
        while True:
            draft = self._contexts.get()
            try:
                if draft is _STOP:
                    return
                context = self.builder.build(draft.model, draft.features, draft.output)
                self.sql.set_context(draft.row.id, context)
            except Exception:  # context is a help for reviewers, never a failure
                log.exception("could not build the review context of %s", draft.row.id)
            finally:
                self._contexts.task_done()


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
            raise RequestError(
                f"status {status!r} is not one of {', '.join(STATUSES)}",
                code="review.invalid_status",
                status=422,
                hint="Use status=pending, claimed or resolved.",
            )
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
            raise RequestError(
                f"action {action!r} is not approve or correct",
                code="review.invalid_action",
                status=422,
                hint='Send {"action": "approve"} or {"action": "correct", "label": ...}.',
            )
        row = self._get(review_id)
        prediction = self.sql.prediction_row(row.prediction_id)
        output: dict[str, Any] = {} if prediction is None else prediction["output"]
        contract = OutputContract.from_dict(
            self.store.get_version(row.model, row.version).metadata["output_contract"]
        )
        if action == "approve":
            if label is not None:
                raise RequestError(
                    "approve takes no label: it confirms the model's own answer",
                    code="review.invalid_label",
                    status=422,
                    hint='Use {"action": "correct", "label": ...} to change it.',
                )
            if "prediction" not in output:
                raise RequestError(
                    "the prediction was pruned from the log, so there is nothing to approve",
                    code="review.prediction_pruned",
                    status=409,
                    hint='Resolve with {"action": "correct", "label": ...}.',
                )
            label = output["prediction"]
        if label is None:
            raise RequestError(
                "correct needs the right label",
                code="review.missing_label",
                status=422,
                hint='Send {"action": "correct", "label": ...}.',
            )
        value, why = coerce_label(contract, label)
        if why is not None:
            raise RequestError(
                why,
                code="review.invalid_label",
                status=422,
                hint="The label must fit the version's output contract.",
            )
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
            durations = entry["resolution_s"]
            views.append(
                QueueView(
                    model=name,
                    open=entry["open"],
                    oldest_age_s=None if oldest is None else (now - oldest).total_seconds(),
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
            raise _not_found(review_id)
        return row

    def _lost(self, review_id: str, row: ReviewRow | None, now: datetime) -> PlinthError:
        if row is None:
            return _not_found(review_id)
        if row.status == "resolved":
            return RequestError(
                f"review item {review_id} was already resolved by {row.resolved_by}",
                code="review.already_resolved",
                status=409,
                hint="Each item is resolved once; list pending items for the next one.",
            )
        until = "" if row.claimed_until is None else row.claimed_until.isoformat()
        return RequestError(
            f"review item {review_id} is claimed by {row.claimed_by} until {until}",
            code="review.claimed",
            status=409,
            hint="Take another pending item; this one frees up if its lease runs out.",
        )


def expected_share(model: ServedModel, policy: ReviewPolicy) -> dict[str, Any]:
    """The share of traffic this gate should send to review, from the holdout."""
    scores = model.review_assets().holdout_confidence
    if not scores or policy.measure != "top_probability":
        return {}
    return expected_review_share(scores, policy.threshold).to_dict()


def _not_found(review_id: str) -> NotFoundError:
    return NotFoundError(
        f"no review item {review_id!r}",
        code="review.not_found",
        hint="List items with GET /v1/review?status=pending or `plinth review list`.",
    )


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


# ---------------------------------------------------------------------- tokens and roles


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_env_tokens(text: str | None) -> dict[str, tuple[str, str]]:
    """``PLINTH_TOKENS="admin:s3cret,reviewer:abc"`` -> {sha256(token): (role, name)}."""
    table: dict[str, tuple[str, str]] = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        role, sep, token = entry.partition(":")
        if not sep or role not in ROLES or not token:
            raise ConfigError(
                f"PLINTH_TOKENS entry {entry.split(':')[0]!r}:… is not ROLE:TOKEN",
                code="config.tokens",
                hint=f"Write role:token pairs separated by commas; roles: {', '.join(ROLES)}.",
            )
        table[hash_token(token)] = (role, f"env-{role}")
    return table


@dataclass
class Tokens:
    """The token -> role table: tokens created in the store plus ``PLINTH_TOKENS``."""

    store: Store
    env_tokens: str | None = None
    clock: Callable[[], datetime] = now_utc
    _sql: FeedbackStore = field(init=False)

    def __post_init__(self) -> None:
        self._sql = FeedbackStore(self.store)

    def create(self, role: str, name: str = "") -> tuple[TokenRow, str]:
        """A new random token for ``role``; the token itself is shown once, never stored."""
        if role not in ROLES:
            raise RequestError(
                f"role {role!r} is not one of {', '.join(ROLES)}",
                code="auth.invalid_role",
                status=422,
                hint="predict may score, reviewer may review, admin may do everything.",
            )
        token = "plt_" + secrets.token_urlsafe(24)
        row = TokenRow(
            id="tok_" + secrets.token_hex(4),
            name=name or role,
            role=role,
            token_hash=hash_token(token),
            created_at=self.clock(),
        )
        self._sql.add_token(row)
        return row, token

    def active(self) -> list[TokenRow]:
        return self._sql.list_tokens()

    def revoke(self, token_id: str) -> None:
        if not self._sql.revoke_token(token_id, self.clock()):
            raise NotFoundError(
                f"no active token {token_id!r}",
                code="auth.token_not_found",
                hint="`plinth tokens list` shows the active tokens and their ids.",
            )

    def table(self) -> dict[str, tuple[str, str]]:
        """sha256(token) -> (role, name) for every active token; empty means auth is off."""
        table = {row.token_hash: (row.role, row.name) for row in self._sql.list_tokens()}
        table.update(parse_env_tokens(self.env_tokens))
        return table
