"""A job's training set and holdout (``plinth.services.training.dataset``): the holdout is
the newest slice of labelled traffic by time and never trained on, the registered holdout
judges when traffic is thin and is reported beside the verdict when it is not, and the
``sql`` source reads a real PostgreSQL table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from plinth.config.policies import TrainingData
from plinth.services.registry.versions import Registry
from plinth.services.training.dataset import WEIGHT, build_training_set
from plinth.store import VersionRecord
from plinth.store.training import TrainingStore
from tests.conftest import TEST_DATABASE_ENV, _fresh_postgresql_database
from tests.services.training.test_jobs import (
    AFTER,
    Clock,
    recipe,
    retraining,
    shifted_traffic,
)
from tests.support import regression_table, ridge_model


@pytest.fixture
def champion(registry: Registry) -> VersionRecord:
    """Registered with a holdout table, as ``plinth register --holdout`` does."""
    train, holdout = regression_table(rows=300), regression_table(seed=5, rows=80)
    return registry.register(
        ridge_model(train), name="reg", train=train, holdout=holdout, target="y"
    )


def _key(frame: pd.DataFrame) -> set[tuple[float, float]]:
    return {(round(a, 9), round(b, 9)) for a, b in zip(frame["a"], frame["b"], strict=True)}


def test_the_holdout_is_the_newest_traffic_and_never_trained_on(
    registry: Registry, champion: VersionRecord
) -> None:
    shifted_traffic(registry, champion, n=200)
    policy = recipe(data=TrainingData(reference=True, window=timedelta(days=7)))
    jobs = TrainingStore(registry.store)
    tset = build_training_set(policy, champion, registry, jobs, AFTER)
    assert tset.holdout_source == "traffic" and len(tset.holdout) == 40  # 20 % of 200
    traffic = jobs.labelled_traffic("reg", AFTER - timedelta(days=7), AFTER)
    newest = pd.DataFrame([r.features for r in traffic[-40:]])
    older = pd.DataFrame([r.features for r in traffic[:-40]])
    assert _key(tset.holdout) == _key(newest)  # the newest 40 by prediction time
    assert not _key(tset.holdout) & _key(tset.train)  # none of them trained on
    assert _key(older) <= _key(tset.train)  # the older traffic is
    assert tset.summary["sources"] == {"traffic": 160, "reference": 300}
    assert WEIGHT not in tset.holdout.columns


def test_thin_traffic_leaves_the_registered_holdout_to_judge(
    registry: Registry, champion: VersionRecord
) -> None:
    shifted_traffic(registry, champion, n=40)  # 20 % is 8 rows, under min_rows (30)
    policy = recipe(data=TrainingData(reference=True, window=timedelta(days=7)))
    tset = build_training_set(policy, champion, registry, TrainingStore(registry.store), AFTER)
    assert tset.holdout_source == "registered holdout" and len(tset.holdout) == 80
    assert tset.summary["sources"] == {"traffic": 40, "reference": 300}  # all traffic trains


def test_the_registered_holdout_is_reported_beside_the_verdict(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion)
    service = retraining(registry, recipe(), Clock(AFTER), tmp_path)
    gate = service.dry_run("reg")["gate"]
    assert gate["rows"] == 60  # judged on the newest traffic...
    registered = gate["registered_holdout"]  # ...with both models on the registered table
    assert registered["rows"] == 80
    # The champion fits the old regime; the candidate learnt the shift (y + 5).
    assert registered["champion"]["rmse"] < 1 < registered["candidate"]["rmse"]


@pytest.fixture
def source_url() -> Iterator[str]:
    """A PostgreSQL database of someone else's, holding a training table."""
    server = os.environ.get(TEST_DATABASE_ENV)
    if not server:
        pytest.skip(f"set {TEST_DATABASE_ENV}=postgresql+psycopg://... to read a sql source")
    for url in _fresh_postgresql_database(server):
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE SCHEMA sales")
                regression_table(seed=9, rows=250).assign(region="north").to_sql(
                    "history", conn, schema="sales", index=False
                )
        finally:
            engine.dispose()
        yield url


@pytest.mark.postgres
def test_a_sql_source_trains_on_rows_of_a_real_postgresql_table(
    registry: Registry, champion: VersionRecord, tmp_path: Path, source_url: str
) -> None:
    shifted_traffic(registry, champion, n=100)
    query = "SELECT a, b, y FROM sales.history WHERE a > 0"
    data = TrainingData(reference=False, window=timedelta(days=7), sql=query, url=source_url)
    service = retraining(registry, replace(recipe(), data=data), Clock(AFTER), tmp_path)
    service.request("reg")
    done = service.run_next()
    assert done is not None and done.state == "succeeded", done.error
    expected = int((regression_table(seed=9, rows=250)["a"] > 0).sum())
    assert done.data is not None
    assert done.data["sources"] == {"traffic": 70, "table": expected}
    assert done.data["rows"] == 70 + expected


@pytest.mark.postgres
def test_a_broken_sql_source_fails_the_job_with_the_databases_words(
    registry: Registry, champion: VersionRecord, tmp_path: Path, source_url: str
) -> None:
    shifted_traffic(registry, champion, n=100)
    url = sa.make_url(source_url).set(password="s3cret").render_as_string(hide_password=False)
    for query, says in (
        ("SELECT a, b FROM sales.nowhere", 'relation "sales.nowhere" does not exist'),
        ("DELETE FROM sales.history RETURNING a, b, y", "read-only transaction"),
    ):
        data = TrainingData(reference=False, window=timedelta(days=7), sql=query, url=url)
        service = retraining(registry, replace(recipe(), data=data), Clock(AFTER), tmp_path)
        service.request("reg")
        done = service.run_next()
        assert done is not None and done.state == "failed" and done.error is not None
        assert done.error["code"] == "data.unreadable" and says in done.error["message"]
        assert "s3cret" not in done.error["message"]
        assert done.stage == "building data"
    engine = sa.create_engine(source_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:  # the DELETE was refused: every row is still there
            assert conn.exec_driver_sql("SELECT count(*) FROM sales.history").scalar() == 250
    finally:
        engine.dispose()
