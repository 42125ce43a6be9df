"""``plinth retrain | jobs | job show | approve | worker`` against a real store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plinth
from plinth.cli import training as training_cli
from plinth.cli.common import console, err_console
from plinth.cli.main import app
from plinth.config.settings import Settings
from tests.support import regression_table, ridge_model

POLICY = """
[models.reg.training]
entrypoint = "tests.training_support:{fit}"
auto_deploy = false
[models.reg.training.data]
traffic = false
"""


def _home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, fit: str) -> Path:
    policy = tmp_path / "plinth.toml"
    policy.write_text(POLICY.format(fit=fit))
    monkeypatch.setenv("PLINTH_DATABASE_URL", database_url)
    monkeypatch.setenv("PLINTH_POLICY_FILE", str(policy))
    for c in (console, err_console, training_cli.console):
        monkeypatch.setattr(c, "width", 200)
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    train, holdout = regression_table(seed=1), regression_table(seed=2, rows=100)
    plinth.register(ridge_model(train), name="reg", train=train, holdout=holdout, target="y",
                    settings=settings)  # fmt: skip
    return settings.home


def run(home: Path, *args: str, code: int = 0) -> str:
    done = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert done.exit_code == code, done.output
    return done.output


def test_dry_run_then_retrain_then_approve(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path, database_url, monkeypatch, "fit_ridge")
    dry = run(home, "retrain", "reg", "--dry-run")
    assert "nothing was registered" in dry and "registered holdout" in dry
    assert "paired bootstrap" in dry
    assert run(home, "jobs").count("reg") == 0  # a dry run queues nothing
    done = run(home, "retrain", "reg")
    assert "succeeded" in done and "outcome" in done
    # Each step, read back from the job in the store, with its elapsed time.
    steps = re.findall(r"✓ +(building data|training|gating|registering) +(\d+\.\d) s", done)
    assert [name for name, _ in steps] == ["building data", "training", "gating", "registering"]
    job_id = re.search(r"job (01[0-9A-Z]{24})", done)
    assert job_id is not None
    listed = run(home, "jobs", "reg")
    assert job_id.group(1) in listed and "manual" in listed
    shown = run(home, "job", "show", job_id.group(1))
    assert "gate: passed" in shown and "data: 300 training rows (reference 300)" in shown
    assert re.search(r"stages: building data \d+\.\d s, training \d+\.\d s, gating", shown)
    as_json = json.loads(run(home, "job", "show", job_id.group(1), "--json"))
    assert (as_json["state"], as_json["stage"]) == ("succeeded", "registering")
    assert "version 2  outcome awaiting_approval" in shown  # auto_deploy = false
    refused = run(home, "approve", "reg", "1", code=1)
    assert "training.not_awaiting_approval" in refused and "waiting: 2" in refused
    approved = run(home, "approve", "reg", "2")
    assert "approved reg:2" in approved and "canary 2" in approved
    assert "outcome canary" in run(home, "job", "show", job_id.group(1))
    assert "training.job_not_found" in run(home, "job", "show", "nope", code=1)


def test_a_worse_model_is_stopped_at_the_gate(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path, database_url, monkeypatch, "fit_mean")
    done = run(home, "retrain", "reg")
    assert "rejected" in done and "relative change of mean squared error could be" in done
    assert re.search(r"✗ +gating", done)  # where it stopped
    assert "worker" not in run(home, "worker", "--once")  # nothing queued: nothing to show
    assert "model_not_found" in run(home, "retrain", "ghost", code=1)
