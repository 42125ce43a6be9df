"""Training jobs end to end in one process: data, trainer, gate, registration, canary."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from plinth.config.policies import Policies, TrainingData, TrainingPolicy, TrainingTriggers
from plinth.core.gate_policy import GatePolicy
from plinth.core.schedule import Schedule
from plinth.services import audit
from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Deployments
from plinth.services.training.jobs import Retraining
from plinth.store import PredictionRecord, VersionRecord
from plinth.store.feedback import FeedbackStore, LabelRow
from plinth.store.monitoring import MonitoringStore
from plinth.store.training import TrainingStore
from tests.support import regression_table, ridge_model

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def recipe(
    entrypoint: str = "tests.training_support:fit_ridge", **changes: object
) -> TrainingPolicy:
    base = TrainingPolicy(
        entrypoint=entrypoint,
        data=TrainingData(reference=False, window=timedelta(days=7)),
        time_limit=timedelta(seconds=60),
        gate=GatePolicy(bootstrap=500),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def retraining(registry: Registry, policy: TrainingPolicy, clock: Clock, tmp: Path) -> Retraining:
    return Retraining(
        registry.store,
        registry,
        Policies(training_models={"reg": policy}),
        workdir=tmp / "jobs",
        clock=clock,
        code_dir=REPO,
        lease_s=30,
    )


@pytest.fixture
def champion(registry: Registry) -> VersionRecord:
    train = regression_table(rows=300)
    return registry.register(ridge_model(train), name="reg", train=train, target="y")


def shifted_traffic(
    registry: Registry, champion: VersionRecord, n: int = 300, *, shift: float = 5.0
) -> None:
    """Predictions over the last hours whose labels follow a new regime (y + shift)."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = 3 * a - 2 * b + shift + rng.normal(scale=0.1, size=n)
    records = [
        PredictionRecord(
            id=f"p{i:04d}", ts=T0 + timedelta(seconds=30 * i), model="reg",
            version=champion.version, sha256=champion.sha256, route="champion",
            input={"a": a[i], "b": b[i]}, features={"a": float(a[i]), "b": float(b[i])},
            output={"prediction": 3 * a[i] - 2 * b[i]}, confidence=None, latency_ms=1.0,
            warnings=[], request_id=f"r{i}",
        )
        for i in range(n)
    ]  # fmt: skip
    registry.store.insert_predictions(records)
    labels = [
        LabelRow(
            r.id, "reg", r.version, r.ts, r.output, float(y[i]), "caller",
            r.ts + timedelta(minutes=1), r.ts + timedelta(minutes=1),
        )
        for i, r in enumerate(records)
    ]  # fmt: skip
    FeedbackStore(registry.store).upsert_labels(labels, T0)


AFTER = T0 + timedelta(hours=4)


def test_a_better_candidate_is_registered_with_lineage_and_goes_out_as_a_canary(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion)
    service = retraining(registry, recipe(canary_min_requests=5), Clock(AFTER), tmp_path)
    job, created = service.request("reg")
    assert created and job.parent_version == champion.version
    done = service.run_next()
    assert done is not None and done.id == job.id
    assert (done.state, done.outcome, done.version) == ("succeeded", "canary", 2), done.error
    assert done.gate is not None and done.gate["passed"] and done.gate["relative"]["improved"]
    assert done.data is not None and done.data["sources"] == {"traffic": 240}
    assert done.data["holdout_rows"] == 60 and done.data["holdout_source"] == "traffic"
    assert set(done.data["timings"]) == {"data", "train", "gate", "register", "ship"}
    assert done.stage == "canary"
    steps = done.stage_times()
    assert [name for name, _, _ in steps] == [
        "building data", "training", "gating", "registering", "canary"
    ]  # fmt: skip
    assert steps[-1][2] == done.finished_at  # the last step ends with the job
    assert done.gate["registered_holdout"] is None  # the champion was registered without one
    version = registry.store.get_version("reg", 2)
    lineage = version.metadata["lineage"]
    assert lineage["parent_version"] == 1 and lineage["training_job"] == job.id
    assert lineage["trigger"] == "manual" and lineage["seed"] == 0
    assert lineage["data"]["sha256"] == done.data["sha256"] and lineage["data"]["rows"] == 240
    assert lineage["recipe"]["entrypoint"] == "tests.training_support:fit_ridge"
    assert lineage["recipe"]["git"] is not None and "scikit-learn" in lineage["libraries"]
    live = Deployments(registry.store).current("reg")
    assert live is not None and live.spec.champion == 1
    assert live.spec.canary is not None and live.spec.canary.version == 2
    assert live.spec.analysis == {"min_requests": 5}
    # The canary analysis promotes it; the job follows.
    Deployments(registry.store).promote("reg", reason="test")
    assert [(j.id, j.outcome) for j in service.follow()] == [(job.id, "promoted")]


