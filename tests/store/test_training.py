"""The training-job table: one active job per model, leases, and point-in-time labels."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from plinth.core.ids import new_id
from plinth.errors import JobLeaseLostError
from plinth.store import PredictionRecord, Store, VersionRecord
from plinth.store.feedback import FeedbackStore, LabelRow
from plinth.store.training import JobRow, TrainingStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def job(model: str = "m", trigger: str = "manual") -> JobRow:
    return JobRow(new_id(), model, "queued", trigger, "test", False, T0)


def test_a_second_job_for_a_model_is_not_queued_while_one_is_active(store: Store) -> None:
    jobs = TrainingStore(store)
    first, created = jobs.enqueue(job())
    assert created and first.state == "queued"
    again, created = jobs.enqueue(job(trigger="drift"))
    assert not created and again.id == first.id
    other, created = jobs.enqueue(job(model="other"))
    assert created
    running = jobs.claim("w1", T0, T0 + timedelta(minutes=1), model="m")
    assert running is not None and running.id == first.id and running.state == "running"
    assert not jobs.enqueue(job())[1]  # still active while running
    assert jobs.finish(first.id, "w1", "succeeded", T0 + timedelta(seconds=5), version=2)
    assert jobs.enqueue(job())[1]  # finished: the next one may start
    assert [j.model for j in jobs.jobs()] == ["m", "other", "m"]
    assert jobs.get(first.id).version == 2
    assert other.id in {j.id for j in jobs.jobs(model="other")}


def test_two_concurrent_claimers_one_wins(database_url: str) -> None:
    stores = [Store(database_url), Store(database_url)]
    try:
        queued, _ = TrainingStore(stores[0]).enqueue(job())
        barrier = threading.Barrier(2)
        won: list[JobRow | None] = [None, None]

        def claim(i: int) -> None:
            barrier.wait()
            won[i] = TrainingStore(stores[i]).claim(f"w{i}", T0, T0 + timedelta(minutes=1))

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [w for w in won if w is not None]
        assert len(winners) == 1 and winners[0].id == queued.id
        assert TrainingStore(stores[0]).get(queued.id).holder == winners[0].holder
    finally:
        for s in stores:
            s.close()


def test_an_expired_lease_fails_the_job_and_its_worker_can_do_nothing(store: Store) -> None:
    jobs = TrainingStore(store)
    queued, _ = jobs.enqueue(job())
    jobs.claim("w1", T0, T0 + timedelta(seconds=30))
    assert jobs.renew(queued.id, "w1", T0 + timedelta(seconds=60), data={"rows": 3})
    assert not jobs.renew(queued.id, "intruder", T0 + timedelta(hours=1))
    assert jobs.expire(T0 + timedelta(seconds=59)) == []
    expired = jobs.expire(T0 + timedelta(seconds=61))
    assert [j.id for j in expired] == [queued.id]
    failed = jobs.get(queued.id)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error["code"] == "training.lease_lost" and failed.data == {"rows": 3}
    assert not jobs.finish(queued.id, "w1", "succeeded", T0 + timedelta(seconds=62))
    assert jobs.get(queued.id).state == "failed"


def _version(sha: str) -> VersionRecord:
    return VersionRecord("m", 0, sha, "sklearn", "regression", T0, {"lineage": {}})


def test_registration_rolls_back_when_the_job_lost_its_lease(store: Store) -> None:
    jobs = TrainingStore(store)
    queued, _ = jobs.enqueue(job())
    jobs.claim("w1", T0, T0 + timedelta(seconds=30))
    late = T0 + timedelta(seconds=31)
    with pytest.raises(JobLeaseLostError):
        store.add_version(_version("a" * 64), guard=jobs.registration_guard(queued.id, "w1", late))
    assert store.find_version("m", "a" * 64) is None
    added = store.add_version(
        _version("b" * 64), guard=jobs.registration_guard(queued.id, "w1", T0)
    )
    assert jobs.get(queued.id).version == added.version == 1


def _log(store: Store, pid: str, ts: datetime, x: float) -> None:
    store.insert_predictions(
        [
            PredictionRecord(
                id=pid,
                ts=ts,
                model="m",
                version=1,
                sha256="s",
                route="champion",
                input={"x": x},
                features={"x": x},
                output={"prediction": 0.0},
                confidence=None,
                latency_ms=1.0,
                warnings=[],
                request_id=f"r-{pid}",
            )
        ]
    )


def _label(store: Store, pid: str, ts: datetime, label: float, received: datetime) -> None:
    row = LabelRow(pid, "m", 1, ts, {"prediction": 0.0}, label, "caller", received, received)
    FeedbackStore(store).upsert_labels([row], received)


def test_labelled_traffic_is_point_in_time(store: Store) -> None:
    cutoff = T0 + timedelta(hours=10)
    for i in range(4):
        _log(store, f"p{i}", T0 + timedelta(hours=i), float(i))
    _log(store, "after", cutoff + timedelta(minutes=1), 9.0)  # served after the cut-off
    _label(store, "p0", T0, 10.0, T0 + timedelta(hours=1))  # known in time
    _label(store, "p1", T0, 11.0, cutoff + timedelta(hours=1))  # arrived after the cut-off
    _label(store, "p2", T0, 12.0, T0 + timedelta(hours=3))  # known, then corrected late:
    _label(store, "p2", T0, 99.0, cutoff + timedelta(hours=2))  # the old one is used
    _label(store, "after", cutoff, 5.0, cutoff + timedelta(minutes=2))
    rows = TrainingStore(store).labelled_traffic("m", T0 - timedelta(days=1), cutoff)
    assert [(r.prediction_id, r.features, r.label) for r in rows] == [
        ("p0", {"x": 0.0}, 10.0),
        ("p2", {"x": 2.0}, 12.0),
    ]
    later = TrainingStore(store).labelled_traffic("m", T0, cutoff + timedelta(hours=3))
    assert {r.prediction_id: r.label for r in later} == {
        "p0": 10.0, "p1": 11.0, "p2": 99.0, "after": 5.0,
    }  # fmt: skip
    assert TrainingStore(store).labels_received("m", T0 + timedelta(hours=2), cutoff) == 0
    assert TrainingStore(store).labels_received("m", None, cutoff + timedelta(hours=5)) == 4
