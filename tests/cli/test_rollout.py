"""``plinth deploy`` (plinth.cli.rollout) from a terminal: every problem listed at once, and a
deploy with no server running says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.e2e.conftest import Env
from tests.e2e.test_serve import _register_churn
from tests.rollout_support import ConstantModel, register

pytestmark = pytest.mark.e2e


def _settings(env: Env) -> Settings:
    return Settings(home=env.home, database_url=env.env["PLINTH_DATABASE_URL"])


def test_deploy_lists_every_problem_with_a_hint(plinth_env: Env, tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    bad = plinth_env.cli(
        "deploy",
        "churn",
        "7",
        "--fallback",
        "default",
        "--fallback",
        "1",
        "--min-requests",
        "-3",
        "--max-error-rate",
        "-1",
        check=False,
    )
    assert bad.returncode == 1
    for code in (
        "deploy.invalid",
        "deploy.unknown_version",
        "deploy.default_not_last",
        "canary.invalid_setting",
    ):
        assert code in bad.stderr
    assert "min_requests must be a finite number >= 0" in bad.stderr
    assert "max_error_rate must be" in bad.stderr
    assert "as a fraction: 0.01 = 1 point" in bad.stderr  # each problem's own hint
    assert plinth_env.cli("history", "churn").stdout.startswith("churn was never deployed")


def test_a_deploy_with_no_server_running_says_so_and_models_shows_the_roles(
    plinth_env: Env,
) -> None:
    with open_registry(_settings(plinth_env)) as registry:
        for value in (1.0, 2.0, 3.0):
            register(registry, "m", ConstantModel(value))
    listed = json.loads(plinth_env.cli("models", "--json").stdout)
    assert (listed[0]["champion"], listed[0]["canary"], listed[0]["shadows"]) == (3, None, [])
    done = plinth_env.cli("deploy", "m", "1")
    assert "no server is running" in done.stdout
    quiet = plinth_env.cli("deploy", "m", "3", "--canary", "10", "--shadow", "2", "--wait", "0")
    assert "no server" not in quiet.stdout
    (model,) = json.loads(plinth_env.cli("models", "--json").stdout)
    assert model["champion"] == 1 and model["shadows"] == [2]
    assert model["canary"] == {"version": 3, "weight": 10.0}
    row = next(line for line in plinth_env.cli("models").stdout.splitlines() if " m " in line)
    assert "3 @ 10%" in row
