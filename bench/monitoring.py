"""Monitoring benchmark: cost on the request path, and a 30-day drift report.

    .venv/bin/python bench/monitoring.py [--days 30] [--features 50] [--database-url URL]

1. Per-record cost of what serving adds for monitoring: the batch observer folding a batch of
   32 records into the interval profile (30 features: 20 float, 5 integer, 5 categorical,
   plus the prediction and confidence), the per-request reply hook, and the Prometheus
   updates serving makes per request. Target: under 20 us per record.
2. A drift report (drift on every feature, latency quantiles, control charts) over 30 days
   of one-minute interval profiles of a 50-feature model, read from the store. Target: < 1 s.

Prints the figures; nothing is asserted (see docs/monitoring.md for recorded numbers).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.contract import infer_contract
from plinth.core.interval import ProfileLayout, encode_counts, encode_floats
from plinth.core.output import OutputContract
from plinth.core.profile import Profile
from plinth.services import telemetry
from plinth.services.monitoring import Monitor, MonitorCollector
from plinth.services.registry import ServedModel
from plinth.services.scoring import JobResult
from plinth.store import Store, VersionRecord
from plinth.store.monitoring import IntervalRow, MonitoringStore


def _frame(rng: np.random.Generator, rows: int, floats: int, ints: int, cats: int) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for i in range(floats):
        columns[f"f{i}"] = rng.normal(i, 1 + i % 3, rows)
    for i in range(ints):
        columns[f"i{i}"] = rng.integers(0, 20 + i, rows)
    for i in range(cats):
        columns[f"c{i}"] = rng.choice([f"v{k}" for k in range(4 + i)], rows)
    return pd.DataFrame(columns)


def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {
        c: "numeric" if c[0] == "f" else "integer" if c[0] == "i" else "categorical"
        for c in frame.columns
    }


def _model(reference: Profile, frame: pd.DataFrame, name: str) -> ServedModel:
    record = VersionRecord(
        name=name,
        version=1,
        sha256="0" * 64,
        flavor="python",
        task="classification",
        created_at=datetime.now(UTC),
        metadata={
            "reference_profile": reference.to_dict(),
            "output_contract": {"task": "classification", "classes": ["no", "yes"]},
        },
    )
    return ServedModel(
        record=record,
        flavor=None,  # type: ignore[arg-type]  # the observer never calls the model
        contract=infer_contract(frame),
        output=OutputContract(task="classification", classes=["no", "yes"]),
    )


def observer_cost(rounds: int = 3000, batch: int = 32) -> dict[str, float]:
    """Microseconds per record for the observer, reply hook and metrics at batch 32."""
    rng = np.random.default_rng(0)
    train = _frame(rng, 5000, 20, 5, 5)
    proba_train = rng.dirichlet([1, 1], 5000)
    labels = np.asarray(["no", "yes"], dtype=object)
    reference = Profile.fit(
        train, _kinds(train), outputs=labels[proba_train.argmax(1)],
        output_kind="categorical", confidence=proba_train.max(1), classes=["no", "yes"],
    )  # fmt: skip
    model = _model(reference, train, "bench")
    collector = MonitorCollector(None, interval_s=3600)
    frames = [_frame(rng, batch, 20, 5, 5) for _ in range(16)]
    probas = [rng.dirichlet([1, 1], batch) for _ in range(16)]
    predictions = [labels[p.argmax(1)] for p in probas]
    one = JobResult(answers=[{}])
    whole = JobResult(answers=[{}] * batch)
    result: dict[str, float] = {}

    def timed(label: str, step: Any) -> None:
        for i in range(200):  # warm up
            step(i)
        start = time.perf_counter()
        for i in range(rounds):
            step(i)
        result[label] = (time.perf_counter() - start) / rounds / batch * 1e6

    timed("observer (profile fold)", lambda i: collector(
        model, frames[i % 16], predictions[i % 16], probas[i % 16]))  # fmt: skip

    def per_request_metrics(requests: int, reply: JobResult) -> None:
        for _ in range(requests):
            telemetry.REQUESTS.labels("bench", "1", "champion", "ok").inc()
            telemetry.RECORDS.labels("bench", "1", "champion").inc(len(reply.answers))
            telemetry.REQUEST_SECONDS.labels("bench").observe(0.003)
            collector.observe_reply(model, reply, 0.003)

    timed("reply hook + Prometheus, 32 requests of 1 record",
          lambda i: per_request_metrics(batch, one))  # fmt: skip
    timed("reply hook + Prometheus, 1 request of 32 records",
          lambda i: per_request_metrics(1, whole))  # fmt: skip
    return result


def report_cost(database_url: str | None, days: int, features: int) -> dict[str, float]:
    """Seconds to build a report over ``days`` of one-minute profiles of ``features``."""
    rng = np.random.default_rng(1)
    floats, cats = features * 4 // 5, features - features * 4 // 5
    train = _frame(rng, 20_000, floats, 0, cats)
    kinds = _kinds(train)
    proba = rng.dirichlet([1, 1], 20_000)
    labels = np.asarray(["no", "yes"], dtype=object)
    reference = Profile.fit(
        train, kinds, outputs=labels[proba.argmax(1)], output_kind="categorical",
        confidence=proba.max(1), classes=["no", "yes"],
    )  # fmt: skip
    layout = ProfileLayout(reference)
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url, sqlite_synchronous="NORMAL")
        record = store.add_version(_model(reference, train, "wide").record)
        intervals = days * 24 * 60
        now = datetime(2026, 1, 31, tzinfo=UTC)
        start = now - timedelta(days=days)
        rows_per_minute = 600  # 10 records a second
        # Synthesise each minute's counts from the reference shares (no need to score
        # 26 million rows to fill the table): one multinomial draw per section.
        t0 = time.perf_counter()
        ints = np.zeros((intervals, layout.int_size), dtype=np.int64)
        sums = np.zeros((intervals, layout.float_size))
        for section in layout.sections:
            shares = section.bins.counts / max(section.bins.counts.sum(), 1)
            ints[:, section.counts] = rng.multinomial(rows_per_minute, shares, size=intervals)
            if section.sum is not None and section.sum_sq is not None:
                std = section.bins.std() or 1.0
                sums[:, section.sum] = rng.normal(0, std * np.sqrt(rows_per_minute), intervals)
                sums[:, section.sum_sq] = rows_per_minute * std**2
        latency = np.zeros((intervals, 114), dtype=np.int64)
        latency[:, 40:50] = rng.multinomial(rows_per_minute, np.full(10, 0.1), size=intervals)
        writer = MonitoringStore(store)
        chunk: list[IntervalRow] = []
        for i in range(intervals):
            chunk.append(
                IntervalRow(
                    model="wide",
                    version=record.version,
                    start=start + timedelta(minutes=i),
                    seconds=60.0,
                    worker="bench",
                    requests=rows_per_minute,
                    records=rows_per_minute,
                    errors={},
                    validation_failures=0,
                    problems={},
                    latency=encode_counts(latency[i]),
                    counts=encode_counts(ints[i]),
                    sums=encode_floats(sums[i]),
                )
            )
            if len(chunk) == 5000:
                writer.insert_intervals(chunk)
                chunk = []
        writer.insert_intervals(chunk)
        fill = time.perf_counter() - t0
        monitor = Monitor(store)
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            report = monitor.report("wide", window=timedelta(days=days), now=now)
            timings.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        monitor.rows.read_intervals("wide", record.version, start, now)
        read = time.perf_counter() - t0
        store.close()
    assert report["window"]["intervals"] == intervals
    return {
        "intervals": float(intervals),
        "features": float(features),
        "fill_s": fill,
        "read_rows_s": read,
        "report_s_best": min(timings),
        "report_s_median": float(np.median(timings)),
        "charts": float(len(report["control"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print("1. request-path cost, batches of 32 records (us per record; target < 20)")
    for label, us in observer_cost().items():
        print(f"   {label:<52} {us:6.2f} us")
    print(f"2. report over {args.days} days of one-minute profiles, {args.features} features")
    figures = report_cost(args.database_url, args.days, args.features)
    for key, value in figures.items():
        print(f"   {key:<20} {value:.3f}" if key.endswith("_s") or "_s_" in key else
              f"   {key:<20} {value:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
