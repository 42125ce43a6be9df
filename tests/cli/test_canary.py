"""``plinth canary`` (plinth.cli.canary) from a terminal, with no server running."""

from __future__ import annotations

import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.e2e.conftest import Env
from tests.rollout_support import ConstantModel, register

pytestmark = pytest.mark.e2e


def test_canary_says_its_counts_lag_by_a_profile_interval(plinth_env: Env) -> None:
    """Issue 11: a new canary shows no traffic until the servers' next profile flush; the
    command says so instead of looking broken."""
    with open_registry(
        Settings(home=plinth_env.home, database_url=plinth_env.env["PLINTH_DATABASE_URL"])
    ) as registry:
        for value in (1.0, 2.0):
            register(registry, "m", ConstantModel(value))
    plinth_env.cli("deploy", "m", "1")
    plinth_env.cli("deploy", "m", "2", "--canary", "10")
    shown = plinth_env.cli("canary", "m", "--dry-run").stdout
    assert "0 requests" in shown
    assert "written every 60 s (PLINTH_PROFILE_INTERVAL_S)" in " ".join(shown.split())