def test_a_worse_candidate_is_rejected_with_numbers_and_not_registered(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion, shift=0.0)
    service = retraining(
        registry, recipe("tests.training_support:fit_mean"), Clock(AFTER), tmp_path
    )
    service.request("reg")
    done = service.run_next()
    assert done is not None and done.state == "rejected" and done.version is None
    assert done.stage == "gating"  # stopped there
    gate = done.gate
    assert gate is not None and not gate["passed"]
    assert gate["relative"]["lower"] > 1 and gate["metrics"]["candidate"]["rmse"] > 1
    assert gate["reasons"][0].startswith("relative change of mean squared error could be")
    assert [v.version for v in registry.store.list_versions("reg")] == [1]
    assert registry.artifacts.path(gate["candidate_sha256"]).is_file()  # kept to look at
    assert Deployments(registry.store).current("reg") is None  # the champion serves on


def test_a_contract_that_drops_a_field_blocks(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion)
    service = retraining(
        registry, recipe("tests.training_support:fit_dropping_b"), Clock(AFTER), tmp_path
    )
    service.request("reg")
    done = service.run_next()
    assert done is not None and done.state == "rejected"
    assert done.gate is not None and done.gate["contract"]["removed"] == ["b"]


@pytest.mark.parametrize(
    ("entrypoint", "code", "says"),
    [
        ("tests.training_support:fit_raises", "training.trainer_failed", "ValueError: cannot fit"),
        ("tests.training_support:fit_killed", "training.trainer_failed", "SIGKILL"),
        ("tests.training_support:fit_hangs", "training.timeout", "time limit of 8 s"),
        ("tests.training_support:fit_greedy", "training.trainer_failed", "MemoryError"),
        ("tests.training_support:nowhere", "training.trainer_failed", "AttributeError"),
    ],
)
def test_a_failing_trainer_fails_the_job_and_leaves_no_version(
    registry: Registry,
    champion: VersionRecord,
    tmp_path: Path,
    entrypoint: str,
    code: str,
    says: str,
) -> None:
    shifted_traffic(registry, champion, n=100)
    limit = timedelta(seconds=8 if entrypoint.endswith("hangs") else 120)
    policy = recipe(entrypoint, time_limit=limit, memory_mb=1024)
    service = retraining(registry, policy, Clock(AFTER), tmp_path)
    service.request("reg")
    done = service.run_next()
    assert done is not None and done.state == "failed" and done.error is not None
    assert done.error["code"] == code and says in done.error["message"], done.error
    assert [v.version for v in registry.store.list_versions("reg")] == [1]
    assert service.request("reg")[1]  # the model is free for the next job


def test_a_trigger_during_a_running_job_starts_nothing(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion, n=100)
    policy = recipe("tests.training_support:fit_hangs", time_limit=timedelta(seconds=30))
    service = retraining(registry, policy, Clock(AFTER), tmp_path)
    job, _ = service.request("reg")
    runner = threading.Thread(target=service.run_next)
    runner.start()
    try:
        jobs = TrainingStore(registry.store)
        for _ in range(600):
            if jobs.get(job.id).stage == "training":
                break
            threading.Event().wait(0.05)
        running = jobs.get(job.id)  # the store says where the running job is
        assert (running.state, running.stage) == ("running", "training")
        assert [name for name, _, end in running.stage_times()] == ["building data", "training"]
        assert running.stage_times()[-1][2] is None  # still training
        again, created = service.request("reg", trigger="drift")
        assert not created and again.id == job.id and again.state == "running"
        assert service.check_triggers() == []
        assert len(jobs.jobs("reg")) == 1
    finally:
        service.stopping.set()  # what `plinth serve` does at shutdown
        runner.join(timeout=30)
    stopped = TrainingStore(registry.store).get(job.id)
    assert stopped.state == "failed" and stopped.error is not None
    assert "shut down" in stopped.error["message"]


def test_point_in_time_a_label_after_the_cutoff_is_not_trained_on(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion, n=100)  # labels known a minute after each prediction
    cutoff = T0 + timedelta(seconds=30 * 60)  # 60 predictions made; the last one's label
    # arrives a minute later, after the cut-off: 59 labels were known at it
    service = retraining(registry, recipe(holdout_min_rows=5), Clock(cutoff), tmp_path)
    summary = service.dry_run("reg")["data"]
    assert summary["labelled_traffic"] == 59
    assert summary["rows"] + summary["holdout_rows"] == 59
    assert summary["predictions_in_window"] == 60
    assert summary["traffic_range"] == [
        T0.isoformat(),
        (T0 + timedelta(seconds=58 * 30)).isoformat(),
    ]
    assert TrainingStore(registry.store).jobs() == []  # a dry run queues and registers nothing
    assert [v.version for v in registry.store.list_versions("reg")] == [1]


