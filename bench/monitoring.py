"""Monitoring benchmark: cost on the request path, a 30-day drift report, and Evidently.

    .venv/bin/python bench/monitoring.py [--parts 1,2,3] [--days 30] [--features 50]
        [--database-url URL] [--skip-evidently] [--evidently-rows 1000000]

1. Per-record cost of what serving adds for monitoring, on frames built by the input
   contract exactly as serving builds them (30 features: 20 float, 5 integer, 5 string
   categorical; plus the prediction and its confidence): the batch observer folding a batch
   into the interval profile, and per request the reply hook and the Prometheus updates
   serving makes. Reported for one request of 32 records, for 32 one-record requests that
   the batcher scores together, and for a lone one-record request. Target: < 20 us/record.
2. A drift report (drift on every feature, latency quantiles, control charts) over 30 days
   of one-minute interval profiles of a 50-feature model: first over the 43,200 minute rows
   as written, then after the hourly roll-up (what a server's store holds), with the
   roll-up's own cost. Target: < 1 s.
3. The same drift from raw rows: 1,000,000 rows x the same 50 features against the same
   20,000-row reference, by Plinth (fold the rows into a profile, then ``dataset_drift``)
   and by Evidently 0.7 (``DataDriftPreset``) in its own virtual environment
   (bench/.venvs/evidently, created on first use; it needs pandas<3). Each runs in a
   subprocess so its peak memory (max RSS) is its own. Evidently takes minutes and a few
   GB; ``--skip-evidently`` leaves it out.

Prints the figures; nothing is asserted (docs/monitoring.md has recorded numbers). Timings
are the best and the median of several rounds; on a shared machine expect noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.contract import infer_contract
from plinth.core.interval import LATENCY_BOUNDS, ProfileLayout, encode_counts, encode_floats
from plinth.core.output import OutputContract
from plinth.core.profile import Profile
from plinth.services import telemetry
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.monitoring.report import Monitor
from plinth.services.monitoring.rollup import roll_up
from plinth.services.registry.versions import ServedModel
from plinth.services.serving.scoring import JobResult
from plinth.store import Store, VersionRecord
from plinth.store.monitoring import IntervalRow, MonitoringStore

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


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


def _per_call_us(step: Callable[[int], None], calls: int, rounds: int = 7) -> tuple[float, float]:
    """(best, median) microseconds per call of ``step`` over ``rounds`` timed rounds."""
    for i in range(max(calls // 10, 20)):  # warm up
        step(i)
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(calls):
            step(i)
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return min(timings), statistics.median(timings)


# ---------------------------------------------------------------------- 1. request path


def observer_cost(calls: int = 2000) -> dict[str, tuple[float, float]]:
    """Microseconds per record (best, median) on the request path; see the module docstring."""
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

    def batches(size: int) -> list[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
        # Frames as serving builds them: records through the contract, training dtypes.
        out = []
        for _ in range(16):
            records = _frame(rng, size, 20, 5, 5).to_dict("records")
            frame = model.contract.apply(records).frame
            proba = rng.dirichlet([1, 1], size)
            out.append((frame, labels[proba.argmax(1)], proba))
        return out

    by32, by1 = batches(32), batches(1)
    one, whole = JobResult(answers=[{}]), JobResult(answers=[{}] * 32)

    def fold(data: list[tuple[pd.DataFrame, np.ndarray, np.ndarray]]) -> Callable[[int], None]:
        return lambda i: collector(model, *data[i % 16])

    # What serving does per answered request (plinth/services/serving/batcher.py, Batcher._count):
    # Prometheus children looked up once per (route, outcome), then three updates, then the
    # collector's reply hook.
    requests = telemetry.REQUESTS.labels("bench", "1", "champion", "ok")
    records = telemetry.RECORDS.labels("bench", "1", "champion")
    latency = telemetry.REQUEST_SECONDS.labels("bench")

    def reply(result: JobResult, prometheus: bool = True) -> Callable[[int], None]:
        def step(i: int) -> None:
            if prometheus:
                requests.inc()
                records.inc(len(result.answers))
                latency.observe(0.003)
            collector.observe_reply(model, result, 0.003)

        return step

    fold32 = _per_call_us(fold(by32), calls)
    fold1 = _per_call_us(fold(by1), calls)
    reply1 = _per_call_us(reply(one), calls * 8)
    reply32 = _per_call_us(reply(whole), calls * 8)
    hook = _per_call_us(reply(one, prometheus=False), calls * 8)

    def per(a: tuple[float, float], k: float) -> tuple[float, float]:
        return a[0] / k, a[1] / k

    def add(*parts: tuple[float, float]) -> tuple[float, float]:
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    return {
        "observer: fold a batch of 32 records": per(fold32, 32),
        "observer: fold a batch of 1 record": fold1,
        "reply hook alone, per request": hook,
        "reply hook + Prometheus, per request": reply1,
        "total: 1 request of 32 records": add(per(fold32, 32), per(reply32, 32)),
        "total: 32 one-record requests, batched": add(per(fold32, 32), reply1),
        "total: 1 one-record request alone": add(fold1, reply1),
    }


# ---------------------------------------------------------------------- 2. the report


def _fill(store: Store, layout: ProfileLayout, version: int, start: datetime, minutes: int) -> None:
    """One row per minute, counts drawn from the reference shares (10 records a second)."""
    rng = np.random.default_rng(1)
    per_minute = 600
    ints = np.zeros((minutes, layout.int_size), dtype=np.int64)
    sums = np.zeros((minutes, layout.float_size))
    for section in layout.sections:
        shares = section.bins.counts / max(section.bins.counts.sum(), 1)
        ints[:, section.counts] = rng.multinomial(per_minute, shares, size=minutes)
        if section.sum is not None and section.sum_sq is not None:
            std = section.bins.std() or 1.0
            sums[:, section.sum] = rng.normal(0, std * np.sqrt(per_minute), minutes)
            sums[:, section.sum_sq] = per_minute * std**2
    latency = np.zeros((minutes, LATENCY_BOUNDS.size + 1), dtype=np.int64)
    latency[:, 40:50] = rng.multinomial(per_minute, np.full(10, 0.1), size=minutes)
    writer = MonitoringStore(store)
    chunk: list[IntervalRow] = []
    for i in range(minutes):
        chunk.append(
            IntervalRow(
                model="wide",
                version=version,
                start=start + timedelta(minutes=i),
                seconds=60.0,
                worker="bench",
                requests=per_minute,
                records=per_minute,
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


def report_cost(database_url: str | None, days: int, features: int) -> dict[str, float]:
    """Seconds to build a report over ``days`` of one-minute profiles, before and after roll-up."""
    rng = np.random.default_rng(1)
    floats, cats = features * 4 // 5, features - features * 4 // 5
    train = _frame(rng, 20_000, floats, 0, cats)
    proba = rng.dirichlet([1, 1], 20_000)
    labels = np.asarray(["no", "yes"], dtype=object)
    reference = Profile.fit(
        train, _kinds(train), outputs=labels[proba.argmax(1)], output_kind="categorical",
        confidence=proba.max(1), classes=["no", "yes"],
    )  # fmt: skip
    layout = ProfileLayout(reference)
    figures: dict[str, float] = {"features": float(features)}
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url, sqlite_synchronous="NORMAL")
        record = store.add_version(_model(reference, train, "wide").record)
        minutes = days * 24 * 60
        now = datetime(2026, 1, 31, tzinfo=UTC)
        start = now - timedelta(days=days)
        t0 = time.perf_counter()
        _fill(store, layout, record.version, start, minutes)
        figures["fill_s"] = time.perf_counter() - t0
        monitor = Monitor(store)

        def timed_report(rounds: int) -> tuple[list[float], dict[str, Any]]:
            timings, report = [], {}
            for _ in range(rounds):
                t0 = time.perf_counter()
                report = monitor.report("wide", window=timedelta(days=days), now=now)
                timings.append(time.perf_counter() - t0)
            return timings, report

        before, report = timed_report(2)
        figures["minute_rows"] = float(minutes)
        figures["report_minute_rows_s_best"] = min(before)
        t0 = time.perf_counter()
        merged = roll_up(store, now=now) or 0
        figures["rollup_backlog_s"] = time.perf_counter() - t0
        figures["rolled_up_rows"] = float(merged)
        rows = monitor.rows.read_intervals("wide", record.version, start, now)
        figures["rows_after_rollup"] = float(len(rows))
        after, report = timed_report(5)
        figures["report_s_best"] = min(after)
        figures["report_s_median"] = statistics.median(after)
        t0 = time.perf_counter()
        monitor.rows.read_intervals("wide", record.version, start, now)
        figures["read_rows_s"] = time.perf_counter() - t0
        figures["points"] = float(report["window"]["intervals"])
        figures["charts"] = float(len(report["control"]))
        # Steady state: one more hour of minute rows, rolled up an hour later.
        _fill(store, layout, record.version, now, 60)
        t0 = time.perf_counter()
        one_hour = roll_up(store, now=now + timedelta(hours=3)) or 0
        figures["rollup_one_hour_s"] = time.perf_counter() - t0
        figures["rollup_one_hour_rows"] = float(one_hour)
        store.close()
    return figures


# ---------------------------------------------------------------------- 3. raw rows, Evidently

# Runs in the main venv and in Evidently's: numpy and pandas only. The same seed gives the
# same rows in both. Two numeric and one categorical feature drift in the current rows.
_DATA = """
import numpy as np, pandas as pd

