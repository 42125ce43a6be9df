"""Automated canary analysis: judge a live canary against its champion, then act.

Evidence comes from the interval rows monitoring already writes (never the prediction log),
for the canary's whole lifetime: from the first revision of the unbroken run of revisions
with this canary and this champion, so a weight change does not restart the clock. Labels,
when a caller or reviewer gave some, add a performance check. The rules are in
``plinth.core.canary``; this module gathers the numbers, picks the policy (deploy flags
stored in the spec, else ``[models.NAME.canary]`` of plinth.toml, else ``[canary]``, else the
defaults) and records the decision as a revision whose evidence holds every check.

In ``plinth serve`` one worker across all workers and replicas runs the analysis, whoever
holds the ``deploy.canary`` lease; ``plinth canary NAME`` runs it on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from plinth.config.policies import CanaryPolicies
from plinth.core.canary import (
    ArmEvidence,
    CanaryVerdict,
    evaluate,
    shared_output_counts,
    slower_than,
)
from plinth.core.canary_policy import CanaryPolicy
from plinth.core.interval import LatencyHistogram, ProfileLayout, decode_counts_many
from plinth.core.profile import FeatureBins, Profile
from plinth.errors import ModelError, PlinthError, error_class
from plinth.services.evaluation import load_scorer
from plinth.services.monitoring.report import merge_rows
from plinth.services.process import in_thread, worker_id
from plinth.services.rollout.deployments import Deployments, Revision
from plinth.store import Store
from plinth.store.feedback import FeedbackStore
from plinth.store.monitoring import IntervalRow, MonitoringStore
from plinth.store.records import VersionRecord

log = logging.getLogger("plinth.canary")

LEASE = "deploy.canary"
WHO = "canary-analysis"


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- one analysis


@dataclass(frozen=True)
class CanaryAnalysis:
    """One judgement of one live canary, with everything needed to record it."""

    name: str
    revision: Revision
    since: datetime
    at: datetime
    canary_version: int
    champion_version: int
    policy: CanaryPolicy
    canary: ArmEvidence
    champion: ArmEvidence
    verdict: CanaryVerdict

    @property
    def duration_s(self) -> float:
        return (self.at - self.since).total_seconds()

    @property
    def acts(self) -> bool:
        """Whether the policy's action applies this verdict (``wait`` never acts)."""
        decision, action = self.verdict.decision, self.policy.action
        return (decision == "rollback" and action in ("auto", "rollback")) or (
            decision == "promote" and action == "auto"
        )

    def evidence(self) -> dict[str, Any]:
        """The JSON stored with the decision's revision and shown by ``plinth history``."""
        return {
            **self.verdict.to_dict(),
            "revision": self.revision.revision,
            "since": self.since.isoformat(),
            "at": self.at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "canary": {"version": self.canary_version, **self.canary.to_dict()},
            "champion": {"version": self.champion_version, **self.champion.to_dict()},
            "policy": self.policy.to_dict(),
        }


@dataclass(frozen=True)
class CanaryOutcome:
    """What one pass did for one model: the analysis and the revision it wrote, if any."""

    analysis: CanaryAnalysis
    applied: Revision | None = None


