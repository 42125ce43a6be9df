"""Hourly roll-ups of interval rows: nothing lost, nothing counted twice, fewer rows to read.

Minute rows of finished hours are merged into one row per (model, version, hour); the report
reads roll-ups for old hours and minute rows for recent ones. Concurrent writers and
concurrent roll-ups (threads, each with its own Store, like separate processes) must never
count a row twice, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from plinth.core.interval import LATENCY_BOUNDS, decode_counts, encode_counts, encode_floats
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.monitoring.report import Monitor
from plinth.services.monitoring.rollup import ROLLUP_EVERY_S, ROLLUP_LEASE, prune_intervals, roll_up
from plinth.services.registry.versions import Registry, ServedModel
from plinth.store import Store
from plinth.store.monitoring import ROLLUP_SECONDS, ROLLUP_WORKER, IntervalRow, MonitoringStore
from tests.services.monitoring.test_monitoring import Clock, _at, _records, _serve
from tests.support import churn_model, churn_table

H = 1_700_002_800.0  # an hour boundary (UTC)


@pytest.fixture
def churn(registry: Registry) -> ServedModel:
    train = churn_table()
    record = registry.register(churn_model(train), name="churn", train=train, target="churn")
    return registry.load(record)


def _traffic(
    store: Store, model: ServedModel, clock: Clock, minutes: list[int], workers: int = 2
) -> None:
    """Serve a few requests at each of ``minutes`` (after H) from several workers."""
    collectors = [
        MonitorCollector(store, interval_s=60, clock=clock, worker=f"w{i}") for i in range(workers)
    ]
    for k, minute in enumerate(minutes):
        clock.now = H + 60 * minute + 1
        for i, collector in enumerate(collectors):
            records = _records(100 + 10 * k + i, 40)
            if k % 3 == 0:
                records[0] = {**records[0], "age": "old"}  # a contract failure now and then
            _serve(model, collector, records)
    for collector in collectors:
        collector.flush(final=True)


def _same_numbers(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["traffic"] == b["traffic"]
    assert a["latency"] == b["latency"]
    assert a["drift"]["rows"] == b["drift"]["rows"]
    assert a["drift"]["drifted_features"] == b["drift"]["drifted_features"]
    for fa, fb in zip(a["drift"]["features"], b["drift"]["features"], strict=True):
        for ra, rb in zip(fa["results"], fb["results"], strict=True):
            assert ra["method"] == rb["method"]
            assert ra["n_current"] == rb["n_current"]
            assert ra["score"] == pytest.approx(rb["score"], rel=1e-9, abs=1e-12)


def test_roll_up_keeps_every_number_and_reads_hourly(store: Store, churn: ServedModel) -> None:
    clock = Clock(H)
    _traffic(store, churn, clock, [0, 20, 40, 61, 95, 130, 170])  # minutes in hours 0, 1 and 2
    monitor = Monitor(store)
    now = _at(H + 5 * 3600)
    before = monitor.report("churn", window=timedelta(hours=5), now=now)
    assert before["window"]["resolution_s"] == 60
    assert before["window"]["intervals"] == 7
    rows = MonitoringStore(store)
    minute_rows = len(rows.read_intervals("churn", 1, _at(H), now))
    assert minute_rows == 14  # two workers

    assert roll_up(store, now=now) == minute_rows
    hourly = rows.read_intervals("churn", 1, _at(H), now)
    assert [(r.start, r.seconds, r.worker) for r in hourly] == [
        (_at(H + 3600 * h), ROLLUP_SECONDS, ROLLUP_WORKER) for h in range(3)
    ]
    after = monitor.report("churn", window=timedelta(hours=5), now=now)
    assert after["window"]["resolution_s"] == ROLLUP_SECONDS
    assert after["window"]["intervals"] == 3
    _same_numbers(before, after)
    assert roll_up(store, now=now) == 0  # idempotent: nothing left to merge


def test_recent_minutes_stay_and_join_rolled_hours_in_a_report(
    store: Store, churn: ServedModel
) -> None:
    clock = Clock(H)
    _traffic(store, churn, clock, [5, 65, 125, 185, 245], workers=1)  # hours 0..4
    monitor = Monitor(store)
    now = _at(H + 4 * 3600 + 1800)  # 04:30 after H: hours 0 and 1 ended over 2 h ago
    before = monitor.report("churn", window=timedelta(hours=6), now=now)
    assert roll_up(store, now=now) == 2
    kinds = [r.seconds for r in MonitoringStore(store).read_intervals("churn", 1, _at(H), now)]
    assert kinds == [ROLLUP_SECONDS, ROLLUP_SECONDS, 60, 60, 60]
    mixed = monitor.report("churn", window=timedelta(hours=6), now=now)
    _same_numbers(before, mixed)
    assert (mixed["window"]["resolution_s"], mixed["window"]["intervals"]) == (3600, 5)
    recent = monitor.report("churn", window=timedelta(hours=1), now=now)
    assert (recent["window"]["resolution_s"], recent["window"]["intervals"]) == (60, 1)
    # Control charts still run on the hourly points.
    charts = {(c["statistic"], c["section"]): c for c in mixed["control"]}
    assert charts[("mean", "age")]["points"] == 5


def test_a_late_minute_row_joins_its_hour(store: Store, churn: ServedModel) -> None:
    clock = Clock(H)
    _traffic(store, churn, clock, [10, 30], workers=1)
    now = _at(H + 4 * 3600)
    assert roll_up(store, now=now) == 2
    # A worker whose store was down flushes a minute of that hour only now.
    late = MonitorCollector(store, interval_s=60, clock=Clock(H + 50 * 60), worker="late")
    _serve(churn, late, _records(7, 20))
    late.flush(final=True)
    assert roll_up(store, now=now) == 1
    (hour,) = MonitoringStore(store).read_intervals("churn", 1, _at(H), now)
    # 2 + 2 requests of 20 records (one refused by the contract), then the late 20 records.
    assert (hour.seconds, hour.records, hour.requests) == (ROLLUP_SECONDS, 80, 5)


def _row(start: datetime, k: int) -> IntervalRow:
    counts = np.asarray([k % 7, 1, 2, k % 3], dtype=np.int64)
    latency = np.zeros(LATENCY_BOUNDS.size + 1, dtype=np.int64)
    latency[40 + k % 5] = 1
    return IntervalRow(
        model="m", version=1, start=start, seconds=60.0, worker=f"w{k}", requests=1,
        records=k % 4 + 1, errors={"model.error": 1} if k % 5 == 0 else {},
        validation_failures=0, problems={}, latency=encode_counts(latency),
        counts=encode_counts(counts), sums=encode_floats(np.asarray([0.5 * k])),
    )  # fmt: skip


def test_concurrent_writers_and_roll_ups_never_count_twice(database_url: str) -> None:
    Store(database_url).close()  # migrate once
    rng = np.random.default_rng(0)
    per_writer = 60
    minutes = rng.integers(0, 6 * 60, (3, per_writer)).tolist()  # six hours
    planned = [
        [_row(_at(H + 60 * m), w * per_writer + i) for i, m in enumerate(minutes[w])]
        for w in range(3)
    ]
    writing = threading.Barrier(5)
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def write(rows: list[IntervalRow]) -> None:
        with Store(database_url) as own:
            writing.wait()
            for r in rows:
                MonitoringStore(own).insert_intervals([r])

    def roll() -> None:
        with Store(database_url) as own:
            writing.wait()
            while not writers_done.is_set():
                roll_up(own, now=_at(H + 12 * 3600), lease=False)

    def guarded(target: Any, *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        return threading.Thread(target=run)

    writers = [guarded(write, rows) for rows in planned]
    rollers = [guarded(roll) for _ in range(2)]
    for t in writers + rollers:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    for t in rollers:
        t.join()
    assert errors == []
    with Store(database_url) as store:
        roll_up(store, now=_at(H + 12 * 3600), lease=False)
        stored = MonitoringStore(store).read_intervals("m", 1, _at(H), _at(H + 12 * 3600))
    everything = [r for rows in planned for r in rows]
    assert all(r.seconds == ROLLUP_SECONDS for r in stored)
    assert len({r.start for r in stored}) == len(stored)  # one row per hour
    assert {r.start for r in stored} == {r.start.replace(minute=0) for r in everything}
    assert sum(r.records for r in stored) == sum(r.records for r in everything)
    assert sum(r.requests for r in stored) == len(everything)
    assert sum(r.errors.get("model.error", 0) for r in stored) == sum(
        r.errors.get("model.error", 0) for r in everything
    )
    assert np.sum([decode_counts(r.counts) for r in stored if r.counts], axis=0).tolist() == (
        np.sum([decode_counts(r.counts) for r in everything if r.counts], axis=0).tolist()
    )
    assert sum(decode_counts(r.latency).sum() for r in stored) == len(everything)
    total_sum = sum(float(np.frombuffer(r.sums or b"", "<f8").sum()) for r in stored)
    assert total_sum == pytest.approx(sum(0.5 * k for k in range(3 * per_writer)))


def test_one_roller_at_a_time_under_the_lease(store: Store) -> None:
    rows = MonitoringStore(store)
    rows.insert_intervals([_row(_at(H + 60 * i), i) for i in range(5)])
    now = _at(H + 5 * 3600)
    assert rows.acquire_lease(ROLLUP_LEASE, "someone-else", now, now + timedelta(minutes=5))
    assert roll_up(store, now=now) is None  # another process is rolling up
    assert len(rows.read_intervals("m", 1, _at(H), now)) == 5
    rows.release_lease(ROLLUP_LEASE, "someone-else")
    assert roll_up(store, now=now) == 5
    assert len(rows.read_intervals("m", 1, _at(H), now)) == 1
    assert rows.acquire_lease(ROLLUP_LEASE, "next", now, now)  # released after the work


def test_rows_that_do_not_line_up_are_left_alone(store: Store) -> None:
    rows = MonitoringStore(store)
    odd = _row(_at(H + 120), 2)
    odd = IntervalRow(**{**odd.__dict__, "counts": encode_counts(np.asarray([1, 2, 3]))})
    rows.insert_intervals([_row(_at(H + 60), 1), odd, _row(_at(H + 3600), 3)])
    now = _at(H + 5 * 3600)
    assert roll_up(store, now=now) == 1  # only hour H+1; hour H cannot be merged
    left = rows.read_intervals("m", 1, _at(H), now)
    assert [(r.start, r.seconds) for r in left] == [
        (_at(H + 60), 60),
        (_at(H + 120), 60),
        (_at(H + 3600), ROLLUP_SECONDS),
    ]
    assert roll_up(store, now=now) == 0  # and the next pass does not loop on them


def test_collector_rolls_up_from_its_flush_task(store: Store, churn: ServedModel) -> None:
    clock = Clock(H + 30)
    collector = MonitorCollector(store, interval_s=60, clock=clock)
    _serve(churn, collector, _records(1, 40))
    collector.flush(final=True)
    clock.now = H + 3 * 3600 + 5
    assert collector.maybe_roll_up() == 1
    clock.now += ROLLUP_EVERY_S / 2
    assert collector.maybe_roll_up() is None  # looked recently: not yet
    clock.now += ROLLUP_EVERY_S
    assert collector.maybe_roll_up() == 0
    assert MonitorCollector(None).maybe_roll_up() is None  # no store: nothing to do


def test_prune_rolls_up_then_keeps_roll_ups_longer(store: Store) -> None:
    rows = MonitoringStore(store)
    day = 86_400
    old = [_row(_at(H + 60 * i), i) for i in range(3)]  # hour H, 40 days before "now"
    recent = [_row(_at(H + 39 * day + 60 * i), 10 + i) for i in range(3)]  # a day before
    rows.insert_intervals(old + recent)
    now = _at(H + 40 * day)
    done = prune_intervals(
        store, minutes_before=now - timedelta(days=30), hours_before=now - timedelta(days=400),
        now=now,
    )  # fmt: skip
    assert (done.rolled_up, done.minutes_deleted, done.hours_deleted) == (6, 0, 0)
    assert [r.start for r in rows.read_intervals("m", 1, _at(H), now)] == [
        _at(H),
        _at(H + 39 * day),
    ]
    # A minute row nobody rolled up (recent, so roll-up leaves it) goes with --older-than.
    rows.insert_intervals([_row(now - timedelta(minutes=30), 99)])
    done = prune_intervals(
        store, minutes_before=now, hours_before=now - timedelta(days=35), now=now
    )
    assert (done.rolled_up, done.minutes_deleted, done.hours_deleted) == (0, 1, 1)
    assert [r.start for r in rows.read_intervals("m", 1, _at(H), now)] == [_at(H + 39 * day)]
