"""``plinth.toml``, read and validated once at start-up into typed policies per model.

One reader for the whole file: a syntax error, an unknown key or a bad value anywhere is
reported together with every other problem in it (``config.invalid``, each problem with its
dotted location), so an operator fixes the file in one pass. Services never read files:
they receive the plain policy objects built here (``AlertRules``, ``CanaryPolicy``,
``ReviewPolicy``, ``BatchingPolicy``) from the one ``Policies`` object the Runtime holds.

The file's shape::

    [monitoring]            # alert rules for every model (AlertRules)
    [monitoring.drift]      # drift detectors (plinth.core.drift_config.DriftConfig)
    [canary]                # canary analysis, every model (plinth.core.canary_policy.CanaryPolicy)
    [models.NAME]           # batching, admission and the review gate of one model
    [models.NAME.monitoring], [models.NAME.canary]   # per-model overrides
    [models.NAME.training]  # retraining recipe, data, holdout, gate, triggers (TrainingPolicy)
    [log], [models.NAME.log]   # what the prediction log keeps (plinth.core.privacy.LogPolicy)
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from plinth.core.canary_policy import CanaryPolicy
from plinth.core.drift_config import Detector, DriftConfig
from plinth.core.durations import parse_duration
from plinth.core.gate_policy import GatePolicy
from plinth.core.privacy import LogPolicy
from plinth.core.review_policy import ReviewPolicy
from plinth.core.schedule import Schedule
from plinth.errors import ConfigError, InvalidConfigError, PlinthError, Problem
from plinth.errors.config import LOG_HASH_KEY, LOG_REDACT_AND_HASH

HINT = "Fix each listed setting in plinth.toml; docs/configuration.md lists every one."


# ---------------------------------------------------------------------- the policies


@dataclass(frozen=True)
class AlertRules:
    """Alert thresholds for one model; ``None`` switches a threshold rule off."""

    window: timedelta = timedelta(minutes=15)
    hold_down: timedelta = timedelta(minutes=10)
    min_records: int = 200  # drift and control rules need this many profiled rows
    min_requests: int = 20  # rate and latency rules need this many requests
    dataset_drift: bool = True
    feature_drift: bool = True
    control_chart: bool = True
    control_sections: tuple[str, ...] = ("prediction", "confidence", "latency")
    error_rate: float | None = 0.05
    latency_p99_s: float | None = 1.0
    validation_rate: float | None = 0.10
    # Ground truth: the realised primary metric (accuracy, or R² for regressors) of the
    # served version over the last ``performance_window`` falls this far below its holdout
    # figure, judged once ``min_labels`` labels exist.
    performance_drop: float | None = 0.05
    performance_window: timedelta = timedelta(days=1)
    min_labels: int = 50
    # The oldest open review item is older than the review SLA (PLINTH_REVIEW_SLA_S).
    review_sla: bool = True
    drift: DriftConfig = field(default_factory=DriftConfig)


@dataclass(frozen=True)
class MonitorPolicy:
    """Alert rules: the defaults and per-model overrides."""

    defaults: AlertRules = field(default_factory=AlertRules)
    models: Mapping[str, AlertRules] = field(default_factory=dict)

    def for_model(self, name: str) -> AlertRules:
        return self.models.get(name, self.defaults)


@dataclass(frozen=True)
class CanaryPolicies:
    """Canary analysis: ``[canary]`` for every model, ``[models.NAME.canary]`` for one."""

    defaults: CanaryPolicy = field(default_factory=CanaryPolicy)
    models: Mapping[str, CanaryPolicy] = field(default_factory=dict)

    def for_model(self, name: str, overrides: Mapping[str, Any] | None = None) -> CanaryPolicy:
        """The file's policy for ``name`` with the deploy flags stored in the spec on top."""
        base = self.models.get(name, self.defaults)
        if not overrides:
            return base
        return CanaryPolicy.from_mapping(overrides, base, where=f"{name}'s deployment")


@dataclass(frozen=True)
class BatchingPolicy:
    """Most records per model call, the longest a batch may wait for more, and admission:
    most records waiting (0: no bound) and whether to shed what cannot meet its deadline."""

    max_batch_size: int = 64
    max_wait_s: float = 0.0
    max_queue_records: int = 0
    shed: bool = True


