"""The collector folds served batches into interval rows; the monitor reports from them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from plinth.core.interval import ProfileLayout, decode_counts, encode_counts
from plinth.core.profile import Profile
from plinth.errors import PlinthError, UnknownBaselineError
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.monitoring.report import Monitor
from plinth.services.monitoring.report_html import render_html
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.scoring import Job, score
from plinth.store import Store
from plinth.store.monitoring import MonitoringStore
from tests.support import churn_model, churn_table

T0 = 1_700_000_040.0  # a minute boundary


class Clock:
    """A settable clock: the collector's interval boundaries follow it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def churn(registry: Registry) -> ServedModel:
    train = churn_table()
    record = registry.register(churn_model(train), name="churn", train=train, target="churn")
    return registry.load(record)


def _records(seed: int, rows: int, **shift: Any) -> list[dict[str, Any]]:
    frame = churn_table(seed, rows).drop(columns=["churn"])
    for column, change in shift.items():
        frame[column] = change(frame[column])
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.astype(object).to_dict("records")
    ]


def _serve(model: ServedModel, collector: MonitorCollector, records: list[Any]) -> None:
    """Score in requests of 20 records, as the batcher would, and count the replies."""
    jobs = [
        Job(records[i : i + 20], f"r{i}", time.perf_counter(), time.perf_counter() + 30)
        for i in range(0, len(records), 20)
    ]
    results = score(model, jobs, [collector])
    collector.observe_replies(model, [(result, 0.004) for result in results])


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_collector_flushes_finished_intervals_only(store: Store, churn: ServedModel) -> None:
    clock = Clock(T0 + 5)
    collector = MonitorCollector(store, interval_s=60, clock=clock, worker="w1")
    _serve(churn, collector, _records(1, 100))
    assert collector.flush() == 0  # the interval is still open
    clock.now = T0 + 65
    _serve(churn, collector, _records(2, 40))
    assert collector.flush() == 1
    rows = MonitoringStore(store).read_intervals("churn", 1, _at(T0), _at(T0 + 120))
    assert [(r.start, r.records, r.requests, r.worker) for r in rows] == [(_at(T0), 100, 5, "w1")]
    assert collector.flush(final=True) == 1  # shutdown writes the open interval too
    rows = MonitoringStore(store).read_intervals("churn", 1, _at(T0), _at(T0 + 120))
    assert [r.records for r in rows] == [100, 40]


def test_interval_profile_equals_a_profile_of_the_served_rows(
    store: Store, churn: ServedModel
) -> None:
    clock = Clock(T0)
    collector = MonitorCollector(store, interval_s=60, clock=clock)
    records = _records(3, 200)
    _serve(churn, collector, records)
    collector.flush(final=True)
    reference = Profile.from_dict(churn.record.metadata["reference_profile"])
    data = Monitor(store).window(churn.record, ProfileLayout(reference), _at(T0), _at(T0 + 60))
    stored = data.profile(ProfileLayout(reference))
    expected = reference.empty_like()
    expected.update(churn.contract.apply(records).frame)
    for name, bins in expected.features_.items():
        assert stored.features_[name].counts.tolist() == bins.counts.tolist()
        assert stored.features_[name].nulls == bins.nulls
    assert stored.output_ is not None and stored.output_.total == 200
    assert stored.n_rows_ == 200


def test_rows_from_several_workers_add_up(store: Store, churn: ServedModel) -> None:
    clock = Clock(T0 + 1)
    workers = [MonitorCollector(store, interval_s=60, clock=clock, worker=f"w{i}") for i in (1, 2)]
    _serve(churn, workers[0], _records(4, 60))
    _serve(churn, workers[1], _records(5, 100))
    for w in workers:
        w.flush(final=True)
    report = Monitor(store).report("churn", window=timedelta(minutes=1), now=_at(T0 + 60))
    assert report["window"]["intervals"] == 1
    assert report["traffic"]["records"] == 160
    assert report["traffic"]["requests"] == 8
    assert report["drift"]["rows"]["current"] == 160
    assert report["latency"]["count"] == 8
    assert report["latency"]["p50"] == pytest.approx(0.004, rel=0.08)


