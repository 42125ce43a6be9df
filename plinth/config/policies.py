"""``plinth.toml``, read and validated once at start-up into typed policies per model.

One reader for the whole file: a syntax error, an unknown key or a bad value anywhere is
reported together with every other problem in it (``config.invalid``, each problem with its
dotted location), so an operator fixes the file in one pass. Services never read files:
they receive the plain policy objects built here (``AlertRules``, ``CanaryPolicy``,
``ReviewPolicy``, ``BatchingPolicy``) from the one ``Policies`` object the Runtime holds.

The file's shape::

    [monitoring]            # alert rules for every model (AlertRules)
    [monitoring.drift]      # drift detectors (plinth.core.drift.DriftConfig)
    [canary]                # canary analysis for every model (plinth.core.canary.CanaryPolicy)
    [models.NAME]           # batching and the review gate of one model
    [models.NAME.monitoring], [models.NAME.canary]   # per-model overrides
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

from plinth.core.canary import CanaryPolicy
from plinth.core.drift import Detector, DriftConfig
from plinth.core.durations import parse_duration
from plinth.core.privacy import LogPolicy
from plinth.core.review import ReviewPolicy
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
    """Most records per model call, and the longest a batch may wait for more."""

    max_batch_size: int = 64
    max_wait_s: float = 0.0


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
    source: Path | None = None

    def log(self, name: str) -> LogPolicy:
        """What the prediction log keeps of ``name``'s records: ``[models.NAME.log]`` over
        ``[log]``."""
        return self.log_models.get(name, self.log_default)

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
    retention: Duration | None = None


class _Model(_Section):
    max_batch_size: int | None = Field(default=None, ge=1, le=10_000)
    max_wait_ms: float | None = Field(default=None, ge=0, le=1000)
    review_below: float | None = Field(default=None, ge=0, le=1)
    review_above: float | None = Field(default=None, ge=0)
    review_measure: Literal["top_probability", "margin", "tree_spread", "ood"] | None = None
    monitoring: _Monitoring | None = None
    canary: dict[str, Any] | None = None
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
    batching_default = BatchingPolicy(max_batch_size, max_wait_ms / 1000.0)
    key = (log_hash_key or "").encode("utf-8")
    log_default = _log(LogPolicy(hash_key=key), parsed.log, "log", problems)
    logs: dict[str, LogPolicy] = {}
    alerts: dict[str, AlertRules] = {}
    canaries: dict[str, CanaryPolicy] = {}
    batching: dict[str, BatchingPolicy] = {}
    gates: dict[str, ReviewPolicy] = {}
    for name, section in parsed.models.items():
        at = f"models.{name}"
        if section.monitoring is not None:
            alerts[name] = _alert_rules(
                alert_defaults, section.monitoring, f"{at}.monitoring", problems
            )
        if section.canary is not None:
            canaries[name] = _canary(canary_defaults, section.canary, f"{at}.canary", problems)
        if section.max_batch_size is not None or section.max_wait_ms is not None:
            batching[name] = BatchingPolicy(
                section.max_batch_size or batching_default.max_batch_size,
                (
                    batching_default.max_wait_s
                    if section.max_wait_ms is None
                    else section.max_wait_ms / 1000.0
                ),
            )
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
        log_default=log_default,
        log_models=logs,
        source=source,
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
    return replace(base, redact=redact, hash=hashed, retention=retention)


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
