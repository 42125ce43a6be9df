"""The retraining alert rules parse and watch metrics Plinth really exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from plinth.services import telemetry

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "plinth-training.rules.yml"


def test_training_rules_alert_on_failed_and_rejected_jobs() -> None:
    document = yaml.safe_load(RULES.read_text())
    rules = {r["alert"]: r for g in document["groups"] for r in g["rules"]}
    assert set(rules) == {"PlinthTrainingJobFailed", "PlinthTrainingJobRejected"}
    exported = {f"{telemetry.TRAINING_JOBS._name}_total"}  # prometheus-client adds _total
    for name, outcome in (("Failed", "failed"), ("Rejected", "rejected")):
        expr = rules[f"PlinthTrainingJob{name}"]["expr"]
        assert set(re.findall(r"plinth_\w+", expr)) == exported
        assert f'outcome="{outcome}"' in expr and "by (model)" in expr