def test_auto_deploy_false_waits_for_approval(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion)
    service = retraining(registry, recipe(auto_deploy=False), Clock(AFTER), tmp_path)
    service.request("reg", who="alice")
    done = service.run_next()
    assert done is not None and (done.state, done.outcome) == ("succeeded", "awaiting_approval")
    assert "canary" not in (done.data or {})["stages"]
    # The model was never deployed, so its newest version would serve: the champion is
    # pinned, and the version awaiting approval serves nothing until it is approved.
    live = Deployments(registry.store).current("reg")
    assert live is not None and live.spec.champion == 1 and live.spec.canary is None
    assert "pin the champion before its approval" in live.reason
    with pytest.raises(Exception, match="not awaiting approval") as wrong:
        service.approve("reg", 1)
    assert getattr(wrong.value, "code", "") == "training.not_awaiting_approval"
    approved = service.approve("reg", 2, who="bob")
    assert approved.outcome == "canary"
    # The people's actions are in the audit trail; the canary it started is recorded too.
    trail = [(e.action, e.target, e.who) for e in reversed(audit.read(registry.store))]
    assert trail == [
        ("training.request", "reg", "alice"),
        ("deployment.deploy", "reg", "retraining"),
        ("deployment.canary", "reg", "retraining"),
        ("training.approve", "reg:2", "bob"),
    ]
    assert audit.read(registry.store, action="training.approve")[0].detail == {"job": done.id}
    live = Deployments(registry.store).current("reg")
    assert live is not None and live.spec.canary is not None and live.spec.canary.version == 2


def test_triggers_schedule_labels_drift_and_cooldown_with_an_injected_clock(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    clock = Clock(T0)
    policy = recipe(
        triggers=TrainingTriggers(
            schedule=Schedule("0 3 * * *"), labels=250, drift=True, cooldown=timedelta(hours=2)
        )
    )
    service = retraining(registry, policy, clock, tmp_path)
    assert service.check_triggers() == []  # nothing due at 09:00
    clock.at = T0 + timedelta(hours=17, minutes=59)  # 02:59 next day
    assert service.check_triggers() == []
    clock.at += timedelta(minutes=1)  # 03:00
    [scheduled] = service.check_triggers()
    assert (scheduled.trigger, scheduled.reason) == ("schedule", "schedule 0 3 * * *")
    jobs = TrainingStore(registry.store)
    jobs.claim("w", clock.at, clock.at + timedelta(minutes=5))
    jobs.finish(scheduled.id, "w", "failed", clock.at)
    # A drift alert fires, but the cool-down (2 h) holds it back until 05:00.
    MonitoringStore(registry.store).fire(
        model="reg", version=1, rule="dataset_drift", key="dataset",
        summary="2 of 2 features drifted", evidence={}, at=clock.at + timedelta(minutes=1),
    )  # fmt: skip
    clock.at += timedelta(hours=1)
    assert service.check_triggers() == []
    clock.at += timedelta(hours=1, seconds=1)
    [drifted] = service.check_triggers()
    assert drifted.trigger == "drift" and "dataset_drift" in drifted.reason
    jobs.claim("w", clock.at, clock.at + timedelta(minutes=5))
    jobs.finish(drifted.id, "w", "failed", clock.at)
    clock.at += timedelta(hours=3)
    assert service.check_triggers() == []  # the same alert does not fire twice
    shifted_traffic(registry, champion, n=300)  # 300 labels received (at T0 + minutes)
    assert service.check_triggers() == []  # ...before the last training started
    clock.at += timedelta(hours=3)
    FeedbackStore(registry.store).upsert_labels(
        [
            LabelRow(f"p{i:04d}", "reg", 1, T0, {}, 1.0, "caller", clock.at, clock.at)
            for i in range(250)
        ],
        clock.at,
    )
    clock.at += timedelta(minutes=1)
    [labelled] = service.check_triggers()
    assert labelled.trigger == "labels" and labelled.reason.startswith("250 labels since")


def test_a_recipe_for_a_model_not_registered_yet_is_skipped(
    registry: Registry, tmp_path: Path
) -> None:
    policy = recipe(triggers=TrainingTriggers(schedule=Schedule("* * * * *")))
    service = Retraining(
        registry.store, registry, Policies(training_models={"ghost": policy}), clock=Clock(AFTER)
    )
    service.clock = Clock(AFTER + timedelta(minutes=5))  # a cron minute has passed
    assert service.check_triggers() == []
    with pytest.raises(Exception, match="ghost") as unknown:
        service.request("ghost")
    assert getattr(unknown.value, "code", "") == "registry.model_not_found"


def test_max_rows_keeps_the_newest_traffic_then_samples_the_reference(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion)
    policy = recipe(data=TrainingData(reference=True, window=timedelta(days=7), max_rows=250))
    summary = retraining(registry, policy, Clock(AFTER), tmp_path).dry_run("reg")["data"]
    # The newest 250 labelled predictions are read: 50 held out, 200 trained on, and 50
    # reference rows sampled to fill max_rows.
    assert summary["labelled_traffic"] == 250
    assert summary["sources"] == {"traffic": 200, "reference": 300}
    assert (summary["rows"], summary["holdout_rows"]) == (250, 50)


def test_the_trainer_gets_the_policys_thread_count(
    registry: Registry, champion: VersionRecord, tmp_path: Path
) -> None:
    shifted_traffic(registry, champion, n=100)
    policy = recipe("tests.training_support:fit_telling_threads", threads=3)
    service = retraining(registry, policy, Clock(AFTER), tmp_path)
    service.request("reg")
    done = service.run_next()
    assert done is not None and done.error is not None
    assert "OMP_NUM_THREADS=3" in done.error["message"]