def test_report_flags_exactly_the_shifted_features(store: Store, churn: ServedModel) -> None:
    clock = Clock(T0)
    collector = MonitorCollector(store, interval_s=60, clock=clock)
    for minute in range(5):
        clock.now = T0 + 60 * minute
        _serve(churn, collector, _records(10 + minute, 300))
    for minute in range(5, 10):
        clock.now = T0 + 60 * minute
        shifted = _records(
            10 + minute,
            300,
            age=lambda s: s + 25,
            city=lambda s: s.where(np.arange(len(s)) % 5 != 0, "rome"),
        )
        _serve(churn, collector, shifted)
    collector.flush(final=True)
    monitor = Monitor(store)
    normal = monitor.report("churn", window=timedelta(minutes=5), now=_at(T0 + 300))
    assert normal["drift"]["drifted_features"] == []
    assert normal["alerts"] == []
    shifted = monitor.report("churn", window=timedelta(minutes=5), now=_at(T0 + 600))
    assert shifted["drift"]["drifted_features"] == ["age", "city"]
    methods = {
        (f["feature"], r["method"])
        for f in shifted["drift"]["features"]
        for r in f["results"]
        if r["drifted"]
    }
    assert ("city", "unseen_rate") in methods
    drifted = [name for name, h in shifted["histograms"].items() if h["drifted"]]
    assert drifted == ["age", "city"]  # listed first; the stable features follow
    assert len(shifted["histograms"]) == len(shifted["drift"]["features"])
    hist = shifted["histograms"]["city"]
    assert hist["labels"][-2:] == ["(other)", "(null)"]
    assert sum(hist["current"]) == 1500
    # Against the previous window, the shift shows up too.
    previous = monitor.report(
        "churn", window=timedelta(minutes=5), now=_at(T0 + 600), baseline="previous"
    )
    assert previous["drift"]["drifted_features"] == ["age", "city"]
    # The control chart of age's per-interval mean leaves its limits.
    charts = {(c["statistic"], c["section"]): c for c in shifted["control"]}
    assert charts[("mean", "age")]["breach"] is True
    assert charts[("mean", "tenure")]["breach"] is False
    assert ("null_rate", "income") in charts and ("mean", "confidence") in charts
    page = render_html(shifted)
    assert page.count("<svg") == len(shifted["histograms"])  # stable features drawn too
    assert page.count("drifted</span></figcaption>") == 2
    assert "churn:1" in page and "unseen_rate" in page
    assert "<script" not in page and "href=" not in page  # self-contained
    assert "intervals of 1 min" in page


def test_a_window_too_small_to_judge_says_so(store: Store, churn: ServedModel) -> None:
    collector = MonitorCollector(store, interval_s=60, clock=Clock(T0))
    _serve(churn, collector, _records(8, 20))  # below DriftConfig.min_values (30)
    collector.flush(final=True)
    report = Monitor(store).report("churn", window=timedelta(minutes=1), now=_at(T0 + 60))
    verdicts = {
        (f["feature"], r["method"]): r["verdict"]
        for f in report["drift"]["features"]
        for r in f["results"]
    }
    assert verdicts[("age", "ks")] == verdicts[("city", "chi_square")] == "insufficient"
    assert verdicts[("city", "unseen_rate")] == "stable"  # rate tests are exact at any size
    assert report["drift"]["drifted_features"] == []
    assert "too few values" in render_html(report)


def test_error_and_validation_rates(store: Store, churn: ServedModel) -> None:
    clock = Clock(T0)
    collector = MonitorCollector(store, interval_s=60, clock=clock)
    good = _records(6, 60)
    bad = [{**r, "age": "old"} for r in _records(7, 20)]
    _serve(churn, collector, good + bad)
    collector.flush(final=True)
    report = Monitor(store).report("churn", window=timedelta(minutes=1), now=_at(T0 + 60))
    traffic = report["traffic"]
    assert traffic["requests"] == 4
    assert traffic["validation_failures"] == 1
    assert traffic["validation_rate"] == 0.25
    assert traffic["error_rate"] == 0.0  # a caller's contract mistake is not a model error
    assert traffic["errors"] == {"contract.invalid": 1}
    assert traffic["validation_problems"] == {"age": 20}


