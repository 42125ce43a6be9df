"""``plinth predict --engine ray`` against a Ray head the test starts: the same answers, bad
rows, review items and log rows as local scoring, rows in their input order. The workers get
Plinth's settings from the command, not from the environment, so the head is started
without any PLINTH_* variable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from plinth.store import Store
from tests.e2e.conftest import Env
from tests.e2e.test_serve import _register_churn
from tests.support import churn_table, free_port

pytestmark = pytest.mark.e2e

ANSWER = ["prediction", "probability_no", "probability_yes", "confidence", "warnings", "error"]
RAY = str(Path(sys.executable).parent / "ray")
# A head on loopback for one test: no usage report, no token (Ray's token would be written to
# the user's ~/.ray and shared with any other cluster started there).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("ray")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env |= RAY_ENV
    temp = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
         "--temp-dir", str(temp)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        head.kill()
        pytest.fail("the Ray head did not open its port within 120 s")
    try:
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.postgres  # a Ray cluster shares PostgreSQL; SQLite is one machine's database
def test_ray_scoring_matches_local_scoring(plinth_env: Env, tmp_path: Path, ray_head: str) -> None:
    if "sqlite" in plinth_env.env["PLINTH_DATABASE_URL"]:
        pytest.skip("Ray workers share PostgreSQL")
    plinth_env.env |= RAY_ENV
    _register_churn(plinth_env, tmp_path)
    frame = churn_table(5, rows=3_000).drop(columns=["churn"])
    frame["age"] = frame["age"].astype(object)
    frame.loc[[3, 2_222], "age"] = "unknown"  # bad rows get their error cell on any engine
    frame.to_csv(tmp_path / "input.csv", index=False)  # CSV: a column may mix types
    common = ["--input", str(tmp_path / "input.csv"), "--review-below", "0.55"]

    plinth_env.cli("predict", "churn", *common, "--output", str(tmp_path / "local.parquet"))
    done = plinth_env.cli(
        "predict", "churn", *common, "--output", str(tmp_path / "ray.parquet"),
        "--engine", "ray", "--address", ray_head, "--block-rows", "1000",
    )  # fmt: skip

    # Parquet keeps dtypes: the two files must be the same table, not just print alike
    # (Ray hands blocks back through Arrow, with Arrow-backed dtypes of its own).
    local = pd.read_parquet(tmp_path / "local.parquet")
    on_ray = pd.read_parquet(tmp_path / "ray.parquet")
    given = pd.read_csv(tmp_path / "input.csv", keep_default_na=False)
    assert f"scoring churn:1 on Ray ({ray_head})" in done.stdout
    assert "scored 2998/3000 rows with churn:1 on Ray" in done.stdout
    assert list(on_ray.columns) == list(local.columns)
    columns = [c for c in ANSWER if c in local]
    pd.testing.assert_frame_equal(on_ray[columns], local[columns])
    pd.testing.assert_frame_equal(on_ray[given.columns], local[given.columns])  # input order
    assert on_ray["age"].astype(str).tolist() == given["age"].astype(str).tolist()
    sent = on_ray["review_id"].fillna("") != ""
    assert sent.sum() == (local["review_id"].fillna("") != "").sum() > 0
    with Store(plinth_env.env["PLINTH_DATABASE_URL"]) as store:
        assert store.count_predictions() == 2 * 2_998
        ids = on_ray.loc[on_ray["error"] == "", "prediction_id"]
        assert store.get_prediction(ids.iloc[-1]).route == "batch"


def test_address_without_ray_is_refused(plinth_env: Env, tmp_path: Path) -> None:
    churn_table(1, rows=5).to_csv(tmp_path / "in.csv", index=False)
    done = plinth_env.cli(
        "predict", "churn", "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
        "--address", "ray://nowhere:10001", check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--address needs --engine ray" in done.stderr