@dataclass(frozen=True)
class TrainingData:
    """Where a retraining job's rows come from (docs/retraining.md, "Data")."""

    reference: bool = True  # the champion's training table, stored at registration
    traffic: bool = True  # labelled traffic from the prediction log, point-in-time
    window: timedelta = timedelta(days=30)  # how far back labelled traffic is read
    max_rows: int = 200_000  # newest traffic first, then a seeded sample of the rest
    traffic_weight: float = 1.0  # sample weight of a traffic row (reference rows weigh 1)
    table: str | None = None  # an external CSV or Parquet file
    sql: str | None = None  # ...or a query on a PostgreSQL URL
    url: str | None = None


@dataclass(frozen=True)
class TrainingTriggers:
    """What starts a job without a person; each is off unless set."""

    schedule: Schedule | None = None
    labels: int | None = None  # labels received since the last training
    drift: bool = False  # a drift alert (dataset or feature) firing
    performance: bool = False  # a performance-drop alert firing
    cooldown: timedelta = timedelta(hours=1)  # between automatic jobs of one model


@dataclass(frozen=True)
class TrainingPolicy:
    """``[models.NAME.training]``: how to retrain one model, judge it and ship it."""

    entrypoint: str | None = None  # "package.module:function"
    command: tuple[str, ...] | None = None  # reads {data}, writes {output} (.skops)
    target: str | None = None  # default: the champion's target
    seed: int = 0
    time_limit: timedelta = timedelta(minutes=30)
    memory_mb: int | None = 4096
    threads: int | None = 1  # OpenMP/BLAS threads of the trainer (None: the libraries' own)
    data: TrainingData = field(default_factory=TrainingData)
    holdout_share: float = 0.2  # the newest share of labelled traffic, never trained on
    holdout_min_rows: int = 30
    gate: GatePolicy = field(default_factory=GatePolicy)
    triggers: TrainingTriggers = field(default_factory=TrainingTriggers)
    auto_deploy: bool = True
    canary_share: float = 10.0
    canary_min_requests: int | None = None
    canary_min_duration: timedelta | None = None

    def canary_settings(self) -> dict[str, Any]:
        """The deploy flags a canary of this policy is started with (None: [canary]'s)."""
        return {
            "min_requests": self.canary_min_requests,
            "min_duration": None
            if self.canary_min_duration is None
            else self.canary_min_duration.total_seconds(),
        }


@dataclass(frozen=True)
class Policies:
    """Every policy of every model, from plinth.toml and the settings' defaults."""

    monitoring: MonitorPolicy = field(default_factory=MonitorPolicy)
    canary: CanaryPolicies = field(default_factory=CanaryPolicies)
    batching_default: BatchingPolicy = field(default_factory=BatchingPolicy)
    batching_models: Mapping[str, BatchingPolicy] = field(default_factory=dict)
    review_default: ReviewPolicy | None = None
    review_models: Mapping[str, ReviewPolicy] = field(default_factory=dict)
    log_default: LogPolicy = field(default_factory=LogPolicy)
    log_models: Mapping[str, LogPolicy] = field(default_factory=dict)
    training_models: Mapping[str, TrainingPolicy] = field(default_factory=dict)
    source: Path | None = None

    def log(self, name: str) -> LogPolicy:
        """What the prediction log keeps of ``name``'s records: ``[models.NAME.log]`` over
        ``[log]``."""
        return self.log_models.get(name, self.log_default)

    def stored_key(self, name: str, key: str) -> str:
        """Request key ``key`` of model ``name`` as its log keeps it (hashed under
        ``hash_request_key``)."""
        return self.log(name).stored_key(key) or key

    def training(self, name: str) -> TrainingPolicy | None:
        """``[models.NAME.training]``, or None when the model has no recipe."""
        return self.training_models.get(name)

    def batching(self, name: str) -> BatchingPolicy:
        return self.batching_models.get(name, self.batching_default)

    def review(self, name: str) -> ReviewPolicy | None:
        """The review gate of ``name``: its ``[models.NAME]`` entry, else the default."""
        return self.review_models.get(name, self.review_default)

    def alerts(self, name: str) -> AlertRules:
        return self.monitoring.for_model(name)

    def with_review_default(self, threshold: float | None, measure: str) -> Policies:
        """These policies with another default gate (``--review-below`` on the CLI)."""
        gate = None if threshold is None else ReviewPolicy(threshold, measure)  # type: ignore[arg-type]
        return replace(self, review_default=gate)


# ---------------------------------------------------------------------- the file's schema


