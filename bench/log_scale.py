"""The prediction log at scale on PostgreSQL: insert cost and lookups as the log grows.

Registers a real model (a logistic regression on 30 float features) in its own database
(``plinth_bench_log_scale``), fills that database's log with rows spread over ``--days``
days (one partition per day) and, at each checkpoint, measures:

- insert rows/s: the last ``--stretch`` rows before the checkpoint go through the store's own
  appender (COPY, groups of 5,000 rows; building the rows and committing included);
- ``get_prediction`` p50 (replay's lookup) and the lookup by request key p50, each over 200
  rows drawn anywhere in the log (two separate draws, so one does not warm the other), after
  an ``ANALYZE`` of the partitions written since the last checkpoint, as autovacuum would have
  run by then (without statistics the planner guesses: bitmap scans over every partition
  and JIT compilation, 10 ms per lookup at 10 M rows on a server with autovacuum off);
- ``replay`` p50 (lookup, version, artifact load and hash check, model call, comparison), and
  the wall time of the CLI ``plinth replay ID --json`` as a user runs it (start-up included);
- MB per million rows: the partitions' tables, TOAST and indexes (MB = 10^6 bytes);
- the 1-minute load average when the checkpoint's figures were taken.

Every row ``n`` is fully determined by ``n`` (``_record``): a ULID id whose time part is the
row's timestamp, a ULID request id of the same millisecond, a request key on every 10th row,
and the input (positional JSON, 30 floats of 3 decimals, from a pool of 4,096 random
records), output and confidence the model really gives for that input. So every lookup checks
that the row it found is the row the bench meant, and every replay must come out identical,
whichever fill wrote the row. ``--fill`` chooses how the rows before each timed stretch are
written:

- ``appender``: every row through the appender, as serving and batch scoring write them
  (16-25k rows/s on 2 shared cores: 100 M rows take over an hour);
- ``sql``: one ``INSERT INTO predictions SELECT ... FROM generate_series(...)`` per million
  rows, built inside PostgreSQL: the same columns and the same text for every row as the
  appender writes (ids encoded to ULID form in SQL, the pool's JSON documents as the
  appender's row builder wrote them), routed to the same daily partitions. Only the timed
  stretches go through the appender.

The figures in docs/performance.md ("The prediction log at scale") come from ``--fill sql``
with the command below; at 1 M rows both fills gave the same bytes per row.

The run stops early (and takes its last figures there) when the data directory's file system
would fall under ``--min-free-gb`` or when ``--budget-min`` minutes have passed. The database
is dropped at the end unless ``--keep``.

    .venv/bin/python bench/log_scale.py --fill sql --rows 100000000 \\
        --checkpoints 1000000,10000000,50000000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.config.settings import Settings
from plinth.core.ids import encode
from plinth.core.output import confidence as top_probability
from plinth.errors import UnstorableValueError
from plinth.runtime import Runtime
from plinth.services.replay import replay
from plinth.services.serving.scoring import answer_rows, output_records
from plinth.store import PredictionRecord, partitions
from plinth.store.feedback import FeedbackStore
from plinth.store.prediction_log import COLUMNS, RowBuilder

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE = "plinth_bench_log_scale"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
NAME = "bc"
FIELDS = [f"f{i}" for i in range(30)]
POOL = 4_096
BATCH = 5_000  # rows per appender group (a Ray block)
SQL_CHUNK = 1_000_000  # rows per INSERT ... SELECT (one transaction)
LOOKUPS = 200
REPLAYS = 20
CLI_REPLAYS = 3
REQUEST_BIT = 1 << 29  # a request id's random part: n with this bit set (n < 2**29)
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # ULID's Crockford base32
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Plan:
    """What every row is made of: its time, the registered version, the input pool."""

    start: datetime
    start_us: int
    span_us: int  # microseconds between consecutive rows
    sha256: str
    version: int
    fields: tuple[str, ...]
    pool: list[tuple[dict[str, float], dict[str, Any], float]]  # input, output, confidence


def _record(n: int, plan: Plan) -> PredictionRecord:
    """Row ``n`` of the log, the same whichever fill writes it."""
    ms = (plan.start_us + n * plan.span_us) // 1000
    given, output, confidence = plan.pool[n % POOL]
    return PredictionRecord(
        id=encode((ms << 80) | n),
        ts=plan.start + timedelta(microseconds=n * plan.span_us),
        model=NAME,
        version=plan.version,
        sha256=plan.sha256,
        route="champion",
        request_id=encode((ms << 80) | REQUEST_BIT | n),
        key=f"k{n}" if n % 10 == 0 else None,
        input=given,
        features=given,
        output=output,
        confidence=confidence,
        latency_ms=3.2,
        warnings=[],
        fields=plan.fields,
    )


def _same(a: PredictionRecord, b: PredictionRecord) -> bool:
    def meaning(r: PredictionRecord) -> tuple[Any, ...]:
        return (r.id, r.ts, r.model, r.version, r.sha256, r.route, r.request_id, r.key,
                r.input, r.features, r.output, r.confidence, r.latency_ms, r.warnings)  # fmt: skip

    return meaning(a) == meaning(b)


def _b32_sql(expr: str, chars: int, bits: int) -> str:
    """SQL for the ``chars``-character Crockford base32 form of ``expr`` (< 2**bits)."""
    parts: list[str] = []
    zeros = 0
    for i in range(chars):
        shift = 5 * (chars - 1 - i)
        if shift >= bits:
            zeros += 1
            continue
        parts.append(f"substr('{ALPHABET}', ((({expr}) >> {shift}) & 31)::int + 1, 1)")
    return " || ".join(([f"'{'0' * zeros}'"] if zeros else []) + parts)


def _fill_sql_statement(columns: str) -> str:
    """One ``INSERT ... SELECT`` for rows ``lo`` to ``hi`` (inclusive), as ``_record`` makes
    them; the pool's documents come from ``bench_pool``, the constants as parameters."""
    # The time part is built once per row (OFFSET 0 keeps the subquery from being inlined
    # into both ids), then shared by the prediction id and the request id.
    return (
        f"INSERT INTO predictions ({columns}) "
        f"SELECT g.t || {_b32_sql('g.n', 16, 30)}, "
        "%(start)s::timestamptz + (g.n * %(span_us)s::bigint) * interval '1 microsecond', "
        "%(model)s, %(version)s, %(sha256)s, %(route)s, "
        f"g.t || {_b32_sql(f'g.n | {REQUEST_BIT}', 16, 30)}, "
        "CASE WHEN mod(g.n, 10) = 0 THEN 'k' || g.n END, "
        "p.input, %(features)s::json, p.output, p.confidence, %(latency_ms)s, "
        "%(warnings)s::json "
        f"FROM (SELECT s.n, {_b32_sql('s.ms', 10, 48)} AS t FROM ("
        "SELECT n, (%(start_us)s::bigint + n * %(span_us)s::bigint) / 1000 AS ms "
        "FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS n) AS s OFFSET 0) AS g "
        f"JOIN bench_pool AS p ON p.i = mod(g.n, {POOL})"
    )


