"""One settings object, read from ``PLINTH_*`` environment variables at the edge.

Every field has a default that works on a laptop; the core never reads the environment,
it receives values from here.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from plinth.config.policies import Policies
    from plinth.core.request_limits import RequestLimits

#: ``plinth serve --workers N`` hands each worker process its exact settings in this variable.
SETTINGS_HANDOFF = "PLINTH_SERVE_SETTINGS"


class Settings(BaseSettings):
    """Process-wide settings; build once with ``Settings()`` and pass down."""

    model_config = SettingsConfigDict(env_prefix="PLINTH_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default=Path(".plinth"), description="Where the database and artifacts live."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to SQLite at $PLINTH_HOME/plinth.db.",
    )
    database_pool_size: int = Field(
        default=5,
        ge=1,
        description="PostgreSQL connections each process keeps open (its pool; SQLite: unused).",
    )
    database_max_overflow: int = Field(
        default=10,
        ge=0,
        description="PostgreSQL connections a process may open beyond its pool under load.",
    )
    replica: str = Field(
        default_factory=socket.gethostname,
        description="This replica's name in the x-plinth-replica reply header (the host name).",
    )
    max_records_per_request: int = Field(
        default=10_000, ge=1, description="Most records in one predict request (413 beyond)."
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="Largest request body in bytes (413 beyond)."
    )
    max_json_depth: int = Field(
        default=32,
        ge=2,
        description="Deepest nesting of arrays and objects in a JSON body (413 "
        "request.over_limit beyond); a predict body needs 3.",
    )
    max_string_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="Longest string (or object key) in a JSON body, in characters (413 beyond).",
    )
    max_array_items: int = Field(
        default=1_000_000,
        ge=1,
        description="Longest array in a JSON body (413 beyond); a v2 tensor's flat data "
        "counts every element. Records per request have their own, lower limit.",
    )
    max_object_keys: int = Field(
        default=10_000,
        ge=1,
        description="Most keys in one JSON object, e.g. fields in one record (413 beyond).",
    )
    max_query_bytes: int = Field(
        default=8_192,
        ge=1,
        description="Longest query string in bytes (400 request.query_too_large beyond).",
    )
    max_query_params: int = Field(
        default=64,
        ge=1,
        description="Most query parameters in one request (400 request.query_too_large beyond).",
    )
    log_max_batch_rows: int = Field(
        default=5_000, ge=1, description="Most log rows the writer thread commits at once."
    )
    max_batch_size: int = Field(
        default=64,
        ge=1,
        description="Most records per model call (adaptive micro-batching); per model: "
        "max_batch_size in [models.NAME] of plinth.toml.",
    )
    max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="Longest a batch may wait for more records under load (0, the default: "
        "never wait, take what queued during the previous call); it waits only when the "
        "model's learned cost says the wait pays.",
    )
    max_queue_records: int = Field(
        default=0,
        ge=0,
        description="Most records one worker lets wait for one model (queued or being "
        "scored); a request beyond it is shed with 503 server.overloaded (0, the default: "
        "no bound but the deadline); per model: max_queue_records in [models.NAME].",
    )
    shed: bool = Field(
        default=True,
        description="Shed a request at once (503 server.overloaded, Retry-After) when the "
        "model's queue, at its learned call cost, cannot answer it before its deadline; "
        "per model: shed in [models.NAME].",
    )
    grpc_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve the Open Inference Protocol over gRPC on this port (the grpc "
        "extra); unset, the default: no gRPC. `plinth serve --grpc-port N` sets it.",
    )
    grpc_host: str = Field(
        default="127.0.0.1",
        description="Interface the gRPC server binds; `plinth serve` sets it to --host.",
    )
    tracing: bool = Field(
        default=False,
        description="Export OpenTelemetry traces over OTLP/HTTP (the otel extra); the "
        "endpoint, headers and service name come from the standard OTEL_* variables "
        "(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ...).",
    )
    log_predictions: bool = Field(
        default=True, description="Write every prediction to the log (off only for benchmarks)."
    )
    request_timeout_s: float = Field(
        default=30.0, description="Longest a request may wait for the model before a 503."
    )
    worker_start_timeout_s: int = Field(
        default=120,
        ge=1,
        description="With --workers N: how long a worker may take to load and warm its "
        "models before uvicorn gives up on it (uvicorn's own default, 5 s, restarts a "
        "worker that is still loading on a busy machine, forever).",
    )
    sqlite_synchronous: str = Field(
        default="NORMAL",
        description="SQLite durability: NORMAL survives a process crash, FULL also power loss.",
    )
    sqlite_busy_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="SQLite: how long a write waits for another process's write lock before "
        "it fails with 503 store.unavailable.",
    )
    store_probe_s: float = Field(
        default=1.0,
        gt=0,
        description="After the prediction log failed to commit, predictions are refused at "
        "once (503 store.unavailable) and /readyz is not ready; one request (or /readyz) "
        "tries the store again at most this often, and the first success ends it.",
    )
    # Versioned rollout (plinth.services.serving.routing).
    deployment_poll_s: float = Field(
        default=0.25, description="How often each worker checks the store for a new revision."
    )
    deployment_listen: bool = Field(
        default=True,
        description=(
            "PostgreSQL: also LISTEN for new revisions, so a change is applied at once "
            "(turn off behind PgBouncer in transaction mode; polling still applies it)."
        ),
    )
    breaker_failures: int = Field(
        default=5, description="Consecutive failures that open a version's circuit breaker."
    )
    breaker_cooldown_s: float = Field(
        default=5.0, description="How long an open breaker waits before one probe request."
    )
    shadow_queue_size: int = Field(
        default=1000, description="Shadow copies waiting per worker; more are dropped, counted."
    )
    # Automated canary analysis (plinth.services.rollout.canary); policies in plinth.toml [canary].
    canary_interval_s: float = Field(
        default=30.0, description="How often live canaries are judged (by one worker)."
    )
    canary_analysis: bool = Field(default=True, description="Judge canaries in `serve`.")
    # Retraining (plinth.services.training); recipes in plinth.toml [models.NAME.training].
    training_jobs: bool = Field(
        default=True,
        description="Check retraining triggers and run training jobs in `serve` (one job "
        "runs in exactly one process, under the store's lease).",
    )
    training_interval_s: float = Field(
        default=15.0, description="How often triggers are checked and queued jobs claimed."
    )
    training_lease_s: float = Field(
        default=60.0,
        description="A running job's lease, renewed every second while it trains; a job "
        "whose worker stops renewing is failed this long after.",
    )
    # Monitoring (plinth.services.monitoring and plinth.services.monitoring.alerts).
    profile_interval_s: float = Field(
        default=60.0, description="Length of one interval profile; each is stored at its end."
    )
    alert_interval_s: float = Field(
        default=30.0, description="How often alert rules are evaluated (by one worker)."
    )
    alerts_enabled: bool = Field(default=True, description="Evaluate alert rules in `serve`.")
    webhook_url: str | None = Field(default=None, description="POST alert events here as JSON.")
    policy_file: Path = Field(
        default=Path("plinth.toml"),
        validation_alias=AliasChoices("PLINTH_POLICY_FILE", "PLINTH_MONITORING_FILE"),
        description="plinth.toml: per-model policies (alerts, canary, review, batching). "
        "PLINTH_MONITORING_FILE is its old, deprecated name.",
    )
    # Labels, review and roles (plinth.services.feedback.labels / performance / review).
    review_below: float | None = Field(
        default=None,
        description="Send classifier answers below this confidence to review (off when unset); "
        "per model: review_below in [models.NAME] of plinth.toml.",
    )
    review_measure: str = Field(
        default="top_probability", description="Gate measure: top_probability, margin, ..."
    )
    review_lease_s: float = Field(default=300.0, description="How long a claim holds an item.")
    review_sla_s: float = Field(
        default=4 * 3600.0, description="Oldest open review item older than this breaches SLA."
    )
    review_context: bool = Field(
        default=True, description="Compute attribution and neighbours for each review item."
    )
    tokens: str | None = Field(
        default=None, description="Extra API tokens as role:token,role:token (see plinth tokens)."
    )
    log_hash_key: str | None = Field(
        default=None,
        repr=False,  # a secret: never in a repr, a log line or an error
        description="Secret key of the keyed hash (HMAC-SHA256) that `hash = [...]` in "
        "[models.NAME.log] stores instead of a field's value; required when any model hashes.",
    )
    retention_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often `serve` deletes log rows older than each model's "
        "`retention` (one process at a time, under a lease).",
    )
    auth_refresh_s: float = Field(default=5.0, description="How often the token table reloads.")
    auth_max_failures: int = Field(
        default=10,
        ge=1,
        description="Requests with a missing or invalid token one client address may send "
        "within PLINTH_AUTH_FAILURE_WINDOW_S before its requests are refused (429 "
        "auth.too_many_failures, Retry-After) until the window passes; per worker.",
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, description="The window PLINTH_AUTH_MAX_FAILURES counts in."
    )
    performance_window: str = Field(
        default="1d", description="Window of the live-performance gauges on /metrics."
    )
    performance_refresh_s: float = Field(
        default=60.0, description="How often review and performance gauges are recomputed."
    )

    @model_validator(mode="after")
    def _warn_old_names(self) -> Settings:
        if "PLINTH_MONITORING_FILE" in os.environ and "PLINTH_POLICY_FILE" not in os.environ:
            warnings.warn(
                "PLINTH_MONITORING_FILE is deprecated; name plinth.toml with PLINTH_POLICY_FILE.",
                FutureWarning,
                stacklevel=2,
            )
        return self

    @classmethod
    def from_handoff(cls) -> Settings:
        """The settings ``plinth serve`` resolved (CLI options included) for its workers;
        plain ``Settings()`` when started some other way (``uvicorn --factory``)."""
        handed = os.environ.get(SETTINGS_HANDOFF)
        return cls() if not handed else cls.model_validate_json(handed)

    def policies(self) -> Policies:
        """plinth.toml read and validated, over these settings' defaults (one reader)."""
        from plinth.config.policies import read_policies  # only commands that need plinth.toml

        return read_policies(
            self.policy_file,
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            max_queue_records=self.max_queue_records,
            shed=self.shed,
            review_below=self.review_below,
            review_measure=self.review_measure,
            log_hash_key=self.log_hash_key,
        )

    def request_limits(self) -> RequestLimits:
        """The JSON-shape and query limits every edge checks requests against."""
        from plinth.core.request_limits import RequestLimits

        return RequestLimits(
            max_depth=self.max_json_depth,
            max_string_chars=self.max_string_chars,
            max_array_items=self.max_array_items,
            max_object_keys=self.max_object_keys,
            max_query_bytes=self.max_query_bytes,
            max_query_params=self.max_query_params,
        )

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    def resolved_database_url(self) -> str:
        """The database to use: the explicit URL, else SQLite inside ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'plinth.db').resolve()}"
