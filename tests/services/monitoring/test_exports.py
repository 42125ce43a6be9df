"""Plinth's alert rules as Prometheus rules, judged by Prometheus' own ``promtool`` on fixture
series; the Grafana dashboard checked against Grafana's dashboard schema (the typed models of
``grafana-foundation-sdk``, ``tests/grafana_support.py``) and its queries parsed by promtool.

Needs Debian's ``prometheus`` package (``promtool``); ``make system-deps`` and CI install it,
and a missing binary fails rather than skips. ``grafana-foundation-sdk`` is in the dev extra.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.config.policies import AlertRules, MonitorPolicy
from plinth.services.monitoring.exports import grafana_dashboard, prometheus_rules, to_yaml

SLA_S = 3600.0


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is not installed: apt-get install -y --no-install-recommends prometheus"
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=60, check=False)


def policy() -> MonitorPolicy:
    # "strict" has its own rules in plinth.toml: 1 % errors, a 5-minute window, no p99 rule.
    strict = AlertRules(error_rate=0.01, latency_p99_s=None, window=timedelta(minutes=5))
    return MonitorPolicy(models={"strict": strict})


def test_the_rules_file_passes_promtool_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(to_yaml(prometheus_rules(policy(), SLA_S)))
    assert yaml.safe_load(rules.read_text()) == prometheus_rules(policy(), SLA_S)
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 17 rules found" in checked.stdout
    names = [g["name"] for g in prometheus_rules(policy(), SLA_S)["groups"]]
    assert names == ["plinth", "plinth-strict"]


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _alert(model: str, rule: str, scope: str, summary: str, **labels: str) -> dict[str, Any]:
    return {
        "exp_labels": {
            "model": model,
            "severity": "warning",
            "plinth_rule": rule,
            "plinth_rules": scope,
            **labels,
        },
        "exp_annotations": {"summary": summary},
    }


def test_promtool_fires_what_plinth_would(tmp_path: Path) -> None:
    ok = {"version": "1", "route": "champion", "outcome": "ok"}
    failed = {**ok, "outcome": "model.error"}
    broken = {**ok, "outcome": "contract.invalid"}
    series = [
        # churn: 60 answers a minute, 6 model errors (9 %), 12 contract violations (15 %).
        _series("plinth_requests_total", {"model": "churn", **ok}, "0+60x40"),
        _series("plinth_requests_total", {"model": "churn", **failed}, "0+6x40"),
        _series("plinth_requests_total", {"model": "churn", **broken}, "0+12x40"),
        # iris: healthy, 1 error a minute (1.6 %): under the default 5 %.
        _series("plinth_requests_total", {"model": "iris", **ok}, "0+60x40"),
        _series("plinth_requests_total", {"model": "iris", **failed}, "0+1x40"),
        # strict: the same 1.6 %, but its own rule says 1 %.
        _series("plinth_requests_total", {"model": "strict", **ok}, "0+60x40"),
        _series("plinth_requests_total", {"model": "strict", **failed}, "0+1x40"),
        # churn's requests all take 1-2.5 s: p99 over the 1 s default.
        *[
            _series(
                "plinth_request_duration_seconds_bucket",
                {"model": "churn", "le": le},
                "0+78x40" if le in ("2.5", "+Inf") else "0x40",
            )
            for le in ("0.5", "1.0", "2.5", "+Inf")
        ],
        _series(
            "plinth_drift_detected",
            {"model": "iris", "version": "1", "feature": "petal"},
            "0x10 1x30",
        ),
        _series("plinth_alert_firing", {"model": "iris", "rule": "dataset_drift"}, "0x10 1x30"),
        _series("plinth_review_oldest_pending_seconds", {"model": "churn"}, "0+120x40"),
        # llm spends past its spec's 80 % at minute 10; frugal stays at 50 %: no alarm.
        _series("plinth_remote_budget_ratio", {"model": "llm"}, "0.5x10 0.85x30"),
        _series("plinth_remote_budget_alert_at", {"model": "llm"}, "0.8x40"),
        _series("plinth_remote_budget_ratio", {"model": "frugal"}, "0.5x40"),
        _series("plinth_remote_budget_alert_at", {"model": "frugal"}, "0.8x40"),
    ]  # fmt: skip
    default = "plinth"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "PlinthErrorRate",
                        "exp_alerts": [
                            _alert(
                                "churn",
                                "error_rate",
                                default,
                                "churn: more than 5% of requests failed over 15m",
                            ),
                            _alert(
                                "strict",
                                "error_rate",
                                "plinth-strict",
                                "strict: more than 1% of requests failed over 5m",
                            ),
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "PlinthValidationRate",
                        "exp_alerts": [
                            _alert(
                                "churn",
                                "validation_rate",
                                default,
                                "churn: more than 10% of requests broke the input contract "
                                "over 15m",
                            )
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "PlinthLatencyP99",
                        "exp_alerts": [
                            _alert(
                                "churn",
                                "latency_p99",
                                default,
                                "churn: p99 latency above 1 s over 15m",
                            )
                        ],
                    },
                    {
                        "eval_time": "5m",  # before the drift: nothing
                        "alertname": "PlinthFeatureDrift",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "PlinthFeatureDrift",
                        "exp_alerts": [
                            _alert(
                                "iris",
                                "feature_drift",
                                default,
                                "iris:1: petal drifted",
                                version="1",
                                feature="petal",
                            )
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "PlinthDatasetDrift",
                        "exp_alerts": [
                            _alert(
                                "iris",
                                "dataset_drift",
                                default,
                                "iris: the input distribution drifted from the training data",
                            )
                        ],
                    },
                    {
                        "eval_time": "5m",  # llm at 50 %: nothing
                        "alertname": "PlinthRemoteBudget",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "PlinthRemoteBudget",
                        "exp_alerts": [
                            _alert(
                                "llm",
                                "remote_budget",
                                default,
                                "llm: spent 85% of today's budget",
                            )
                        ],
                    },
                    {
                        "eval_time": "20m",  # 2,400 s: under the hour
                        "alertname": "PlinthReviewSLA",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "35m",  # 4,200 s
                        "alertname": "PlinthReviewSLA",
                        "exp_alerts": [
                            _alert(
                                "churn",
                                "review_sla",
                                default,
                                "churn: a review item has waited more than 3600 s",
                            )
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "rules.yml").write_text(to_yaml(prometheus_rules(policy(), SLA_S)))
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_dashboard_queries_parse_and_the_panels_fit(tmp_path: Path) -> None:
    for model in (None, "churn"):
        board = grafana_dashboard(model)
        assert json.loads(json.dumps(board)) == board
        assert board["schemaVersion"] >= 36 and board["uid"] and board["panels"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        cells = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert grid["x"] + grid["w"] <= 24 and not area & cells, panel["title"]
            cells |= area
        titles = " ".join(p["title"] for p in board["panels"]).lower()
        for topic in ("requests", "latency", "error", "batch", "drift", "performance", "review"):
            assert topic in titles
    # Every query, with Grafana's variables filled in, is PromQL that promtool accepts.
    exprs = [
        t["expr"]
        for model in (None, "churn")
        for p in grafana_dashboard(model)["panels"]
        for t in p["targets"]
    ]
    filled = [e.replace("$__rate_interval", "5m").replace("$model", ".*") for e in exprs]
    records = [{"record": f"plinth:dashboard:{n}", "expr": e} for n, e in enumerate(filled)]
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": records}]})
    )
    checked = promtool("check", "rules", str(tmp_path / "dashboard.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(records)} rules found" in checked.stdout
    # ... and promtool refuses a query that is not PromQL, so the check above can fail.
    records.append({"record": "plinth:dashboard:bad", "expr": "sum by (model (rate(x[5m]))"})
    (tmp_path / "bad.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": records}]}))
    assert promtool("check", "rules", str(tmp_path / "bad.yml")).returncode != 0


@pytest.mark.parametrize("model", [None, "churn"])
def test_the_dashboard_fits_grafanas_schema(model: str | None) -> None:
    """Every panel, option, field config, target, datasource reference and gridPos loads into
    Grafana's typed dashboard models without a key dropped or a type that does not fit."""
    from tests.grafana_support import dashboard_problems

    board = grafana_dashboard(model)
    assert dashboard_problems(board) == []
    assert board["schemaVersion"] == 39  # Grafana 10.4 / 11: "Grafana 10 or later"


BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a misspelt key": (
        lambda b: b["panels"][0].update(gridpos=b["panels"][0].pop("gridPos")),
        "panels[0].gridpos: not in the schema",
    ),
    "a string for an integer": (
        lambda b: b["panels"][0]["gridPos"].update(w="12"),
        "grid_pos.w: expected an integer",
    ),
    "an option the panel does not have": (
        lambda b: b["panels"][0]["options"].update(legendz={}),
        "options.legendz: not in the schema",
    ),
    "a value outside an enum": (
        lambda b: b["panels"][0]["options"].update(
            legend={"displayMode": "fancy", "placement": "bottom", "showLegend": True, "calcs": []}
        ),
        "display_mode: 'fancy' is not one of",
    ),
    "a panel type Grafana does not have": (
        lambda b: b["panels"][0].update(type="timeserie"),
        "'timeserie' is no panel plugin",
    ),
    "a target key Prometheus queries do not have": (
        lambda b: b["panels"][0]["targets"][0].update(exprr="up"),
        "targets[0].exprr: not in the schema",
    ),
    "a fixed datasource": (
        lambda b: b["panels"][0].update(datasource={"type": "prometheus", "uid": "prom-1"}),
        "is not the dashboard's Prometheus variable",
    ),
    "a Loki target": (
        lambda b: b["panels"][0]["targets"][0].update(datasource={"type": "loki", "uid": "x"}),
        "targets[0]: datasource {'type': 'loki', 'uid': 'x'} is not the dashboard's Prometheus",
    ),
    "a Loki panel": (
        lambda b: (
            b["panels"][0].update(datasource={"type": "loki", "uid": "x"})
            or b["panels"][0]["targets"][0].pop("datasource")
        ),
        "targets[0]: not a Prometheus query",
    ),
    "a variable kind Grafana does not have": (
        lambda b: b["templating"]["list"][0].update(type="dropdown"),
        "type_val: 'dropdown' is not one of",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_the_schema_check_finds_what_grafana_would_refuse(name: str) -> None:
    from tests.grafana_support import dashboard_problems

    board = copy.deepcopy(grafana_dashboard())
    breaks, expected = BREAKS[name]
    breaks(board)
    problems = dashboard_problems(board)
    assert any(expected in p for p in problems), problems