def _threshold_or_off(value: Any) -> Any:
    return None if value is False else value


def _non_negative(value: float | None) -> float | None:
    if value is not None and not value >= 0:
        raise ValueError("must be a number >= 0, or false to switch the rule off")
    return value


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(str(value))
    except PlinthError as exc:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 1h, 7d") from exc


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Threshold = Annotated[
    float | None, BeforeValidator(_threshold_or_off), AfterValidator(_non_negative)
]
Method = Literal["ks", "chi_square", "psi", "jensen_shannon", "wasserstein"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Detector(_Section):
    method: Method
    threshold: float = Field(gt=0)


class _Drift(_Section):
    small_sample: int | None = Field(default=None, ge=1)
    numeric_small: _Detector | None = None
    numeric_large: _Detector | None = None
    categorical_small: _Detector | None = None
    categorical_large: _Detector | None = None
    min_values: int | None = Field(default=None, ge=1)
    min_expected: float | None = Field(default=None, ge=0)
    distance_alpha: float | None = Field(default=None, gt=0, le=1)
    rate_alpha: float | None = Field(default=None, gt=0, lt=1)
    rate_min_change: float | None = Field(default=None, ge=0, le=1)
    unseen_min_change: float | None = Field(default=None, ge=0, le=1)
    dataset_share: float | None = Field(default=None, gt=0, le=1)
    psi_epsilon: float | None = Field(default=None, gt=0, lt=1)
    family_alpha: Threshold = None
    features: dict[str, _Detector] = Field(default_factory=dict)


class _Monitoring(_Section):
    window: Duration | None = None
    hold_down: Duration | None = None
    min_records: int | None = Field(default=None, ge=1)
    min_requests: int | None = Field(default=None, ge=1)
    dataset_drift: bool | None = None
    feature_drift: bool | None = None
    control_chart: bool | None = None
    control_sections: list[Literal["prediction", "confidence", "latency"]] | None = None
    error_rate: Threshold = None
    latency_p99_s: Threshold = None
    validation_rate: Threshold = None
    performance_drop: Threshold = None
    performance_window: Duration | None = None
    min_labels: int | None = Field(default=None, ge=1)
    review_sla: bool | None = None
    drift: _Drift | None = None


class _Log(_Section):
    redact: list[str] | None = None
    hash: list[str] | None = None
    hash_request_key: bool | None = None
    retention: Duration | None = None


class _TrainingData(_Section):
    reference: bool = True
    traffic: bool = True
    window: Duration | None = None
    max_rows: int = Field(default=200_000, ge=1)
    traffic_weight: float = Field(default=1.0, gt=0)
    table: str | None = None
    sql: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _TrainingData:
        if self.sql is not None and self.url is None:
            raise ValueError("sql needs url (a postgresql:// URL to run it on)")
        if self.url is not None and not self.url.startswith("postgresql"):
            raise ValueError(f"url must be a postgresql:// URL, got {self.url.split(':')[0]!r}")
        if self.table is not None and self.sql is not None:
            raise ValueError("give table or sql, not both")
        if not (self.reference or self.traffic or self.table or self.sql):
            raise ValueError("no data source: set reference, traffic, table or sql")
        return self


class _TrainingHoldout(_Section):
    share: float = Field(default=0.2, gt=0, lt=1)
    min_rows: int = Field(default=30, ge=1)


class _TrainingGate(_Section):
    absolute: dict[str, float] = Field(default_factory=dict)
    max_regression: float = Field(default=0.02, ge=-1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    require_improvement: bool = False
    bootstrap: int = Field(default=2000, ge=100, le=100_000)
    slices: list[str] = Field(default_factory=list)
    slice_max_regression: float = Field(default=0.10, ge=-1)
    slice_min_rows: int = Field(default=30, ge=1)
    contract: Literal["block", "report"] = "block"


def _cron(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    return Schedule(value)  # ValueError names the problem


class _TrainingTriggers(_Section):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )

    schedule: Annotated[Schedule, BeforeValidator(_cron)] | None = None
    labels: int | None = Field(default=None, ge=1)
    drift: bool = False
    performance: bool = False
    cooldown: Duration | None = None


class _Training(_Section):
    entrypoint: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    command: list[str] | None = Field(default=None, min_length=1)
    target: str | None = None
    seed: int = 0
    time_limit: Duration | None = None
    memory_mb: int | None = Field(default=4096, ge=64)
    threads: int | None = Field(default=1, ge=1, le=1024)
    auto_deploy: bool = True
    canary_share: float = Field(default=10.0, gt=0, lt=100)
    canary_min_requests: int | None = Field(default=None, ge=1)
    canary_min_duration: Duration | None = None
    data: _TrainingData | None = None
    holdout: _TrainingHoldout | None = None
    gate: _TrainingGate | None = None
    triggers: _TrainingTriggers | None = None

    @model_validator(mode="after")
    def _one_recipe(self) -> _Training:
        if (self.entrypoint is None) == (self.command is None):
            raise ValueError('give exactly one of entrypoint = "pkg.module:function" or command')
        if self.command is not None:
            text = " ".join(self.command)
            missing = [p for p in ("{data}", "{output}") if p not in text]
            if missing:
                raise ValueError(
                    f"command must name {' and '.join(missing)} (the training table it reads, "
                    "the .skops file it writes)"
                )
        return self


class _Model(_Section):
    max_batch_size: int | None = Field(default=None, ge=1, le=10_000)
    max_wait_ms: float | None = Field(default=None, ge=0, le=1000)
    max_queue_records: int | None = Field(default=None, ge=0)
    shed: bool | None = None
    review_below: float | None = Field(default=None, ge=0, le=1)
    review_above: float | None = Field(default=None, ge=0)
    review_measure: Literal["top_probability", "margin", "tree_spread", "ood"] | None = None
    monitoring: _Monitoring | None = None
    canary: dict[str, Any] | None = None
    training: _Training | None = None
    log: _Log | None = None

    @model_validator(mode="after")
    def _one_gate(self) -> _Model:
        if self.review_below is not None and self.review_above is not None:
            raise ValueError(
                "review_below and review_above are both set: classifiers gate with "
                "review_below, regressors with review_above"
            )
        return self


class _File(_Section):
    monitoring: _Monitoring | None = None
    canary: dict[str, Any] | None = None
    log: _Log | None = None
    models: dict[str, _Model] = Field(default_factory=dict)


# ---------------------------------------------------------------------- reading


def read_policies(
    path: Path | None,
    *,
    max_batch_size: int = 64,
    max_wait_ms: float = 0.0,
    max_queue_records: int = 0,
    shed: bool = True,
    review_below: float | None = None,
    review_measure: str = "top_probability",
    log_hash_key: str | None = None,
) -> Policies:
    """The policies in ``path`` (all defaults when it does not exist) over the settings'
    defaults; raises one ``config.invalid`` listing every problem in the file."""
    text = None
    if path is not None and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _invalid(path, [Problem("config.unreadable", f"cannot read it: {exc}")]) from exc
    return parse_policies(
        text,
        source=path,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue_records=max_queue_records,
        shed=shed,
        review_below=review_below,
        review_measure=review_measure,
        log_hash_key=log_hash_key,
    )


def parse_policies(
    text: str | None,
    *,
    source: Path | None = None,
    max_batch_size: int = 64,
    max_wait_ms: float = 0.0,
    max_queue_records: int = 0,
    shed: bool = True,
    review_below: float | None = None,
    review_measure: str = "top_probability",
    log_hash_key: str | None = None,
) -> Policies:
    """``read_policies`` for a document already in hand (tests, ``plinth config check``).

    >>> p = parse_policies('[monitoring]\\nwindow = "5m"\\n[models.churn]\\nreview_below = 0.7')
    >>> p.alerts("churn").window, p.review("churn"), p.review("other")
    (datetime.timedelta(seconds=300), ReviewPolicy(threshold=0.7, measure='top_probability'), None)
    """
    problems: list[Problem] = []
    where = source or Path("plinth.toml")
    try:
        document = tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as exc:
        raise _invalid(where, [Problem("config.syntax", f"not valid TOML: {exc}")]) from exc
    try:
        parsed = _File.model_validate(document)
    except ValidationError as exc:
        # Still judge the canary sections, so the one error lists every problem in the file.
        problems = [_problem(e) for e in exc.errors()]
        _canary(CanaryPolicy(), _table(document.get("canary")), "canary", problems)
        for name, section in _table(document.get("models")).items():
            canary = _table(section).get("canary") if isinstance(section, dict) else None
            _canary(CanaryPolicy(), _table(canary), f"models.{name}.canary", problems)
        raise _invalid(where, problems) from exc

    default_gate = _gate(review_below, review_measure, "PLINTH_REVIEW_BELOW", problems)
    alert_defaults = _alert_rules(AlertRules(), parsed.monitoring, "monitoring", problems)
    canary_defaults = _canary(CanaryPolicy(), parsed.canary, "canary", problems)
    batching_default = BatchingPolicy(
        max_batch_size, max_wait_ms / 1000.0, max_queue_records=max_queue_records, shed=shed
    )
    key = (log_hash_key or "").encode("utf-8")
    log_default = _log(LogPolicy(hash_key=key), parsed.log, "log", problems)
    logs: dict[str, LogPolicy] = {}
    alerts: dict[str, AlertRules] = {}
    canaries: dict[str, CanaryPolicy] = {}
    batching: dict[str, BatchingPolicy] = {}
    gates: dict[str, ReviewPolicy] = {}
    training: dict[str, TrainingPolicy] = {}
    for name, section in parsed.models.items():
        at = f"models.{name}"
        if section.training is not None:
            training[name] = _training(section.training)
        if section.monitoring is not None:
            alerts[name] = _alert_rules(
                alert_defaults, section.monitoring, f"{at}.monitoring", problems
            )
        if section.canary is not None:
            canaries[name] = _canary(canary_defaults, section.canary, f"{at}.canary", problems)
        given = section.model_dump(
            exclude_unset=True,
            include={"max_batch_size", "max_wait_ms", "max_queue_records", "shed"},
        )
        if given:
            wait_ms = given.pop("max_wait_ms", None)
            if wait_ms is not None:
                given["max_wait_s"] = wait_ms / 1000.0
            batching[name] = replace(batching_default, **given)
        if section.log is not None:
            logs[name] = _log(log_default, section.log, f"{at}.log", problems)
        measure = section.review_measure or review_measure
        threshold = section.review_above if section.review_above is not None else None
        threshold = section.review_below if threshold is None else threshold
        gate = _gate(threshold, measure, at, problems)
        if gate is not None:
            gates[name] = gate
    if problems:
        raise _invalid(where, problems)
    return Policies(
        monitoring=MonitorPolicy(alert_defaults, alerts),
        canary=CanaryPolicies(canary_defaults, canaries),
        batching_default=batching_default,
        batching_models=batching,
        review_default=default_gate,
        review_models=gates,
        training_models=training,
        log_default=log_default,
        log_models=logs,
        source=source,
    )


def _training(section: _Training) -> TrainingPolicy:
    base = TrainingPolicy()
    d = section.data or _TrainingData()
    h = section.holdout or _TrainingHoldout()
    g = section.gate or _TrainingGate()
    t = section.triggers or _TrainingTriggers()
    return TrainingPolicy(
        entrypoint=section.entrypoint,
        command=None if section.command is None else tuple(section.command),
        target=section.target,
        seed=section.seed,
        time_limit=section.time_limit or base.time_limit,
        memory_mb=section.memory_mb,
        threads=section.threads,
        data=TrainingData(
            reference=d.reference,
            traffic=d.traffic,
            window=d.window or TrainingData().window,
            max_rows=d.max_rows,
            traffic_weight=d.traffic_weight,
            table=d.table,
            sql=d.sql,
            url=d.url,
        ),
        holdout_share=h.share,
        holdout_min_rows=h.min_rows,
        gate=GatePolicy(
            absolute=dict(g.absolute),
            max_regression=g.max_regression,
            alpha=g.alpha,
            require_improvement=g.require_improvement,
            bootstrap=g.bootstrap,
            slices=tuple(g.slices),
            slice_max_regression=g.slice_max_regression,
            slice_min_rows=g.slice_min_rows,
            contract=g.contract,
        ),
        triggers=TrainingTriggers(
            schedule=t.schedule,
            labels=t.labels,
            drift=t.drift,
            performance=t.performance,
            cooldown=t.cooldown or TrainingTriggers().cooldown,
        ),
        auto_deploy=section.auto_deploy,
        canary_share=section.canary_share,
        canary_min_requests=section.canary_min_requests,
        canary_min_duration=section.canary_min_duration,
    )


def _alert_rules(
    base: AlertRules, section: _Monitoring | None, where: str, problems: list[Problem]
) -> AlertRules:
    if section is None:
        return base
    given = section.model_dump(exclude_unset=True, exclude={"drift"})
    changes: dict[str, Any] = {}
    names = {f.name for f in fields(AlertRules)}
    for key, value in given.items():
        if key in names:
            changes[key] = tuple(value) if isinstance(value, list) else value
    if section.drift is not None:
        try:
            changes["drift"] = _drift(base.drift, section.drift)
        except PlinthError as exc:
            problems.append(Problem("config.invalid_setting", exc.message, exc.hint, where))
    return replace(base, **changes)


def _log(base: LogPolicy, section: _Log | None, where: str, problems: list[Problem]) -> LogPolicy:
    """``section`` over ``base``: a key it sets replaces the base's, one it omits is kept."""
    if section is None:
        return base
    redact = base.redact if section.redact is None else frozenset(section.redact)
    hashed = base.hash if section.hash is None else frozenset(section.hash)
    retention = base.retention if section.retention is None else section.retention
    both = sorted(redact & hashed)
    if both:
        problems.append(
            Problem(
                LOG_REDACT_AND_HASH,
                f"{', '.join(both)} listed in both redact and hash",
                "A field is either dropped (redact) or kept as a keyed hash (hash), not both.",
                where,
            )
        )
    if section.hash_request_key and not base.hash_key:
        problems.append(
            Problem(
                LOG_HASH_KEY,
                "hash_request_key = true needs a secret key, and none is set",
                "Set PLINTH_LOG_HASH_KEY to a long random secret (e.g. `openssl rand -hex 32`) "
                "and keep it: a new key makes new hashes that no longer join the old ones.",
                f"{where}.hash_request_key",
            )
        )
    if section.hash and not base.hash_key:
        problems.append(
            Problem(
                LOG_HASH_KEY,
                f"hash = {sorted(section.hash)} needs a secret key, and none is set",
                "Set PLINTH_LOG_HASH_KEY to a long random secret (e.g. `openssl rand -hex 32`) "
                "and keep it: a new key makes new hashes that no longer join the old ones.",
                f"{where}.hash",
            )
        )
    hash_request_key = (
        base.hash_request_key if section.hash_request_key is None else section.hash_request_key
    )
    return replace(
        base, redact=redact, hash=hashed, retention=retention, hash_request_key=hash_request_key
    )


def _drift(base: DriftConfig, section: _Drift) -> DriftConfig:
    changes: dict[str, Any] = {}
    for key, value in section.model_dump(exclude_unset=True, exclude={"features"}).items():
        if isinstance(value, dict):
            changes[key] = Detector(value["method"], float(value["threshold"]))
        elif value is not None or key == "family_alpha":  # false: no family correction
            changes[key] = value
    if section.features:
        overrides = dict(base.overrides)
        for feature, spec in section.features.items():
            overrides[feature] = Detector(spec.method, spec.threshold)
        changes["overrides"] = overrides
    return replace(base, **changes)


def _canary(
    base: CanaryPolicy, section: Mapping[str, Any] | None, where: str, problems: list[Problem]
) -> CanaryPolicy:
    if not section:
        return base
    try:
        return CanaryPolicy.from_mapping(section, base, where=f"[{where}]")
    except ConfigError as exc:
        for p in exc.problems or [Problem(exc.code, exc.message, exc.hint)]:
            at = f"{where}.{p.field}" if p.field else where
            problems.append(Problem(p.code, p.message, p.hint or exc.hint, at))
        return base


def _gate(
    threshold: float | None, measure: str, where: str, problems: list[Problem]
) -> ReviewPolicy | None:
    if threshold is None:
        return None
    try:
        return ReviewPolicy(float(threshold), measure)  # type: ignore[arg-type]
    except PlinthError as exc:
        problems.append(Problem("config.invalid_setting", exc.message, exc.hint, where))
        return None


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _problem(error: Mapping[str, Any]) -> Problem:
    location = ".".join(str(part) for part in error.get("loc", ()))
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return Problem(
            "config.unknown_setting",
            f"unknown setting {location!r}",
            "Check the spelling; docs/configuration.md lists every setting.",
            location,
        )
    given = error.get("input")
    return Problem(
        "config.invalid_setting",
        f"{str(error.get('msg', 'invalid')).removeprefix('Value error, ')} (got {given!r})",
        "",
        location,
    )


def _invalid(path: Path, problems: list[Problem]) -> ConfigError:
    return InvalidConfigError(
        f"{path} has {len(problems)} problem{'s' if len(problems) != 1 else ''}.",
        hint=HINT,
        problems=problems,
    )
