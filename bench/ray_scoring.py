"""Batch scoring on Ray against local scoring: rows/s of each and whether the answers match.

Registers the churn pipeline (mixed numeric and categorical columns with missing values) on
its own PostgreSQL database, writes N rows to Parquet, and times `plinth predict` on them
twice: in this process, then with ``--engine ray`` (a local Ray started for the run, or the
cluster at ``--address``). Both runs go through the contract, the model, the review gate and
the prediction log, so the log holds 2 N rows at the end. The answers must be identical.

    .venv/bin/python bench/ray_scoring.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import skops.io as sio
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import churn_model, churn_table, write_csv

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/plinth_bench_ray"
PLINTH = str(Path(sys.executable).parent / "plinth")
ANSWER = ["prediction", "probability_no", "probability_yes", "confidence", "warnings", "error"]


def _pg_reset(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()


def _timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([PLINTH, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--address", help="a running Ray cluster [default: a local Ray]")
    options = parser.parse_args()
    _pg_reset(PG_URL)
    with tempfile.TemporaryDirectory(prefix="plinth-bench-ray-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
        env |= {"PLINTH_HOME": str(work / "home"), "PLINTH_DATABASE_URL": PG_URL}
        train = churn_table(0)
        sio.dump(churn_model(train), work / "churn.skops")
        write_csv(train, work / "train.csv")
        subprocess.run(
            [PLINTH, "register", str(work / "churn.skops"), "--name", "churn",
             "--train", str(work / "train.csv"), "--target", "churn"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        churn_table(5, rows=options.rows).drop(columns=["churn"]).to_parquet(work / "in.parquet")
        common = ["predict", "churn", "--input", str(work / "in.parquet")]
        local_s = _timed([*common, "--output", str(work / "local.parquet")], env)
        ray = ["--engine", "ray"] + (["--address", options.address] if options.address else [])
        ray_s = _timed([*common, "--output", str(work / "ray.parquet"), *ray], env)
        local = pd.read_parquet(work / "local.parquet")
        on_ray = pd.read_parquet(work / "ray.parquet")
        columns = [c for c in ANSWER if c in local]
        same = local[columns].equals(on_ray[columns])
    rows = options.rows
    print("| engine | rows | seconds (whole command) | rows/s |\n| --- | --- | --- | --- |")
    print(f"| local | {rows:,} | {local_s:.1f} | {rows / local_s:,.0f} |")
    print(f"| ray ({options.address or 'local, ' + str(os.cpu_count()) + ' CPUs'}) | {rows:,} "
          f"| {ray_s:.1f} | {rows / ray_s:,.0f} |")  # fmt: skip
    print(f"ray / local rows/s: {local_s / ray_s:.2f}x; answers identical: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
