"""Training jobs from trigger to rollout: queue, run under a lease, gate, register, ship.

One job, start to end (``Retraining.execute``):

1. the training set as of the job's creation (``dataset.build_training_set``);
2. the trainer in a child process with a time limit and a memory cap (``runner``), the
   job's lease renewed about once a second while it runs;
3. the gate (``plinth.core.gate``): candidate and champion on the same holdout rows;
4. a candidate that passes is registered with its lineage, in a transaction that also
   checks the job's lease (a worker that lost it leaves no version behind), then deployed as a
   canary through the ordinary rollout, whose automatic analysis promotes or rolls it back;
   with ``auto_deploy = false`` it waits for ``plinth approve NAME VERSION``.

A rejected candidate is **not registered**: versions are immutable and kept forever, and a
registry full of versions that failed their gate invites deploying one by mistake. The job
keeps everything needed to look at it: the gate's numbers, the data fingerprint, the
trainer's output and the candidate's artifact, stored by sha256 in the artifact store.

Exactly one process runs a given job: claiming is one conditional UPDATE. A worker that dies
mid-job stops renewing the lease; the next worker to look fails the job (``training.lease_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plinth.config.policies import Policies, TrainingPolicy
from plinth.core.contract import infer_contract
from plinth.core.gate import GateVerdict, judge, paired_metrics
from plinth.core.ids import new_id
from plinth.errors import (
    JobActiveError,
    JobLeaseLostError,
    NotAwaitingApprovalError,
    NotFoundError,
    PlinthError,
    TrainerFailedError,
    TrainingNotConfiguredError,
)
from plinth.flavors.base import read_model_file
from plinth.services import audit, telemetry
from plinth.services.process import in_thread, worker_id
from plinth.services.registry.lineage import git_commit
from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Deployments
from plinth.services.training.dataset import WEIGHT, TrainingSet, build_training_set
from plinth.services.training.runner import run_trainer
from plinth.store import Store, VersionRecord
from plinth.store.feedback import FeedbackStore
from plinth.store.monitoring import MonitoringStore
from plinth.store.training import JobRow, TrainingStore

log = logging.getLogger("plinth.training")

WHO = "retraining"
DRIFT_RULES = ("dataset_drift", "feature_drift")
PERFORMANCE_RULES = ("performance_drop",)
AUTOMATIC = ("schedule", "labels", "drift", "performance")
#: Outcomes of a finished job whose version is still on its way out.
PENDING_OUTCOMES = ("canary", "awaiting_approval")


def _now() -> datetime:
    return datetime.now(UTC)


class Retraining:
    """Queues, runs and follows training jobs for every model with a training policy."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        policies: Policies,
        *,
        workdir: Path | None = None,
        holder: str | None = None,
        lease_s: float = 60.0,
        clock: Callable[[], datetime] = _now,
        code_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.deployments = Deployments(store)
        self.jobs = TrainingStore(store)
        self.policies = policies
        self.workdir = workdir
        self.holder = holder or worker_id()
        self.lease_s = lease_s
        self.clock = clock
        # Where relative table paths and entrypoint modules are found (the project's folder).
        self.code_dir = code_dir or Path.cwd()
        self.stopping = threading.Event()
        self._watching_since = clock()

    # -- asking -------------------------------------------------------------------------------

    def policy(self, name: str) -> TrainingPolicy:
        found = self.policies.training(name)
        if found is None:
            self.store.get_version(name)  # an unknown model says so first
            raise TrainingNotConfiguredError(f"{name} has no [models.{name}.training] section.")
        return found

    def request(
        self,
        name: str,
        *,
        trigger: str = "manual",
        reason: str = "",
        strict: bool = False,
        who: str | None = None,
    ) -> tuple[JobRow, bool]:
        """Queue a job for ``name``; the active one and False if one is queued or running
        (``strict``: raise ``training.job_active`` instead). A manual request (a person's,
        ``who``) is recorded in the audit trail as ``training.request``; a trigger's is not
        an admin action, its job row says why."""
        self.policy(name)
        champion = self._champion(name)
        job = JobRow(
            id=new_id(),
            model=name,
            state="queued",
            trigger=trigger,
            reason=reason or trigger,
            dry_run=False,
            created_at=self.clock(),
            parent_version=champion.version,
        )
        found, created = self.jobs.enqueue(job)
        if not created and strict:
            raise JobActiveError(
                f"Job {found.id} for {name} is already {found.state}; no second one was started."
            )
        if created:
            log.warning("%s: queued training job %s (%s)", name, found.id, found.reason)
        if trigger == "manual":
            audit.record(
                self.store, "training.request", name, who or audit.current_user(),
                job=found.id, created=created, reason=found.reason,
            )  # fmt: skip
        return found, created

    # -- running ------------------------------------------------------------------------------

    def run_next(self, model: str | None = None) -> JobRow | None:
        """Fail jobs whose worker died, then claim and run the oldest queued job."""
        self.expire()
        now = self.clock()
        job = self.jobs.claim(self.holder, now, now + timedelta(seconds=self.lease_s), model)
        return None if job is None else self.execute(job)

    def expire(self) -> list[JobRow]:
        failed = self.jobs.expire(self.clock())
        for job in failed:
            log.error("%s: training job %s failed: its worker stopped renewing", job.model, job.id)
            telemetry.TRAINING_JOBS.labels(job.model, "failed").inc()
        return failed

    def execute(self, job: JobRow, progress: Callable[[str], None] | None = None) -> JobRow:
        """Run a job this worker has claimed, to its end; returns the finished job.

        Each step is recorded in ``data`` as it begins (``stage``, and ``stages`` with when
        each began: what ``plinth retrain``, ``plinth job show``, ``GET /v1/jobs/{id}`` and
        the console show while it runs); where the time went is kept in ``data.timings``."""
        started = time.monotonic()
        say = progress or (lambda message: None)
        gate: dict[str, Any] | None = None
        data: dict[str, Any] = {}
        timings: dict[str, float] = {}
        clock = [started]

        def lap(step: str) -> None:
            now = time.monotonic()
            timings[step] = round(now - clock[0], 3)
            clock[0] = now

        def stage(name: str) -> None:
            data["stage"] = name
            data["stages"] = {**data.get("stages", {}), name: self.clock().isoformat()}
            self._renew(job, data=data)

        def end(state: str, **changes: Any) -> JobRow:
            lap("ship" if state == "succeeded" else "last step")
            if data:
                changes["data"] = data | {"timings": timings}
            return self._finish(job, state, started, gate=gate, **changes)

        try:
            policy = self.policy(job.model)
            champion = self.store.get_version(job.model, job.parent_version)
            stage("building data")
            say(f"building the training set as of {job.created_at:%Y-%m-%d %H:%M:%S}")
            tset = self._training_set(policy, champion, job.created_at)
            data.update(tset.summary)
            lap("data")
            with self._scratch(job) as scratch:
                stage("training")
                say(f"training on {len(tset.train)} rows ({_sources(tset)})")
                model_path, trained_s, tail = self._train(job, policy, champion, tset, scratch)
                lap("train")
                stage("gating")
                say(f"judging on {len(tset.holdout)} holdout rows ({tset.holdout_source})")
                candidate = read_model_file(model_path, trust_pickle=False, trust_types=[])
                verdict = self._judge(policy, champion, tset, candidate.flavor)
                lap("gate")
                gate = self._gate_report(policy, champion, tset, candidate, verdict) | {
                    "train_seconds": round(trained_s, 3),
                    "trainer_output": tail[-1000:],
                }
                if not verdict.passed:
                    # Not registered (see the module docstring); the artifact is kept by hash.
                    self.registry.artifacts.put(candidate.data)
                    say("rejected: " + "; ".join(verdict.reasons))
                    return end("rejected", outcome="rejected")
                stage("registering")
                say("passed the gate; registering")
                record = self._register(job, policy, champion, tset, model_path, verdict)
                lap("register")
            if policy.auto_deploy and record.version != champion.version:
                stage("canary")
            outcome = self._ship(job, policy, champion, record)
            say(f"registered {record.ref}: {outcome}")
            return end("succeeded", version=record.version, outcome=outcome)
        except PlinthError as exc:
            say(f"failed: {exc}")
            return end("failed", error=exc.to_dict()["error"])
        except Exception as exc:  # user code and libraries: the job says why, the worker lives
            log.exception("%s: training job %s failed", job.model, job.id)
            return end(
                "failed",
                error={"code": "internal.error", "message": f"{type(exc).__name__}: {exc}"},
            )

    def dry_run(self, name: str, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Build the set, train and gate now, in this process's child; register nothing,
        record no job. The gate's report is the one a real job would store."""
        policy = self.policy(name)
        champion = self._champion(name)
        say = progress or (lambda message: None)
        cutoff = self.clock()
        job = JobRow(new_id(), name, "running", "manual", "dry run", True, cutoff)
        say(f"building the training set as of {cutoff:%Y-%m-%d %H:%M:%S}")
        tset = self._training_set(policy, champion, cutoff)
        with self._scratch(job) as scratch:
            say(f"training on {len(tset.train)} rows ({_sources(tset)})")
            model_path, trained_s, _ = self._train(job, policy, champion, tset, scratch)
            say(f"judging on {len(tset.holdout)} holdout rows ({tset.holdout_source})")
            candidate = read_model_file(model_path, trust_pickle=False, trust_types=[])
            verdict = self._judge(policy, champion, tset, candidate.flavor)
            gate = self._gate_report(policy, champion, tset, candidate, verdict)
        del gate["candidate_sha256"]  # nothing is stored by a dry run
        return {
            "model": name,
            "parent_version": champion.version,
            "data": tset.summary,
            "gate": gate | {"train_seconds": round(trained_s, 3)},
            "would": "register and ship" if verdict.passed else "reject",
        }

    # -- the steps ----------------------------------------------------------------------------

    def _champion(self, name: str) -> VersionRecord:
        spec, _ = self.deployments.effective(name)
        return self.store.get_version(name, spec.champion)

    def _training_set(
        self, policy: TrainingPolicy, champion: VersionRecord, cutoff: datetime
    ) -> TrainingSet:
        tset = build_training_set(
            policy, champion, self.registry, self.jobs, cutoff, workdir=self.code_dir
        )
        window_start = cutoff - policy.data.window
        served = FeedbackStore(self.store).prediction_counts(champion.name, window_start, cutoff)
        tset.summary["predictions_in_window"] = sum(served.values())
        return tset

    @contextlib.contextmanager
    def _scratch(self, job: JobRow) -> Any:
        root = None if self.workdir is None else str(self.workdir)
        if root is not None:
            Path(root).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"job-{job.id}-", dir=root) as scratch:
            yield Path(scratch)

    def _train(
        self,
        job: JobRow,
        policy: TrainingPolicy,
        champion: VersionRecord,
        tset: TrainingSet,
        scratch: Path,
    ) -> tuple[Path, float, str]:
        data = scratch / "train.parquet"
        tset.train.to_parquet(data, index=False)
        context = {
            "model": job.model,
            "parent_version": champion.version,
            "seed": policy.seed,
            "trigger": job.trigger,
            "job": job.id,
            "target": tset.target,
            "features": tset.features,
            "task": champion.task,
        }

        def heartbeat(elapsed: float) -> bool:
            if self.stopping.is_set():
                raise TrainerFailedError(
                    "The worker running this job was shut down; the trainer was stopped.",
                    hint="Start it again: plinth retrain NAME.",
                )
            return self._renew(job)

        run = run_trainer(
            entrypoint=policy.entrypoint,
            command=policy.command,
            data=data,
            context=context,
            workdir=scratch,
            time_limit_s=policy.time_limit.total_seconds(),
            memory_mb=policy.memory_mb,
            heartbeat=heartbeat,
            sys_path=[str(self.code_dir), *[p for p in sys.path if p]],
            cwd=self.code_dir,
            threads=policy.threads,
        )
        return run.model, run.seconds, run.log_tail

    def _judge(
        self, policy: TrainingPolicy, champion: VersionRecord, tset: TrainingSet, flavor: Any
    ) -> GateVerdict:
        holdout = tset.holdout
        # The candidate may take other fields than the champion (the contract check says so).
        wanted = flavor.feature_names()
        fields = [str(c) for c in wanted] if wanted is not None else tset.features
        missing = [c for c in fields if c not in holdout.columns]
        if missing:
            raise TrainerFailedError(
                f"The candidate wants fields no training row has: {missing[:10]}.",
                hint="The trainer must fit on the columns of the DataFrame it is given.",
            )
        candidate = np.asarray(flavor.predict(holdout[fields]))
        served = self.registry.load(champion)
        frame = served.contract.frame(_records(holdout[tset.features]))
        champion_out = np.asarray(served.flavor.predict(frame))
        slices = {c: holdout[c].tolist() for c in policy.gate.slices if c in holdout.columns}
        contracts = (
            champion.metadata.get("contract") or {},
            infer_contract(tset.train[fields]).to_dict(),
        )
        return judge(
            policy.gate,
            champion.task,
            holdout[tset.target].to_numpy(),
            candidate=candidate,
            champion=champion_out,
            slices=slices,
            contracts=contracts,
            seed=policy.seed,
        )

    def _gate_report(
        self,
        policy: TrainingPolicy,
        champion: VersionRecord,
        tset: TrainingSet,
        candidate: Any,
        verdict: GateVerdict,
    ) -> dict[str, Any]:
        """The verdict with every number, the registered holdout beside it, and the policy."""
        return verdict.to_dict() | {
            "registered_holdout": self._registered_holdout(champion, tset, candidate.flavor),
            "policy": policy.gate.to_dict(),
            "candidate_sha256": candidate.sha256,
        }

    def _registered_holdout(
        self, champion: VersionRecord, tset: TrainingSet, flavor: Any
    ) -> dict[str, Any] | None:
        """Both models on the champion's registered holdout, reported beside the verdict
        when the newest traffic was the judge (an old regime's table does not block)."""
        if tset.holdout_source != "traffic":
            return None
        table = self.registry.table(champion, "holdout")
        if table is None or table.empty or tset.target not in table.columns:
            return None
        try:
            wanted = flavor.feature_names()
            fields = [str(c) for c in wanted] if wanted is not None else tset.features
            served = self.registry.load(champion)
            frame = served.contract.frame(_records(table[tset.features]))
            return {
                "rows": len(table),
                **paired_metrics(
                    champion.task,
                    table[tset.target].to_numpy(),
                    np.asarray(flavor.predict(table[fields])),
                    np.asarray(served.flavor.predict(frame)),
                ),
            }
        except Exception as exc:  # a report: it never fails the job
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _register(
        self,
        job: JobRow,
        policy: TrainingPolicy,
        champion: VersionRecord,
        tset: TrainingSet,
        model_path: Path,
        verdict: GateVerdict,
    ) -> VersionRecord:
        summary = tset.summary
        recipe: dict[str, Any] = (
            {"entrypoint": policy.entrypoint}
            if policy.entrypoint
            else {"command": list(policy.command or ())}
        )
        recipe["git"] = git_commit(self.code_dir)
        lineage = {
            "parent_version": champion.version,
            "training_job": job.id,
            "trigger": job.trigger,
            "trigger_reason": job.reason,
            "seed": policy.seed,
            "recipe": recipe,
            "data": {
                k: summary.get(k)
                for k in ("sha256", "rows", "sources", "cutoff", "traffic_range", "holdout_rows")
            },
            "gate": {
                "passed": verdict.passed,
                "relative": verdict.relative,
                "metrics": verdict.metrics,
            },
        }
        train = tset.train.drop(columns=[WEIGHT], errors="ignore")
        return self.registry.register(
            model_path,
            name=job.model,
            train=train,
            target=tset.target,
            holdout=tset.holdout,
            task=champion.task,
            train_sha256=str(summary["sha256"]),
            workdir=self.code_dir,
            lineage=lineage,
            tags={"trained_by": "plinth retrain", "job": job.id},
            guard=self.jobs.registration_guard(job.id, self.holder, self.clock()),
        )

    def _ship(
        self, job: JobRow, policy: TrainingPolicy, champion: VersionRecord, record: VersionRecord
    ) -> str:
        if record.version == champion.version:
            return "unchanged"  # the same bytes as the champion: nothing to roll out
        if not policy.auto_deploy:
            # A model never deployed serves its newest version: without a pin, the version
            # "awaiting approval" would already serve all traffic.
            self._pin_champion(job, record.version, "before its approval")
            return "awaiting_approval"
        self._canary(job, policy, record.version)
        return "canary"

    def _pin_champion(self, job: JobRow, version: int, why: str) -> None:
        if self.deployments.current(job.model) is None:
            self.deployments.deploy(
                job.model,
                job.parent_version or version,
                reason=f"retraining job {job.id}: pin the champion {why}",
                who=WHO,
            )

    def _canary(self, job: JobRow, policy: TrainingPolicy, version: int) -> None:
        name = job.model
        # Serving "the newest version" would silently switch to the candidate: pin the
        # champion first, so the candidate only gets its canary share.
        self._pin_champion(job, version, "before its canary")
        self.deployments.deploy(
            name,
            version,
            canary=policy.canary_share,
            canary_settings=policy.canary_settings(),
            reason=f"retraining job {job.id} ({job.trigger}): passed the gate",
            who=WHO,
        )

    def _renew(self, job: JobRow, **changes: Any) -> bool:
        if job.dry_run:
            return True
        until = self.clock() + timedelta(seconds=self.lease_s)
        return self.jobs.renew(job.id, self.holder, until, **changes)

    def _finish(self, job: JobRow, state: str, started: float, **changes: Any) -> JobRow:
        seconds = time.monotonic() - started
        if not self.jobs.finish(job.id, self.holder, state, self.clock(), **changes):
            log.error("%s: job %s lost its lease before it could finish", job.model, job.id)
            if changes.get("error") is None and state != "failed":
                raise JobLeaseLostError(f"Job {job.id} was failed while it ran (lease lost).")
        telemetry.TRAINING_JOBS.labels(job.model, state).inc()
        telemetry.TRAINING_SECONDS.labels(job.model).observe(seconds)
        finished = self.jobs.get(job.id)
        log.warning(
            "%s: training job %s %s in %.1f s (outcome %s)",
            job.model, job.id, finished.state, seconds, finished.outcome,
        )  # fmt: skip
        return finished

    # -- after the job ------------------------------------------------------------------------

    def approve(self, name: str, version: int, *, who: str | None = None) -> JobRow:
        """Ship a version a job registered with ``auto_deploy = false``, as a canary;
        recorded in the audit trail as ``training.approve`` (by ``who``)."""
        waiting = [j for j in self.jobs.with_outcome(name, ["awaiting_approval"])]
        job = next((j for j in waiting if j.version == version), None)
        if job is None:
            raise NotAwaitingApprovalError(
                f"{name}:{version} is not awaiting approval"
                + (f" (waiting: {', '.join(str(j.version) for j in waiting)})" if waiting else "")
                + "."
            )
        self._canary(job, self.policy(name), version)
        self.jobs.set_outcome(job.id, "canary")
        audit.record(
            self.store, "training.approve", f"{name}:{version}", who or audit.current_user(),
            job=job.id,
        )  # fmt: skip
        return self.jobs.get(job.id)

    def follow(self) -> list[JobRow]:
        """Record what became of the canaries jobs started: promoted or rolled back."""
        changed = []
        for name in {j.model for j in self.jobs.jobs(limit=200) if j.outcome == "canary"}:
            live = self.deployments.current(name)
            for job in self.jobs.with_outcome(name, ["canary"]):
                if live is None or job.version is None:
                    continue
                if live.spec.champion == job.version:
                    outcome = "promoted"
                elif live.spec.canary is not None and live.spec.canary.version == job.version:
                    continue
                else:
                    outcome = "rolled_back"
                self.jobs.set_outcome(job.id, outcome)
                changed.append(self.jobs.get(job.id))
        return changed

    # -- triggers -----------------------------------------------------------------------------

    def check_triggers(self, names: Sequence[str] | None = None) -> list[JobRow]:
        """Queue a job for every model whose automatic trigger fired and whose cool-down
        has passed; a model with a job queued or running gets none."""
        now = self.clock()
        queued = []
        for name, policy in self.policies.training_models.items():
            if names is not None and name not in names:
                continue
            try:
                fired = self._fired(name, policy, now)
                if fired is None:
                    continue
                job, created = self.request(name, trigger=fired[0], reason=fired[1])
            except NotFoundError:  # a recipe for a model not registered (yet): nothing to do
                continue
            except PlinthError as exc:  # one model's trouble must not stop the others
                log.error("%s: retraining trigger check failed: %s", name, exc)
                continue
            if created:
                queued.append(job)
        return queued

    def _fired(self, name: str, policy: TrainingPolicy, now: datetime) -> tuple[str, str] | None:
        triggers = policy.triggers
        if self.jobs.active(name) is not None:
            return None
        last_auto = self.jobs.last_created(name, AUTOMATIC)
        if last_auto is not None and now - last_auto < triggers.cooldown:
            return None
        last_any = self.jobs.last_created(name)
        if triggers.schedule is not None:
            since = max(t for t in (last_any, self._watching_since) if t is not None)
            if triggers.schedule.due(since, now):
                return "schedule", f"schedule {triggers.schedule.expression}"
        if triggers.drift or triggers.performance:
            rules = (DRIFT_RULES if triggers.drift else ()) + (
                PERFORMANCE_RULES if triggers.performance else ()
            )
            for alert in MonitoringStore(self.store).open_alerts(name):
                if alert.rule in rules and (last_any is None or alert.started_at > last_any):
                    kind = "drift" if alert.rule in DRIFT_RULES else "performance"
                    return kind, f"alert {alert.rule}: {alert.summary}"
        if triggers.labels is not None:
            since = self.jobs.last_trained(name) or self._champion(name).created_at
            count = self.jobs.labels_received(name, since, now)
            if count >= triggers.labels:
                return "labels", f"{count} labels since {since:%Y-%m-%d %H:%M:%S}"
        return None

    # -- the background loop ------------------------------------------------------------------

    def tick(self) -> JobRow | None:
        """One pass: expire, check triggers, run one job, follow canaries."""
        self.check_triggers()
        job = self.run_next()
        self.follow()
        return job

    async def run(self, interval_s: float) -> None:
        """``tick`` every ``interval_s`` (the background task of ``plinth serve`` / worker)."""
        try:
            while True:
                try:
                    await in_thread(self.tick)
                except PlinthError as exc:
                    log.error("retraining pass failed: %s", exc)
                await asyncio.sleep(interval_s)
        finally:
            self.stopping.set()


def _sources(tset: TrainingSet) -> str:
    return ", ".join(f"{k} {v}" for k, v in tset.summary.get("sources", {}).items()) or "none"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): v for k, v in row.items()} for row in rows]
