"""Plinth's alert rules as Prometheus alerting rules, and a Grafana dashboard of its metrics.

For teams whose alerts live in Prometheus' Alertmanager and whose screens are Grafana:
``plinth prometheus-rules`` and ``plinth grafana [NAME]`` print these. The rules are the
ones Plinth's own evaluator applies (``plinth.services.monitoring.alerts``), with the same
thresholds, window, minimum traffic and hold-down from ``plinth.toml`` (per-model overrides
become rules of their own): the traffic rules (error rate, p99 latency, contract
violations) are computed in PromQL from the request counters and histograms; the
statistical ones (drift, control charts, performance against holdout), which Prometheus
cannot compute, fire from the gauges Plinth sets after its own evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from plinth.config.policies import AlertRules, MonitorPolicy

#: The request outcomes that are contract violations (the caller's), not errors (ours).
CONTRACT_OUTCOMES = 'outcome=~"contract\\\\..+"'
ERROR_OUTCOMES = 'outcome!="ok",outcome!~"contract\\\\..+"'
DASHBOARD_UID = "plinth-overview"
#: The dashboard JSON's schema version (Grafana 10/11 dashboards).
SCHEMA_VERSION = 39


def _duration(delta: timedelta) -> str:
    """A Prometheus duration: 15m, 1h, 90s."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class _Scope:
    """Which models a group of rules covers: one by name, or every model but the named."""

    selector: str  # the label matcher to add to every series: model="a" / model!~"a|b"
    name: str


def prometheus_rules(policy: MonitorPolicy, review_sla_s: float) -> dict[str, Any]:
    """The rules file (``groups: [...]``) for ``policy``; one group per distinct rule set."""
    overridden = sorted(policy.models)
    scopes = [(_Scope(_others(overridden), "plinth"), policy.defaults)]
    scopes += [
        (_Scope(f'model="{name}"', f"plinth-{name}"), policy.models[name]) for name in overridden
    ]
    return {
        "groups": [
            {"name": scope.name, "rules": list(_rules(scope, rules, review_sla_s))}
            for scope, rules in scopes
        ]
    }


def _others(names: list[str]) -> str:
    if not names:
        return 'model!=""'
    return 'model!~"' + "|".join(_regex(n) for n in names) + '"'


def _regex(name: str) -> str:
    return "".join("\\\\" + c if not (c.isalnum() or c in "_-") else c for c in name)


def _rules(scope: _Scope, rules: AlertRules, review_sla_s: float) -> Iterable[dict[str, Any]]:
    window = _duration(rules.window)
    hold = _duration(rules.hold_down)
    sel = scope.selector
    requests = f"sum by (model) (increase(plinth_requests_total{{{sel}}}[{window}]))"
    enough = f"{requests} >= {rules.min_requests}"

    def alert(name: str, rule: str, expr: str, summary: str, **extra: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "keep_firing_for": hold,  # Plinth's hold-down: one incident, not ten
            # Which plinth.toml rule set it came from: the defaults, or one model's.
            "labels": {"severity": "warning", "plinth_rule": rule, "plinth_rules": scope.name},
            "annotations": {"summary": summary, **extra},
        }

    if rules.error_rate is not None:
        errors = (
            f"sum by (model) (increase(plinth_requests_total{{{sel},{ERROR_OUTCOMES}}}[{window}]))"
        )
        yield alert(
            "PlinthErrorRate",
            "error_rate",
            f"({errors} / {requests}) > {rules.error_rate:g} and on (model) ({enough})",
            f"{{{{ $labels.model }}}}: more than {rules.error_rate:.0%} of requests failed "
            f"over {window}",
        )
    if rules.latency_p99_s is not None:
        p99 = (
            "histogram_quantile(0.99, sum by (model, le) "
            f"(increase(plinth_request_duration_seconds_bucket{{{sel}}}[{window}])))"
        )
        yield alert(
            "PlinthLatencyP99",
            "latency_p99",
            f"{p99} > {rules.latency_p99_s:g} and on (model) ({enough})",
            f"{{{{ $labels.model }}}}: p99 latency above {rules.latency_p99_s:g} s over {window}",
        )
    if rules.validation_rate is not None:
        violations = (
            f"sum by (model) (increase(plinth_requests_total{{{sel},{CONTRACT_OUTCOMES}}}"
            f"[{window}]))"
        )
        yield alert(
            "PlinthValidationRate",
            "validation_rate",
            f"({violations} / {requests}) > {rules.validation_rate:g} and on (model) ({enough})",
            f"{{{{ $labels.model }}}}: more than {rules.validation_rate:.0%} of requests broke "
            f"the input contract over {window}",
        )
    # Statistics Prometheus cannot compute: Plinth's evaluator sets these gauges.
    if rules.dataset_drift:
        yield alert(
            "PlinthDatasetDrift",
            "dataset_drift",
            f'max by (model) (plinth_alert_firing{{{sel},rule="dataset_drift"}}) > 0',
            "{{ $labels.model }}: the input distribution drifted from the training data",
        )
    if rules.feature_drift:
        yield alert(
            "PlinthFeatureDrift",
            "feature_drift",
            f"max by (model, version, feature) (plinth_drift_detected{{{sel}}}) > 0",
            "{{ $labels.model }}:{{ $labels.version }}: {{ $labels.feature }} drifted",
        )
    if rules.control_chart:
        yield alert(
            "PlinthControlChart",
            "control_chart",
            f'max by (model) (plinth_alert_firing{{{sel},rule="control_chart"}}) > 0',
            "{{ $labels.model }}: a control chart left its limits",
        )
    if rules.performance_drop is not None:
        yield alert(
            "PlinthPerformanceDrop",
            "performance_drop",
            f'max by (model) (plinth_alert_firing{{{sel},rule="performance_drop"}}) > 0',
            f"{{{{ $labels.model }}}}: the labelled metric fell more than "
            f"{rules.performance_drop:g} below holdout",
        )
    # A remote model's budget: the gauges its calls set (the shared day's total), against
    # the share its spec alerts at; always on, like Plinth's own rule.
    yield alert(
        "PlinthRemoteBudget",
        "remote_budget",
        f"max by (model) (plinth_remote_budget_ratio{{{sel}}}) >= on (model) "
        f"max by (model) (plinth_remote_budget_alert_at{{{sel}}})",
        "{{ $labels.model }}: spent {{ $value | humanizePercentage }} of today's budget",
    )
    if rules.review_sla:
        yield alert(
            "PlinthReviewSLA",
            "review_sla",
            f"max by (model) (plinth_review_oldest_pending_seconds{{{sel}}}) > {review_sla_s:g}",
            f"{{{{ $labels.model }}}}: a review item has waited more than {review_sla_s:g} s",
        )


