"""``plinth deploy`` (plinth.cli.rollout) from a terminal: every problem listed at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Env
from tests.e2e.test_serve import _register_churn

pytestmark = pytest.mark.e2e


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
