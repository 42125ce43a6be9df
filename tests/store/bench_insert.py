"""How fast the prediction log's group commit is: rows/s of ``insert_predictions``.

Not a test (pytest does not collect it). Run from the repository root:

    .venv/bin/python -m tests.store.bench_insert [--url URL] [--batch 64] [--batches 200]

Without ``--url`` it measures SQLite (synchronous FULL and NORMAL) in a temporary folder,
and PostgreSQL in a throwaway database when ``PLINTH_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from ulid import ULID

from plinth.store import PredictionRecord, Store


def _rows(count: int, rng: random.Random, start: datetime) -> Iterator[PredictionRecord]:
    """Records shaped like a small tabular classifier's log: ~1 KB of JSON each."""
    for i in range(count):
        features: dict[str, float | str] = {f"f{j}": rng.gauss(0, 1) for j in range(12)}
        features["city"] = rng.choice(["paris", "lyon", "nice"])
        probability = rng.random()
        yield PredictionRecord(
            id=str(ULID()),
            ts=start + timedelta(microseconds=i),
            model="churn",
            version=1,
            sha256="a" * 64,
            route="champion",
            input=dict(features),
            features=features,
            output={
                "prediction": "yes" if probability > 0.5 else "no",
                "probabilities": {"yes": probability, "no": 1 - probability},
            },
            confidence=max(probability, 1 - probability),
            latency_ms=rng.uniform(0.2, 3.0),
            warnings=[],
            request_id=uuid.uuid4().hex,
        )


def measure(url: str, batch: int, batches: int, sqlite_synchronous: str = "FULL") -> float:
    """Rows per second over ``batches`` commits of ``batch`` rows (records built beforehand)."""
    rng = random.Random(0)
    start = datetime.now(UTC)
    groups = [list(_rows(batch, rng, start + timedelta(seconds=b))) for b in range(batches)]
    with Store(url, sqlite_synchronous=sqlite_synchronous) as store:
        store.insert_predictions(groups[0])  # warm the pool and the statement cache
        began = time.perf_counter()
        for group in groups[1:]:
            store.insert_predictions(group)
        elapsed = time.perf_counter() - began
    return batch * (batches - 1) / elapsed


def _postgresql(server: str, batch: int, batches: int) -> float:
    name = f"plinth_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        return measure(url, batch, batches)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="measure only this database (it gets migrated)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    if args.url:
        print(f"{args.url}: {measure(args.url, args.batch, args.batches):,.0f} rows/s")
        return
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("FULL", "NORMAL"):
            url = f"sqlite:///{folder}/{mode}.db"
            rate = measure(url, args.batch, args.batches, sqlite_synchronous=mode)
            print(f"sqlite synchronous={mode}, batch {args.batch}: {rate:,.0f} rows/s")
    server = os.environ.get("PLINTH_TEST_DATABASE_URL")
    if server:
        rate = _postgresql(server, args.batch, args.batches)
        print(f"postgresql, batch {args.batch}: {rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
