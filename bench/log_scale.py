"""The prediction log at scale on PostgreSQL: insert cost and lookups as the log grows.

Fills the log of its own database (``plinth_bench_log_scale``) through the store's own
appender (COPY into daily partitions), spreading rows over ``--days`` days, and at each
checkpoint measures: rows per second of the last stretch of inserts, the median time of
``get_prediction`` (replay's lookup) and of a lookup by request key, and the disk used per
million rows (table, partitions and indexes).

    .venv/bin/python bench/log_scale.py --rows 10000000 --checkpoints 1000000,5000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from plinth.core.ids import encode
from plinth.store import PredictionRecord, Store, VersionRecord
from plinth.store.feedback import FeedbackStore

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
URL = "postgresql+psycopg://postgres@127.0.0.1:5432/plinth_bench_log_scale"
FIELDS = [f"f{i}" for i in range(30)]
BATCH = 5_000


def _fresh_database() -> None:
    admin = sa.create_engine(ADMIN_URL, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS plinth_bench_log_scale")
        conn.exec_driver_sql("CREATE DATABASE plinth_bench_log_scale")
    admin.dispose()


def _record(n: int, start: datetime, span_s: float, rng: random.Random) -> PredictionRecord:
    ts = start + timedelta(seconds=span_s * n)
    ms = int(ts.timestamp() * 1000)
    values = {f: round(rng.random() * 100, 3) for f in FIELDS}
    return PredictionRecord(
        id=encode((ms << 80) | n),
        ts=ts,
        model="bc",
        version=1,
        sha256="a" * 64,
        route="champion",
        request_id=f"r{n}",
        key=f"k{n}" if n % 10 == 0 else None,
        input=values,
        features=values,
        output={"prediction": 1, "probabilities": {"0": 0.1, "1": 0.9}},
        confidence=0.9,
        latency_ms=3.2,
        warnings=[],
        fields=tuple(FIELDS),
    )


def _median_ms(work: list[float]) -> float:
    return 1000 * statistics.median(work)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--checkpoints", default="", help="comma list of row counts to report at")
    p.add_argument("--days", type=int, default=30)
    args = p.parse_args()
    marks = sorted({int(c) for c in args.checkpoints.split(",") if c} | {args.rows})
    _fresh_database()
    rng = random.Random(0)
    start = datetime.now(UTC) - timedelta(days=args.days - 1)
    span_s = args.days * 86_400 / args.rows
    with Store(URL) as store:
        store.ensure_log_partitions(start)
        with store.writing() as conn:
            from plinth.store import partitions

            partitions.ensure_days(
                conn, [(start + timedelta(days=d)).date() for d in range(args.days + 1)]
            )
        contract = {"fields": [{"name": f, "type": "float"} for f in FIELDS]}
        version = VersionRecord(
            name="bc",
            version=0,
            sha256="a" * 64,
            flavor="sklearn",
            task="classification",
            created_at=start,
            metadata={"contract": contract},
        )
        store.add_version(version)  # positional rows need the contract's field order
        appender = store.prediction_appender()
        feedback = FeedbackStore(store)
        print("| rows | insert rows/s (last stretch) | get_prediction p50 ms | by key p50 ms "
              "| MB per million rows |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: |")
        done = 0
        for mark in marks:
            began = time.perf_counter()
            stretch = mark - done
            while done < mark:
                size = min(BATCH, mark - done)
                appender.append([_record(done + i, start, span_s, rng) for i in range(size)])
                done += size
            rate = stretch / (time.perf_counter() - began)
            probes = [rng.randrange(done) for _ in range(200)]
            by_id = []
            for n in probes:
                t = time.perf_counter()
                store.get_prediction(_record(n, start, span_s, random.Random(n)).id)
                by_id.append(time.perf_counter() - t)
            by_key = []
            for n in probes:
                key = f"k{n - n % 10}"
                t = time.perf_counter()
                feedback.predictions_by_key("bc", [key])
                by_key.append(time.perf_counter() - t)
            with store.reading() as conn:
                size_b = conn.exec_driver_sql(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'predictions'"
                ).scalar_one()
            print(
                f"| {done:,} | {rate:,.0f} | {_median_ms(by_id):.2f} | {_median_ms(by_key):.2f} "
                f"| {size_b / done:,.0f} |"
            )
        appender.close()


if __name__ == "__main__":
    main()