class CanaryAnalyzer:
    """Gathers both arms' evidence from the monitoring store, evaluates, and acts."""

    def __init__(
        self,
        store: Store,
        *,
        policies: CanaryPolicies | None = None,
        interval_hint_s: float = 60.0,
        holder: str | None = None,
        lease_s: float = 60.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.deployments = Deployments(store)
        self.rows = MonitoringStore(store)
        self.policies = policies or CanaryPolicies()
        # Rows are keyed by interval start: read this far before the canary began so the
        # interval it began in is included.
        self.interval_hint_s = interval_hint_s
        self.holder = holder or worker_id()
        self.lease_s = lease_s
        self.clock = clock
        self._layouts: dict[tuple[str, int], ProfileLayout | None] = {}

    # -- judging -----------------------------------------------------------------------------

    def analyze(self, name: str) -> CanaryAnalysis | None:
        """Judge ``name``'s live canary now; None when it has none."""
        live = self.deployments.current(name)
        if live is None or live.spec.canary is None:
            return None
        spec = live.spec
        assert spec.canary is not None
        since = self._since(name, live)
        at = self.clock()
        policy = self.policies.for_model(name, spec.analysis)
        deadline_s = None if spec.deadline_ms is None else spec.deadline_ms / 1000.0
        canary_record = self.store.get_version(name, spec.canary.version)
        champion_record = self.store.get_version(name, spec.champion)
        canary_rows = self._rows(canary_record, since, at)
        champion_rows = self._rows(champion_record, since, at)
        outputs = self._outputs(canary_record, canary_rows, champion_record, champion_rows)
        canary = _arm(
            canary_rows, deadline_s, outputs[1] if outputs else None,
            self._losses(canary_record, since, at, policy),
        )  # fmt: skip
        champion = _arm(
            champion_rows, deadline_s, outputs[0] if outputs else None,
            self._losses(champion_record, since, at, policy),
        )  # fmt: skip
        duration = (at - since).total_seconds()
        verdict = evaluate(canary, champion, policy, duration_s=duration)
        return CanaryAnalysis(
            name, live, since, at, spec.canary.version, spec.champion, policy,
            canary, champion, verdict,
        )  # fmt: skip

    def _since(self, name: str, live: Revision) -> datetime:
        """When this canary began: the oldest revision of the unbroken run that has it."""
        assert live.spec.canary is not None
        version, champion = live.spec.canary.version, live.spec.champion
        since = live.created_at
        for revision in self.deployments.history(name):
            canary = revision.spec.canary
            if canary is None or canary.version != version or revision.spec.champion != champion:
                break
            since = revision.created_at
        return since

    def _rows(self, record: VersionRecord, since: datetime, at: datetime) -> list[IntervalRow]:
        lookback = since - timedelta(seconds=self.interval_hint_s)
        rows = self.rows.read_intervals(record.name, record.version, lookback, at)
        # Keep intervals that overlap the canary's lifetime.
        return [r for r in rows if r.start + timedelta(seconds=r.seconds) > since]

    def _layout(self, record: VersionRecord) -> ProfileLayout | None:
        key = (record.name, record.version)
        if key not in self._layouts:
            document = record.metadata.get("reference_profile")
            self._layouts[key] = (
                None if document is None else ProfileLayout(Profile.from_dict(document))
            )
        return self._layouts[key]

    def _outputs(
        self,
        canary: VersionRecord,
        canary_rows: Sequence[IntervalRow],
        champion: VersionRecord,
        champion_rows: Sequence[IntervalRow],
    ) -> tuple[np.ndarray, np.ndarray] | None:
        h = self._output_bins(champion, champion_rows)
        c = self._output_bins(canary, canary_rows)
        return None if h is None or c is None else shared_output_counts(h, c)

    def _output_bins(
        self, record: VersionRecord, rows: Sequence[IntervalRow]
    ) -> FeatureBins | None:
        layout = self._layout(record)
        if layout is None or not rows or layout.reference.output_ is None:
            return None
        data = merge_rows(rows, layout)
        if int(data.profile_rows.sum()) == 0:
            return None
        return data.profile(layout).output_

    def _losses(
        self, record: VersionRecord, since: datetime, at: datetime, policy: CanaryPolicy
    ) -> np.ndarray | None:
        """One loss per labelled prediction of this version: 0/1 for classes, |error| else."""
        if "performance" not in policy.checks:
            return None
        try:
            labels = FeedbackStore(self.store).read_labels(record.name, since, at, record.version)
        except PlinthError:
            return None
        if not labels:
            return None
        if policy.scorer is not None:  # the user's judgement, as in `plinth evaluate`
            try:
                scorer = load_scorer(policy.scorer)
                return np.asarray(
                    [1.0 - float(scorer(r.output.get("prediction"), r.label)) for r in labels],
                    dtype=float,
                )
            except Exception:
                log.exception("canary scorer %s failed; the performance check waits", policy.scorer)
                return None
        if record.task == "classification":
            return np.asarray(
                [str(r.label) != str(r.output.get("prediction")) for r in labels], dtype=float
            )
        losses = []
        for r in labels:
            try:
                losses.append(abs(float(r.label) - float(r.output["prediction"])))
            except (TypeError, ValueError, KeyError):
                continue
        return np.asarray(losses, dtype=float)

    # -- acting ------------------------------------------------------------------------------

    def act(self, analysis: CanaryAnalysis) -> Revision | None:
        """Apply the verdict when the policy says so; the decision's revision, or None."""
        if not analysis.acts:
            return None
        name, evidence = analysis.name, analysis.evidence()
        expected = analysis.revision.revision
        if analysis.verdict.decision == "rollback":
            reason = f"canary {analysis.canary_version} failed: " + "; ".join(
                analysis.verdict.reasons
            )
            revision = self.deployments.end_canary(
                name, reason=reason, evidence=evidence, who=WHO, expect_revision=expected
            )
        else:
            reason = (
                f"canary {analysis.canary_version} passed every check over "
                f"{analysis.duration_s:.0f} s"
            )
            revision = self.deployments.promote(
                name, reason=reason, who=WHO, action="auto-promote", evidence=evidence,
                expect_revision=expected,
            )  # fmt: skip
        log.warning("%s: %s revision %s: %s", name, revision.action, revision.revision, reason)
        return revision

    def run_once(
        self, names: Sequence[str] | None = None, *, act: bool = True
    ) -> list[CanaryOutcome]:
        """Judge (and act on) every live canary, or those of ``names``."""
        wanted = None if names is None else set(names)
        outcomes: list[CanaryOutcome] = []
        for live in self.deployments.live():
            if live.spec.canary is None or (wanted is not None and live.name not in wanted):
                continue
            try:
                analysis = self.analyze(live.name)
                if analysis is None:
                    continue
                applied = self.act(analysis) if act else None
            except PlinthError as exc:  # one model's trouble must not stop the others
                log.error("canary analysis of %s failed: %s", live.name, exc)
                continue
            outcomes.append(CanaryOutcome(analysis, applied))
        return outcomes

    def try_run(self) -> list[CanaryOutcome] | None:
        """Run if this process holds (or can take) the lease; None if another one does."""
        now = self.clock()
        if not self.rows.acquire_lease(
            LEASE, self.holder, now, now + timedelta(seconds=self.lease_s)
        ):
            return None
        return self.run_once()

    def release(self) -> None:
        with contextlib.suppress(PlinthError):
            self.rows.release_lease(LEASE, self.holder)

    async def run(self, interval_s: float) -> None:
        """Analyse every ``interval_s`` while holding the lease (the app's background task)."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await in_thread(self.try_run)
                except PlinthError as exc:
                    log.error("canary analysis failed: %s", exc)
        finally:
            await in_thread(self.release)


def _arm(
    rows: Sequence[IntervalRow],
    deadline_s: float | None,
    outputs: np.ndarray | None,
    losses: np.ndarray | None,
) -> ArmEvidence:
    """One arm's evidence from its interval rows (every worker, every interval)."""
    requests = sum(r.requests for r in rows)
    model_errors = ignored = 0
    for r in rows:
        for code, n in r.errors.items():
            # The model's failures count against it; a caller's mistake (contract.*) or
            # our own trouble (store.*) says nothing about the version. Rows keep codes,
            # so the class that owns each code says which it was.
            leaf = error_class(code)
            if leaf is not None and issubclass(leaf, ModelError):
                model_errors += int(n)
            else:
                ignored += int(n)
    size = LatencyHistogram().counts.size
    latency = (
        decode_counts_many([r.latency for r in rows], size).sum(axis=0, dtype=np.int64)
        if rows
        else np.zeros(size, dtype=np.int64)
    )
    # An answer slower than the deadline was abandoned for the fallback chain.
    late = 0 if deadline_s is None else math.floor(slower_than(latency, deadline_s))
    return ArmEvidence(
        requests=max(requests - ignored, 0),
        errors=model_errors,
        fallbacks=model_errors + late,
        latency=latency,
        outputs=outputs,
        losses=losses,
    )