def columns(rng, rows, floats, cats, shift):
    out = {}
    for i in range(floats):
        loc = i + (0.5 * (1 + i % 3) if shift and i < 2 else 0.0)
        out[f"f{i}"] = rng.normal(loc, 1 + i % 3, rows)
    for i in range(cats):
        k = 4 + i
        p = np.full(k, 1.0 / k)
        if shift and i == 0:
            p = np.linspace(1, 3, k); p /= p.sum()
        codes = rng.choice(k, rows, p=p)
        out[f"c{i}"] = pd.Categorical.from_codes(codes, [f"v{j}" for j in range(k)])
    return pd.DataFrame(out)

def data(rows, features):
    floats, cats = features * 4 // 5, features - features * 4 // 5
    rng = np.random.default_rng(7)
    return columns(rng, 20_000, floats, cats, False), columns(rng, rows, floats, cats, True)
"""

_PLINTH = """
import json, resource, sys, time
from plinth.core.drift import dataset_drift
from plinth.core.profile import Profile
rows, features = int(sys.argv[1]), int(sys.argv[2])
reference, current = data(rows, features)
kinds = {c: "numeric" if c[0] == "f" else "categorical" for c in reference.columns}
t0 = time.perf_counter()
ref = Profile.fit(reference, kinds)
live = ref.empty_like()
live.update(current)
folded = time.perf_counter() - t0
result = dataset_drift(ref, live)
total = time.perf_counter() - t0
print(json.dumps({"fold_s": folded, "seconds": total, "drifted": result.drifted_features,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_EVIDENTLY = """
import json, resource, sys, time
import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
rows, features = int(sys.argv[1]), int(sys.argv[2])
reference, current = data(rows, features)
numeric = [c for c in reference.columns if c[0] == "f"]
categorical = [c for c in reference.columns if c[0] == "c"]
before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(current, data_definition=definition),
    Dataset.from_pandas(reference, data_definition=definition),
)
found = snapshot.dict()
seconds = time.perf_counter() - t0
drifted = []
for metric in found.get("metrics", []):
    config = metric.get("config", {})
    value = metric.get("value")
    column = config.get("column")
    threshold = config.get("threshold")
    method = config.get("method", "")
    if column is None or not isinstance(value, (int, float)) or threshold is None:
        continue
    # p-value tests drift below the threshold, distances above it
    is_test = "p_value" in method or method in ("ks", "chisquare", "z", "fisher_exact")
    if (value < threshold) if is_test else (value >= threshold):
        drifted.append(column)
print(json.dumps({"seconds": seconds, "drifted": sorted(set(drifted)),
                  "version": evidently.__version__, "data_peak_mb": before_mb,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(python: Path, script: str, rows: int, features: int, env: dict[str, str]) -> Any:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_DATA + script)
    try:
        done = subprocess.run(
            [str(python), f.name, str(rows), str(features)],
            capture_output=True, text=True, check=False, env=env,
        )  # fmt: skip
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def raw_rows(rows: int, features: int, evidently: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    found: dict[str, Any] = {"plinth": _run(Path(sys.executable), _PLINTH, rows, features, env)}
    if evidently:
        sys.path.insert(0, str(BENCH))
        import sklearn
        from envs import EnvError, ensure_env

        try:
            peer = ensure_env("evidently", sklearn.__version__)
        except EnvError as exc:
            found["evidently"] = {"error": str(exc)}
            return found
        clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        found["evidently"] = _run(peer.python, _EVIDENTLY, rows, features, clean)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--evidently-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--skip-evidently", action="store_true", help="leave out Evidently (minutes, GBs)"
    )
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,2")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    if 1 in parts:
        print("1. request-path cost, microseconds per record: best / median of 7 rounds")
        for label, (best, median) in observer_cost().items():
            print(f"   {label:<44} {best:6.2f} / {median:6.2f} us")
    if 2 in parts:
        print(f"2. report over {args.days} days of one-minute profiles, {args.features} features")
        for key, value in report_cost(args.database_url, args.days, args.features).items():
            shown = f"{value:.3f}" if key.endswith("_s") or "_s_" in key else f"{value:.0f}"
            print(f"   {key:<28} {shown}")
    if 3 not in parts:
        return
    rows = args.evidently_rows
    print(f"3. drift from raw rows: {rows:,} current x {args.features} features, 20,000 reference")
    found = raw_rows(rows, args.features, not args.skip_evidently)
    p = found["plinth"]
    print(
        f"   plinth     {p['seconds']:8.1f} s (fold {p['fold_s']:.1f} s)  "
        f"peak {p['peak_mb']:7.0f} MB  drifted {p['drifted']}"
    )
    e = found.get("evidently")
    if e is None:
        print("   evidently  skipped (--skip-evidently)")
    elif "error" in e:
        print(f"   evidently  could not be installed: {e['error']}")
    else:
        print(
            f"   evidently  {e['seconds']:8.1f} s              peak {e['peak_mb']:7.0f} MB "
            f"(imports + data {e['data_peak_mb']:.0f} MB)  drifted {e['drifted']}  "
            f"[evidently {e['version']}]"
        )


if __name__ == "__main__":
    main()
