"""Bytes per logged prediction, on SQLite and PostgreSQL, for this tree and optionally another.

Serves the reference forest with `plinth serve`, sends N one-record requests, stops the
server, and divides the prediction log's size (table and its indexes) by its rows. With
``--baseline REF`` the same is done for Plinth at REF (its own worktree and venv, as
``bench/run.py --baseline`` builds them), so a change to the row format is measured before
and after in one run.

    .venv/bin/python bench/log_size.py --requests 5000 --baseline 1e44ed2
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import envs
import procs
import sqlalchemy as sa
import workload

# Its own database, never the test suite's: every measurement starts from an empty schema.
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/plinth_bench_log_size"
MAIN_BIN = Path(sys.executable).parent


def _post_all(url: str, bodies: list[bytes], count: int) -> None:
    for i in range(count):
        request = urllib.request.Request(
            url, data=bodies[i % len(bodies)], headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()


def _sqlite_bytes(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'predictions'")
        ]
        marks = ",".join("?" * len(names))
        row = conn.execute(
            f"SELECT sum(pgsize - unused) FROM dbstat WHERE name IN ({marks})", names
        )
        return int(row.fetchone()[0])


def _pg_reset(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()


def _pg_bytes(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE predictions")
        size = conn.exec_driver_sql("SELECT pg_total_relation_size('predictions')").scalar_one()
    engine.dispose()
    return int(size)


def measure(bin_dir: Path, work: Path, label: str, backend: str, count: int) -> dict[str, object]:
    home = work / f"home-{label}-{backend}"
    env = dict(os.environ, PLINTH_HOME=str(home))
    env.pop("PLINTH_DATABASE_URL", None)
    if backend == "postgresql":
        _pg_reset(PG_URL)
        env["PLINTH_DATABASE_URL"] = PG_URL
    plinth = str(bin_dir / "plinth")
    subprocess.run(
        [plinth, "register", str(work / "model.joblib"), "--name", "bc", "--train",
         str(work / "train.csv"), "--target", "target", "--trust-pickle"],
        env=env, cwd=work, check=True, capture_output=True,
    )  # fmt: skip
    port = procs.free_port()
    server = procs.start(
        f"plinth-{label}",
        [plinth, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=work,
        log_path=work / f"serve-{label}-{backend}.log",
        core=None,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        problem = procs.wait_ready(server, [f"{base}/readyz"], timeout=120)
        if problem is not None:
            raise SystemExit(f"{label} {problem}: {server.log_tail()}")
        meta = json.loads((work / "workload.json").read_text())
        names = meta["feature_names"]
        bodies = [
            json.dumps({"records": [dict(zip(names, r, strict=True))]}).encode()
            for r in meta["rows"]
        ]
        _post_all(f"{base}/v1/models/bc/predict", bodies, count)
        time.sleep(1.0)
    finally:
        procs.stop(server)
    size = _sqlite_bytes(home / "plinth.db") if backend == "sqlite" else _pg_bytes(PG_URL)
    return {"plinth": label, "backend": backend, "rows": count, "bytes_per_row": size / count}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--baseline", help="another git ref to measure beside this tree")
    p.add_argument("--backends", default="sqlite,postgresql")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="plinth-logsize-") as tmp:
        work = Path(tmp)
        info = workload.train(work)
        subjects = [("this tree", MAIN_BIN)]
        if args.baseline:
            env = envs.ensure_plinth_at(args.baseline, info["sklearn"])
            subjects.append((args.baseline, env.bin_dir))
        print("| Plinth | backend | rows | bytes per row (table + indexes) |")
        print("| --- | --- | ---: | ---: |")
        for backend in args.backends.split(","):
            for label, bin_dir in subjects:
                m = measure(bin_dir, work, label.replace(" ", "-"), backend, args.requests)
                print(f"| {label} | {backend} | {m['rows']:,} | {m['bytes_per_row']:,.0f} |")


if __name__ == "__main__":
    main()
