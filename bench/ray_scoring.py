"""Batch scoring on Ray against local scoring: rows/s of each and whether the answers match.

Registers the churn pipeline (mixed numeric and categorical columns with missing values) on
its own database (PostgreSQL, or SQLite with ``--store sqlite``), writes N rows to Parquet,
and times `plinth predict` on them: in one process, then with ``--engine ray`` (a local Ray
started for the run, or the cluster at ``--address``), ``--rounds`` times. Every run goes
through the contract, the model, the review gate and the prediction log, so the log holds
2 N rows per round at the end. The two output files must be the same table (dtypes too).
The load average before each run is printed with it: the machines are shared.

    .venv/bin/python bench/ray_scoring.py --rows 1000000 --rounds 2
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


def _pg_reset(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds the whole command took, and the 1-minute load average when it started."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run([PLINTH, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--address", help="a running Ray cluster [default: a local Ray]")
    options = parser.parse_args()
    rows = options.rows
    where = options.address or f"local, {os.cpu_count()} CPUs"
    print("| engine | store | rows | seconds (whole command) | rows/s | load before |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="plinth-bench-ray-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
        env |= {"PLINTH_HOME": str(work / "home")}
        # No usage report, and no auth token written to the user's ~/.ray for a local Ray.
        env |= {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        if options.store == "postgresql":
            _pg_reset(PG_URL)
            env["PLINTH_DATABASE_URL"] = PG_URL
        train = churn_table(0)
        sio.dump(churn_model(train), work / "churn.skops")
        write_csv(train, work / "train.csv")
        subprocess.run(
            [PLINTH, "register", str(work / "churn.skops"), "--name", "churn",
             "--train", str(work / "train.csv"), "--target", "churn"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        churn_table(5, rows=rows).drop(columns=["churn"]).to_parquet(work / "in.parquet")
        common = ["predict", "churn", "--input", str(work / "in.parquet")]
        ray = ["--engine", "ray"] + (["--address", options.address] if options.address else [])
        same = True
        for _ in range(options.rounds):
            runs = [("local", []), (f"ray ({where})", ray)]
            for engine, extra in runs:
                out = work / f"{engine.split()[0]}.parquet"
                seconds, load = _timed([*common, "--output", str(out), *extra], env)
                print(f"| {engine} | {options.store} | {rows:,} | {seconds:.1f} "
                      f"| {rows / seconds:,.0f} | {load:.1f} |", flush=True)  # fmt: skip
            local = pd.read_parquet(work / "local.parquet").drop(columns=["prediction_id"])
            on_ray = pd.read_parquet(work / "ray.parquet").drop(columns=["prediction_id"])
            same = same and local.equals(on_ray)
    print(f"answers identical (every column but prediction_id, dtypes too): {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
