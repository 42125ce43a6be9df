"""The tables, as SQLAlchemy Core metadata: the store's queries are written against these.

Migrations in ``plinth/store/migrations`` create the same tables; keep the two in step
(``tests/store/test_schema.py`` compares them on both backends).

JSON columns use the plain ``JSON`` type on every backend, PostgreSQL included, on purpose:
``jsonb`` re-encodes numbers as ``numeric`` and sorts object keys, so ``1e16`` comes back as
the integer ``10000000000000000``, ``-0.0`` loses its sign and a contract's field order is
lost. ``json`` keeps the text exactly as written, which is what a replayable log needs, and
it is cheaper to write. Nothing queries inside these documents today; if something must,
add an expression index or a ``jsonb`` column in a migration.

Strings are ``TEXT`` throughout: length limits belong to the services that validate input,
and ``varchar(n)`` would fail on PostgreSQL where SQLite silently accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

# Alembic's bookkeeping table, under our own name so Plinth can share a PostgreSQL database
# with an application that keeps its own Alembic history.
VERSION_TABLE = "plinth_alembic_version"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out, on every backend.

    SQLite has no time zone type and hands back naive values; PostgreSQL hands back the
    session's zone. Both are normalised to UTC here so callers never see a naive datetime.
    Naive input is refused: guessing its zone would silently shift the log.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the store; "
                "pass an aware one, e.g. datetime.now(UTC)"
            )
        value = value.astimezone(UTC)
        # SQLite stores the wall-clock fields as fixed-width text; stripping the zone keeps
        # every stored value in one format, so text comparison orders them correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    # none_as_null=False: a Python None inside a document is JSON null, never SQL NULL.
    return sa.JSON(none_as_null=False)


models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.Text, sa.ForeignKey("models.name"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("flavor", sa.Text, nullable=False),
    sa.Column("task", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    # (name, version) is the natural key; it doubles as the index for "latest version".
    sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    sa.UniqueConstraint("name", "sha256", name="uq_model_versions_name_sha256"),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # a ULID: sorts by time
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("route", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=True),
    sa.Column("input", _json(), nullable=False),
    sa.Column("features", _json(), nullable=False),
    sa.Column("output", _json(), nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("warnings", _json(), nullable=False),
    # No foreign key to model_versions: the log is written on the hot path and pruned on
    # its own schedule; a versions lookup per row would cost more than it protects.
    # Version included: counting a window per version reads the index alone (0006).
    sa.Index("ix_predictions_model_ts_version", "model", "ts", "version"),
    # No index on ts alone (0007): the all-models listing walks the ULID key, and the prune
    # finds old rows at the start of the table; one index fewer to write per prediction.
)

# -- Versioned rollout (deployments) -----------------------------------------------------------
# Append-only: every change to a model's deployment is a new row; the newest revision per name
# is the live spec. ``id`` is global and only grows, so ``max(id)`` is the cheap change counter
# every serving worker polls.

deployment_revisions = sa.Table(
    "deployment_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, sa.ForeignKey("models.name"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("spec", _json(), nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("who", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("evidence", _json(), nullable=True),
    sa.UniqueConstraint("name", "revision", name="uq_deployment_revisions_name_revision"),
)

# -- What every serving worker has applied (0010) ---------------------------------------------

# One row per contract edit: the change counter workers poll for contracts (max(id)), and the
# record of who changed which version's contract when (the document itself lives in the
# version's metadata, with its history).
contract_revisions = sa.Table(
    "contract_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("who", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint(
        "name", "version", "revision", name="uq_contract_revisions_name_version_revision"
    ),
)

# A serving worker's heartbeat: it is live while ``seen_at`` is recent.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("worker", sa.Text, primary_key=True),
    sa.Column("replica", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("seen_at", UTCDateTime(), nullable=False),
)

# What one worker applied per model: the deployment revision it tried (applied or failed,
# with the load error) and the contract revision of each version it has loaded.
worker_states = sa.Table(
    "worker_states",
    metadata,
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("revision_id", sa.Integer, nullable=True),
    sa.Column("revision", sa.Integer, nullable=True),
    sa.Column("state", sa.Text, nullable=False),  # applied | failed
    sa.Column("error", _json(), nullable=True),
    sa.Column("contracts", _json(), nullable=False),  # {"VERSION": contract revision}
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("worker", "name", name="pk_worker_states"),
)

# -- Monitoring: interval profiles, alerts and the evaluator's lease (issue 3) ----------------

interval_profiles = sa.Table(
    "interval_profiles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("start", UTCDateTime(), nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    # One row per interval per worker process; reads merge rows by adding their counts.
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("errors", _json(), nullable=False),
    sa.Column("validation_failures", sa.Integer, nullable=False),
    sa.Column("problems", _json(), nullable=False),
    sa.Column("latency", sa.LargeBinary, nullable=False),
    # Flat counts and sums laid out by the version's reference profile (plinth.core.interval).
    sa.Column("counts", sa.LargeBinary, nullable=True),
    sa.Column("sums", sa.LargeBinary, nullable=True),
    # A remote model's calls, cached answers, tokens and cost in the interval (0015); NULL
    # for the other flavors.
    sa.Column("usage", sa.JSON(none_as_null=True), nullable=True),
    sa.Index("ix_interval_profiles_model_start", "model", "start"),
    # Hourly roll-ups share the table (seconds = 3600); the roll-up job and pruning find
    # rows by resolution and age across models (migration 0005).
    sa.Index("ix_interval_profiles_seconds_start", "seconds", "start"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # firing | resolved
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", _json(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("last_true_at", UTCDateTime(), nullable=False),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.Index("ix_alerts_model_state", "model", "state"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

# -- Ground truth and review: labels, label history, review items, API tokens (issue 5) -------
# A label row carries a copy of its prediction's model, version, time and output, so live
# performance needs no join and survives the prediction log's retention window.

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("prediction_id", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("prediction_ts", UTCDateTime(), nullable=False),
    sa.Column("output", _json(), nullable=False),
    sa.Column("label", sa.Text, nullable=False),  # JSON text: a bare number must stay one
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("labelled_at", UTCDateTime(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Index("ix_labels_model_prediction_ts", "model", "prediction_ts"),
)

# Every label a newer one replaced: nothing about ground truth is ever lost.
label_history = sa.Table(
    "label_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prediction_id", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("label", sa.Text, nullable=False),  # JSON text: a bare number must stay one
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("labelled_at", UTCDateTime(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("replaced_at", UTCDateTime(), nullable=False),
    sa.Index("ix_label_history_prediction_id", "prediction_id"),
)

review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # a ULID: sorts by creation time
    sa.Column("prediction_id", sa.Text, nullable=False, unique=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("measure", sa.Text, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("status", sa.Text, nullable=False),  # pending | claimed | resolved
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime(), nullable=True),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.Column("resolved_by", sa.Text, nullable=True),
    sa.Column("action", sa.Text, nullable=True),  # approve | correct
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("context", _json(), nullable=True),  # attribution and neighbours, filled later
    sa.Index("ix_review_items_model_status_created", "model", "status", "created_at"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),  # predict | reviewer | admin
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),  # sha256; never the token
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

# Feedback by request key looks predictions up by (model, key). Partial (0007): most requests
# carry no key, and those rows need no entry. The WHERE key IS NOT NULL lives in the migrations
# only: a dialect option here would load the PostgreSQL dialect on every SQLite open (~30 ms of
# each CLI command's start-up), and the metadata never creates tables.
sa.Index("ix_predictions_model_key", predictions.c.model, predictions.c.key)

# -- Retraining: one row per training job (issue 13, migration 0009) --------------------------
# At most one queued or running job per model: the partial unique index is the guard, so two
# triggers racing (in one process or on two replicas) start one job.

training_jobs = sa.Table(
    "training_jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # a ULID: sorts by creation time
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # queued | running | succeeded | rejected | failed
    sa.Column("trigger", sa.Text, nullable=False),  # manual | schedule | labels | drift | ...
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("holder", sa.Text, nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("parent_version", sa.Integer, nullable=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("data", _json(), nullable=True),
    sa.Column("gate", _json(), nullable=True),
    sa.Column("error", _json(), nullable=True),
    sa.Index("ix_training_jobs_model_created", "model", "created_at"),
)

# Unique WHERE state IN ('queued', 'running'): partial in migration 0009 (see above for why
# the condition is not repeated here).
sa.Index("ix_training_jobs_one_active", training_jobs.c.model, unique=True)

# -- The audit trail (0014): one row per admin action, append-only -----------------------------

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("who", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # e.g. subject.forget, token.create
    sa.Column("target", sa.Text, nullable=False),  # what it acted on: a model, a token id
    sa.Column("detail", _json(), nullable=False),  # counts, versions; never a secret
    sa.Index("ix_audit_events_at", "at"),
)

# -- Remote models' spend (0015): one row per model per UTC day, added to atomically ----------

remote_spend = sa.Table(
    "remote_spend",
    metadata,
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("spent", sa.Float, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
