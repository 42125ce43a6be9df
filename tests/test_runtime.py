"""The Runtime: one place that opens, starts, stops and closes everything."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from plinth.config.settings import Settings
from plinth.errors import ConfigError
from plinth.runtime import Runtime
from tests.support import churn_model, churn_record, churn_table


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, policy_file=tmp_path / "plinth.toml"
    )


def test_services_are_built_once_on_first_use(settings: Settings) -> None:
    with Runtime.open(settings) as runtime:
        assert runtime.registry is runtime.registry
        assert runtime.deployments.store is runtime.store
        assert runtime.review_queue.sla.total_seconds() == settings.review_sla_s
        assert runtime.serving is None


def test_a_bad_policy_file_fails_only_what_needs_policies(settings: Settings) -> None:
    settings.policy_file.write_text("[monitoring]\nwindw = 1\n")
    with Runtime.open(settings) as runtime:
        assert runtime.store.list_models() == []  # listing models needs no policies
        with pytest.raises(ConfigError, match="1 problem") as caught:
            runtime.policies  # noqa: B018
        assert caught.value.code == "config.invalid"


def test_serving_starts_answers_and_stops_cleanly(settings: Settings) -> None:
    train = churn_table()
    with Runtime.open(settings) as runtime:
        runtime.registry.register(churn_model(train), name="churn", train=train, target="churn")

    async def lifecycle() -> Any:
        runtime = Runtime.open(settings)
        try:
            serving = await runtime.start_serving()
            await runtime.start_background()
            routed = await serving.router.predict(
                "churn", [churn_record()], request_id="r1", received=time.perf_counter()
            )
            assert routed.error is None
            await runtime.stop()
            assert runtime.serving is None
            # The answer was logged before it was returned.
            logged = runtime.store.list_predictions(model="churn", limit=5)
            assert [p.request_id for p in logged] == ["r1"]
            return routed.answers[0]["prediction"]
        finally:
            runtime.close()

    served = asyncio.run(lifecycle())
    assert served == churn_model(train).predict(pd.DataFrame([churn_record()]))[0]


def test_plinth_serve_refuses_a_bad_policy_file_with_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "plinth.toml"
    policy.write_text("[monitoring]\nwindw = 1\n[models.a]\nmax_batch_size = 0\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "plinth"), "serve", "--home", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PLINTH_POLICY_FILE": str(policy), "COLUMNS": "200"},
    )
    assert done.returncode == 2, done.stderr
    assert "config.invalid" in done.stderr
    assert "monitoring.windw" in done.stderr and "models.a.max_batch_size" in done.stderr


def test_the_server_itself_enforces_each_models_log_retention(settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from plinth.core.ids import new_id
    from plinth.store import PredictionRecord

    settings.policy_file.write_text('[models.churn.log]\nretention = "1d"\n')
    now = datetime.now(UTC)

    def row(model: str, age: timedelta) -> PredictionRecord:
        return PredictionRecord(
            new_id(), now - age, model, 1, "0" * 64, "champion", churn_record(), {},
            {"prediction": 0}, None, 1.0, [], "r",
        )  # fmt: skip

    async def background() -> None:
        runtime = Runtime.open(settings)
        try:
            runtime.store.insert_predictions(
                [row("churn", timedelta(days=3)), row("churn", timedelta(hours=1)),
                 row("other", timedelta(days=3))]
            )  # fmt: skip
            await runtime.start_background(alerts=False, canary=False, gauges=False)
            for _ in range(200):
                if runtime.store.count_predictions("churn") == 1:
                    break
                await asyncio.sleep(0.05)
            await runtime.stop()
            assert runtime.store.count_predictions("churn") == 1  # the fresh row stays
            assert runtime.store.count_predictions("other") == 1  # no retention: kept
        finally:
            runtime.close()

    asyncio.run(background())
