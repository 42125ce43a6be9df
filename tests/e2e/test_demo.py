"""`make demo` starts quiet (issue 11, item 5): it shows what it says — a missing ``depth``
imputed and flagged, not refused — and its traffic trips no alert rule."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.services.monitoring.alerts import AlertEvaluator
from plinth.services.monitoring.report import Monitor
from tests.e2e.conftest import REPO, Env
from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_the_demo_imputes_what_it_drops_and_fires_no_alert(plinth_env: Env) -> None:
    plinth_env.home.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py"), "--no-wait",
         "--port", str(free_port()), "--workdir", str(plinth_env.home / "examples")],
        env=plinth_env.env, cwd=plinth_env.home.parent, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "A diamonds prediction:" in done.stdout
    settings = Settings(home=plinth_env.home, database_url=plinth_env.env["PLINTH_DATABASE_URL"])
    with open_registry(settings) as registry:
        contract = registry.store.get_version("diamonds").metadata["contract"]
        depth = next(f for f in contract["fields"] if f["name"] == "depth")
        assert depth["nullable"] and depth["on_null"] == "impute"
        report = Monitor(registry.store).report("diamonds", window=timedelta(hours=1))
        assert report["traffic"]["requests"] >= 100
        assert report["traffic"]["validation_failures"] == 0, report["traffic"]
        fired = AlertEvaluator(registry.store, sinks=[]).evaluate()
        assert [(e.alert.model, e.alert.rule) for e in fired] == []