def to_yaml(document: Any, indent: int = 0) -> str:
    """YAML for the rules file: block style, every string double-quoted (JSON escaping is
    valid YAML), so no PromQL character needs thought."""
    pad = "  " * indent
    if isinstance(document, dict):
        lines = []
        for key, value in document.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:\n{to_yaml(value, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
        return "\n".join(lines)
    if isinstance(document, list):
        lines = []
        for item in document:
            text = to_yaml(item, indent + 1) if isinstance(item, dict | list) else _scalar(item)
            lines.append(f"{pad}- {text.lstrip()}")
        return "\n".join(lines)
    return pad + _scalar(document)


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value)


# -- Grafana ------------------------------------------------------------------------------------


def grafana_dashboard(model: str | None = None) -> dict[str, Any]:
    """A dashboard of every Plinth metric, for one model or (by default) a chooser of all."""
    sel = 'model=~"$model"'

    def rate(metric: str, extra: str = "") -> str:
        return f"rate({metric}{{{sel}{extra}}}[$__rate_interval])"

    def quantile(q: str, metric: str) -> str:
        return f"histogram_quantile(0.{q}, sum by (model, le) ({rate(metric + '_bucket')}))"

    def share(outcomes: str) -> str:
        every = f"sum by (model) ({rate('plinth_requests_total')})"
        return f"sum by (model) ({rate('plinth_requests_total', ',' + outcomes)}) / {every}"

    latency = "plinth_request_duration_seconds"
    panels: list[tuple[str, str, list[tuple[str, str]], str]] = [
        # (title, unit, [(legend, expr)], panel type)
        (
            "Requests per second by outcome",
            "reqps",
            [
                (
                    "{{model}} {{outcome}}",
                    f"sum by (model, outcome) ({rate('plinth_requests_total')})",
                )
            ],
            "timeseries",
        ),
        (
            "Request latency",
            "s",
            [(f"p{q} {{{{model}}}}", quantile(q, latency)) for q in ("50", "95", "99")],
            "timeseries",
        ),
        (
            "Error and contract-violation rate",
            "percentunit",
            [
                ("errors {{model}}", share(ERROR_OUTCOMES)),
                ("contract {{model}}", share(CONTRACT_OUTCOMES)),
            ],
            "timeseries",
        ),
        (
            "Records per model call (batch size)",
            "short",
            [(f"p{q} {{{{model}}}}", quantile(q, "plinth_batch_records")) for q in ("50", "95")],
            "timeseries",
        ),
        (
            "Queue wait and model time (p95)",
            "s",
            [
                ("queue {{model}}", quantile("95", "plinth_batch_queue_seconds")),
                ("model {{model}}", quantile("95", "plinth_model_duration_seconds")),
            ],
            "timeseries",
        ),
        (
            "Drift score by feature",
            "short",
            [("{{model}}:{{version}} {{feature}} ({{method}})", f"plinth_drift_score{{{sel}}}")],
            "timeseries",
        ),
        (
            "Share of features drifted",
            "percentunit",
            [("{{model}}:{{version}}", f"plinth_dataset_drift_share{{{sel}}}")],
            "timeseries",
        ),
        (
            "Performance: realised and estimated",
            "short",
            [
                ("realised {{model}}:{{version}} {{metric}}", f"plinth_performance{{{sel}}}"),
                (
                    "estimated {{model}}:{{version}} {{metric}}",
                    f"plinth_performance_estimated{{{sel}}}",
                ),
            ],
            "timeseries",
        ),
        (
            "Review queue",
            "short",
            [
                ("depth {{model}}", f"plinth_review_queue_depth{{{sel}}}"),
                ("oldest pending (s) {{model}}", f"plinth_review_oldest_pending_seconds{{{sel}}}"),
            ],
            "timeseries",
        ),
        (
            "Alerts firing",
            "short",
            [("{{model}} {{rule}}", f"plinth_alert_firing{{{sel}}} > 0")],
            "table",
        ),
    ]
    built = []
    for index, (title, unit, targets, kind) in enumerate(panels):
        built.append(
            {
                "id": index + 1,
                "type": kind,
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
                "targets": [
                    {
                        "refId": chr(ord("A") + n),
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for n, (legend, expr) in enumerate(targets)
                ],
            }
        )
    chosen = model or ".*"
    return {
        "uid": DASHBOARD_UID if model is None else f"{DASHBOARD_UID}-{model}"[:40],
        "title": "Plinth" if model is None else f"Plinth: {model}",
        "tags": ["plinth"],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                },
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(plinth_requests_total, model)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": chosen, "value": chosen},
                },
            ]
        },
        "panels": built,
    }