def _fresh_database() -> None:
    _admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    _admin(f"CREATE DATABASE {DATABASE}")


def _admin(sql: str) -> None:
    admin = sa.create_engine(ADMIN_URL, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(sql)
    admin.dispose()


def _register(settings: Settings) -> None:
    """A logistic regression on the pool's inputs, registered as ``bc`` version 1."""
    rng = random.Random(0)
    inputs = [{f: round(rng.random() * 100, 3) for f in FIELDS} for _ in range(POOL)]
    train = pd.DataFrame(inputs, columns=FIELDS)
    train["target"] = (train["f0"] + train["f1"] > 100).astype(int)
    model = LogisticRegression(max_iter=1000).fit(train[FIELDS], train["target"])
    plinth.register(model, name=NAME, train=train, target="target", settings=settings)


def _plan(runtime: Runtime, days: int, rows: int) -> Plan:
    """The registered version and, for each pool input, the output it really gets (one
    row at a time, as replay computes it, so replays compare bit for bit)."""
    version = runtime.store.get_version(NAME, 1)
    model = runtime.registry.load(version)
    rng = random.Random(0)
    inputs = [{f: round(rng.random() * 100, 3) for f in FIELDS} for _ in range(POOL)]
    classes = [str(c) for c in model.output.classes or []]
    pool = []
    try:
        for given in inputs:
            predictions, probabilities, details = answer_rows(model, model.contract.frame([given]))
            assert probabilities is not None
            [output] = output_records(predictions, probabilities, classes, details)
            pool.append((given, output, float(top_probability(probabilities)[0])))
    finally:
        model.flavor.close()
    assert tuple(model.field_order) == tuple(FIELDS), model.field_order
    start = (datetime.now(UTC) - timedelta(days=days - 1)).replace(microsecond=0)
    return Plan(
        start=start,
        start_us=(start - EPOCH) // timedelta(microseconds=1),
        span_us=days * 86_400_000_000 // rows,
        sha256=version.sha256,
        version=version.version,
        fields=tuple(model.field_order),
        pool=pool,
    )


def _load_pool(runtime: Runtime, plan: Plan, builder: RowBuilder) -> dict[str, Any]:
    """The pool's documents as the appender writes them, into ``bench_pool``; returns the
    constant columns of every row (the same text the appender would send)."""
    rows = builder.rows([_record(i, plan) for i in range(POOL)])
    index = {c: i for i, c in enumerate(COLUMNS)}
    with runtime.store.writing() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bench_pool (i integer PRIMARY KEY, input json NOT NULL, "
            "output json NOT NULL, confidence double precision)"
        )
        conn.exec_driver_sql(
            "INSERT INTO bench_pool VALUES (%(i)s, %(input)s, %(output)s, %(confidence)s)",
            [
                {
                    "i": i,
                    "input": r[index["input"]],
                    "output": r[index["output"]],
                    "confidence": r[index["confidence"]],
                }
                for i, r in enumerate(rows)
            ],
        )
        conn.exec_driver_sql("ANALYZE bench_pool")
    first = rows[0]
    assert all(r[index["features"]] == first[index["features"]] for r in rows)
    return {
        c: first[index[c]]
        for c in ("model", "version", "sha256", "route", "features", "latency_ms", "warnings")
    } | {"start": plan.start, "start_us": plan.start_us, "span_us": plan.span_us}


def _data_directory(runtime: Runtime) -> Path | None:
    with runtime.store.reading() as conn:
        found = Path(conn.exec_driver_sql("SHOW data_directory").scalar_one())
    return found if found.exists() else None


def _median_ms(work: list[float]) -> float:
    return 1000 * statistics.median(work)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--checkpoints", default="", help="comma list of row counts to report at")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--fill", choices=["appender", "sql"], default="appender")
    p.add_argument("--stretch", type=int, default=300_000, help="timed appender rows per mark")
    p.add_argument("--min-free-gb", type=float, default=15.0)
    p.add_argument("--budget-min", type=float, default=0.0, help="stop filling after this")
    p.add_argument("--keep", action="store_true", help="leave the database in place")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # drop the database on the way out
    if args.rows >= REQUEST_BIT:
        p.error(f"--rows must be below {REQUEST_BIT:,}")
    marks = sorted({int(c) for c in args.checkpoints.split(",") if c} | {args.rows})
    began = time.monotonic()
    _fresh_database()
    home = Path(tempfile.mkdtemp(prefix="plinth-log-scale-"))
    settings = Settings(home=home, database_url=URL)
    try:
        _register(settings)
        with Runtime.open(settings) as runtime:
            _run(runtime, args, marks, began, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if not args.keep:
            _admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def _run(
    runtime: Runtime, args: argparse.Namespace, marks: list[int], began: float, home: Path
) -> None:
    store = runtime.store
    plan = _plan(runtime, args.days, args.rows)
    with store.writing() as conn:
        partitions.ensure_days(
            conn, [(plan.start + timedelta(days=d)).date() for d in range(args.days + 1)]
        )
    builder = RowBuilder(
        store.write_engine.dialect, lambda v: orjson.dumps(v).decode(), UnstorableValueError
    )
    constants = _load_pool(runtime, plan, builder)
    quote = store.write_engine.dialect.identifier_preparer.quote
    fill_sql = _fill_sql_statement(", ".join(quote(c) for c in COLUMNS))
    data_dir = _data_directory(runtime)
    appender = store.prediction_appender()
    feedback = FeedbackStore(store)
    rng = random.Random(1)
    cli = Path(sys.executable).with_name("plinth")
    env = {**os.environ, "PLINTH_HOME": str(home), "PLINTH_DATABASE_URL": URL}
    print(f"fill: {args.fill}; rows spread over {args.days} days from {plan.start:%Y-%m-%d}; "
          f"data directory {data_dir}", file=sys.stderr, flush=True)  # fmt: skip
    print(
        "| rows | bulk fill rows/s | appender rows/s | get_prediction p50 ms | by key p50 ms "
        "| replay p50 ms | CLI replay s | MB per million rows | load (1 min) |",
        flush=True,
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    done = mark_from = 0
    per_row = 700.0  # bytes, until the first checkpoint measures it
    for mark in marks:
        stretch = min(args.stretch, mark - done)
        bulk_rows, bulk_s, stopped = 0, 0.0, ""
        while done < mark - stretch:
            size = min(SQL_CHUNK, mark - stretch - done)
            if data_dir is not None:
                free = shutil.disk_usage(data_dir).free
                if free - (size + stretch) * per_row * 1.1 < args.min_free_gb * 1e9:
                    stopped = f"free disk {free / 1e9:.1f} GB, floor {args.min_free_gb:g} GB"
                    break
            if args.budget_min and time.monotonic() - began > 60 * args.budget_min:
                stopped = f"time budget of {args.budget_min:g} min spent"
                break
            t = time.perf_counter()
            if args.fill == "sql":
                with store.writing() as conn:
                    conn.exec_driver_sql(fill_sql, {**constants, "lo": done, "hi": done + size - 1})
            else:
                for lo in range(done, done + size, BATCH):
                    high = min(lo + BATCH, done + size)
                    appender.append([_record(n, plan) for n in range(lo, high)])
            bulk_s += time.perf_counter() - t
            bulk_rows += size
            done += size
            print(f"  {done:,} rows, {size / (time.perf_counter() - t):,.0f} rows/s, "
                  f"{time.monotonic() - began:,.0f} s, load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)  # fmt: skip
        # The timed stretch: the newest rows, through the appender, as serving writes them.
        appended_s = 0.0
        for lo in range(done, done + stretch, BATCH):
            records = [_record(n, plan) for n in range(lo, min(lo + BATCH, done + stretch))]
            t = time.perf_counter()
            appender.append(records)
            appended_s += time.perf_counter() - t
        # Statistics for the partitions written since the last checkpoint, as autovacuum
        # would have gathered them by now (this bench's server may run with it off).
        t = time.perf_counter()
        first, last = (
            _record(mark_from, plan).ts.date(),
            _record(done + stretch - 1, plan).ts.date(),
        )
        with store.writing() as conn:
            for d in range((last - first).days + 1):
                conn.exec_driver_sql(f"ANALYZE {partitions.day_name(first + timedelta(days=d))}")
        print(f"  analyzed {first} to {last} in {time.perf_counter() - t:,.1f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        done += stretch
        mark_from = done
        load = os.getloadavg()[0]
        by_id = []
        for n in [rng.randrange(done) for _ in range(LOOKUPS)]:
            want = _record(n, plan)
            t = time.perf_counter()
            got = store.get_prediction(want.id)
            by_id.append(time.perf_counter() - t)
            assert _same(got, want), (n, got, want)
        by_key = []
        for n in [10 * rng.randrange((done + 9) // 10) for _ in range(LOOKUPS)]:
            t = time.perf_counter()
            found = feedback.predictions_by_key(NAME, [f"k{n}"])
            by_key.append(time.perf_counter() - t)
            assert [r.id for r in found[f"k{n}"]] == [_record(n, plan).id], n
        replays = []
        for n in [rng.randrange(done) for _ in range(REPLAYS)]:
            t = time.perf_counter()
            result = replay(store, runtime.registry, _record(n, plan).id)
            replays.append(time.perf_counter() - t)
            assert result.identical, (n, result.differences)
        cli_s = []
        for n in [rng.randrange(done) for _ in range(CLI_REPLAYS)]:
            command = [str(cli)] if cli.exists() else [sys.executable, "-m", "plinth.cli.main"]
            t = time.perf_counter()
            proc = subprocess.run(
                [*command, "replay", _record(n, plan).id, "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            cli_s.append(time.perf_counter() - t)
            assert proc.returncode == 0 and orjson.loads(proc.stdout)["identical"], proc.stderr
        with store.reading() as conn:
            size_b = conn.exec_driver_sql(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'predictions'"
            ).scalar_one()
        per_row = float(size_b) / done
        bulk = f"{bulk_rows / bulk_s:,.0f}" if bulk_rows else "—"
        rate = f"{stretch / appended_s:,.0f}" if stretch else "—"
        print(
            f"| {done:,} | {bulk} | {rate} | {_median_ms(by_id):.2f} | {_median_ms(by_key):.2f} "
            f"| {_median_ms(replays):.1f} | {statistics.median(cli_s):.2f} | {per_row:,.0f} "
            f"| {load:.1f} |",
            flush=True,
        )
        if stopped:
            print(f"stopped at {done:,} rows: {stopped}", flush=True)
            break
    appender.close()
    print(f"total {time.monotonic() - began:,.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