def test_report_errors(store: Store, churn: ServedModel) -> None:
    monitor = Monitor(store)
    empty = monitor.report("churn", window=timedelta(hours=1))
    assert empty["drift"] is None and empty["traffic"]["requests"] == 0
    assert empty["latency"]["p99"] is None and empty["control"] == []
    collector = MonitorCollector(store, interval_s=60, clock=Clock(T0))
    _serve(churn, collector, _records(8, 40))
    collector.flush(final=True)
    with pytest.raises(PlinthError) as no_baseline:
        monitor.report("churn", window=timedelta(minutes=1), now=_at(T0 + 60), baseline="previous")
    assert no_baseline.value.code == "monitor.no_baseline"
    with pytest.raises(UnknownBaselineError) as bad:
        monitor.report("churn", window=timedelta(hours=1), baseline="yesterday")  # type: ignore[arg-type]
    assert bad.value.code == "monitor.invalid_baseline"
    with pytest.raises(PlinthError) as missing:
        monitor.report("nope", window=timedelta(hours=1))
    assert missing.value.code == "registry.model_not_found"


def test_count_encoding_round_trips() -> None:
    for top in (0, 255, 256, 70_000, 5_000_000_000):
        values = np.asarray([0, top, 3], dtype=np.int64)
        assert decode_counts(encode_counts(values)).tolist() == values.tolist()
    assert len(encode_counts(np.full(100, 7))) == 101  # one byte per small count
    with pytest.raises(ValueError, match="non-negative"):
        encode_counts(np.asarray([-1]))


def test_lease_has_one_holder_until_it_expires(store: Store) -> None:
    rows = MonitoringStore(store)
    now = _at(T0)
    later = now + timedelta(seconds=30)
    assert rows.acquire_lease("job", "a", now, later)
    assert not rows.acquire_lease("job", "b", now, later)
    assert rows.acquire_lease("job", "a", now, later)  # renewal
    assert rows.acquire_lease("job", "b", later + timedelta(seconds=1), later + timedelta(60))
    assert not rows.acquire_lease("job", "a", later + timedelta(seconds=2), later)
    rows.release_lease("job", "b")
    assert rows.acquire_lease("job", "a", later, later + timedelta(seconds=5))


def test_collector_rejects_a_bad_interval(store: Store) -> None:
    with pytest.raises(PlinthError) as bad:
        MonitorCollector(store, interval_s=0)
    assert bad.value.code == "config.invalid"


def test_observer_ignores_versions_without_reference(store: Store, churn: ServedModel) -> None:
    bare = ServedModel(
        record=type(churn.record)(**{**churn.record.__dict__, "metadata": {}}),
        flavor=churn.flavor,
        contract=churn.contract,
        output=churn.output,
    )
    collector = MonitorCollector(store, interval_s=60, clock=Clock(T0))
    _serve(bare, collector, _records(9, 20))
    collector.flush(final=True)
    rows = MonitoringStore(store).read_intervals("churn", 1, _at(T0), _at(T0 + 60))
    assert [(r.records, r.counts) for r in rows] == [(20, None)]


def test_a_batch_of_replies_counts_as_its_replies_one_by_one(
    store: Store, churn: ServedModel
) -> None:
    records = _records(8, 60) + [{**r, "age": "old"} for r in _records(9, 20)]
    jobs = [
        Job(records[i : i + 10], f"r{i}", time.perf_counter(), time.perf_counter() + 30)
        for i in range(0, len(records), 10)
    ]
    results = score(churn, jobs)
    seconds = [0.001 * (i + 1) for i in range(len(results))]
    one = MonitorCollector(None, interval_s=60, clock=Clock(T0))
    batch = MonitorCollector(None, interval_s=60, clock=Clock(T0))
    for result, s in zip(results, seconds, strict=True):
        one.observe_reply(churn, result, s)
    batch.observe_replies(churn, list(zip(results, seconds, strict=True)))
    [a], [b] = one._open.values(), batch._open.values()
    assert (a.requests, a.records, a.errors, a.validation_failures, a.problems) == (
        b.requests,
        b.records,
        b.errors,
        b.validation_failures,
        b.problems,
    )
    assert a.requests == 8 and a.records == 60 and a.validation_failures == 2
    assert a.latency.counts.tolist() == b.latency.counts.tolist()
