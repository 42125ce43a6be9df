"""Canary analysis over interval rows written by the real collector, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from plinth.errors import DeploymentChangedError
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.rollout.canary import CanaryAnalyzer
from plinth.services.rollout.deployments import Deployments
from plinth.services.serving.scoring import Job, score
from tests.canary_support import FlakyModel, LinearModel, records
from tests.rollout_support import register

SEED = 7
FAST = {"min_requests": 100, "min_duration_s": 0}


def _models(registry: Registry, canary: Any) -> tuple[ServedModel, ServedModel]:
    champion = registry.load(register(registry, "m", LinearModel()))
    candidate = registry.load(register(registry, "m", canary))
    return champion, candidate


def _serve(
    model: ServedModel, collector: MonitorCollector, n: int, seed: int, median_s: float = 0.004
) -> None:
    """Score ``n`` one-record requests in batches of 16 and count each reply, as serving does."""
    rng = np.random.default_rng(seed)
    pending = records(seed, n)
    for start in range(0, n, 16):
        now = time.perf_counter()
        jobs = [
            Job([r], f"r{start + i}", now, now + 30)
            for i, r in enumerate(pending[start : start + 16])
        ]
        for result in score(model, jobs, [collector]):
            collector.observe_reply(model, result, float(rng.lognormal(np.log(median_s), 0.2)))


def _traffic(registry: Registry, champion: ServedModel, canary: ServedModel, n: int = 400) -> None:
    collector = MonitorCollector(registry.store, interval_s=60.0)
    _serve(champion, collector, 4 * n, SEED)
    _serve(canary, collector, n, SEED + 1)
    assert collector.flush(final=True) >= 2  # one row per version (more across a minute)


def test_a_canary_failing_one_request_in_five_is_rolled_back_with_evidence(
    registry: Registry,
) -> None:
    champion, canary = _models(registry, FlakyModel())
    deployments = Deployments(registry.store)
    deployments.deploy("m", 1, reason="start")
    deployments.deploy("m", 2, canary=20, analysis=FAST, reason="try 2")
    _traffic(registry, champion, canary)

    outcomes = CanaryAnalyzer(registry.store).run_once()

    assert len(outcomes) == 1
    outcome = outcomes[0]
    assert outcome.analysis.verdict.decision == "rollback"
    assert outcome.applied is not None and outcome.applied.action == "auto-rollback"
    live = deployments.current("m")
    assert live is not None and live.spec.canary is None and live.spec.champion == 1
    assert live.who == "canary-analysis" and live.reason.startswith("canary 2 failed: error_rate")
    evidence = live.evidence
    assert evidence is not None and evidence["decision"] == "rollback"
    checks = {c["name"]: c for c in evidence["checks"]}
    assert checks["error_rate"]["passed"] is False
    assert 0.12 < checks["error_rate"]["canary"] < 0.28
    assert checks["error_rate"]["champion"] == 0.0
    assert evidence["canary"]["version"] == 2 and evidence["canary"]["requests"] == 400
    assert evidence["champion"]["requests"] == 1600 and evidence["champion"]["errors"] == 0
    assert evidence["policy"]["min_requests"] == 100
    # Nothing left to judge: a second pass does nothing.
    assert CanaryAnalyzer(registry.store).run_once() == []


def test_a_good_canary_is_promoted(registry: Registry) -> None:
    champion, canary = _models(registry, LinearModel(offset=0.01))
    deployments = Deployments(registry.store)
    deployments.deploy("m", 1)
    deployments.deploy("m", 2, canary=20, analysis=FAST)
    _traffic(registry, champion, canary)

    [outcome] = CanaryAnalyzer(registry.store).run_once()

    assert outcome.analysis.verdict.decision == "promote", outcome.analysis.verdict.summary
    assert outcome.applied is not None and outcome.applied.action == "auto-promote"
    live = deployments.current("m")
    assert live is not None and live.spec.champion == 2 and live.spec.canary is None
    assert live.evidence is not None
    passed = {c["name"]: c["passed"] for c in live.evidence["checks"]}
    assert passed["error_rate"] and passed["p95_latency"] and passed["output_distance"]
    assert live.evidence["canary"]["outputs"] is not None  # outputs were compared


def test_too_little_traffic_waits_and_records_nothing(registry: Registry) -> None:
    champion, canary = _models(registry, FlakyModel())
    deployments = Deployments(registry.store)
    deployments.deploy("m", 1)
    deployments.deploy("m", 2, canary=20)  # default policy: 200 requests per arm
    _traffic(registry, champion, canary, n=50)

    [outcome] = CanaryAnalyzer(registry.store).run_once()

    assert outcome.analysis.verdict.decision == "wait"
    assert outcome.analysis.verdict.reasons == ["canary has 50 of 200 requests"]
    assert outcome.applied is None
    assert len(deployments.history("m")) == 2


def test_report_only_never_acts_and_a_changed_deployment_is_left_alone(
    registry: Registry,
) -> None:
    champion, canary = _models(registry, FlakyModel())
    deployments = Deployments(registry.store)
    deployments.deploy("m", 1)
    deployments.deploy("m", 2, canary=20, analysis={**FAST, "action": "report"})
    _traffic(registry, champion, canary)
    analyzer = CanaryAnalyzer(registry.store)

    [outcome] = analyzer.run_once()
    assert outcome.analysis.verdict.decision == "rollback" and outcome.applied is None
    assert len(deployments.history("m")) == 2

    # The policy changes to auto, but someone redeploys between judging and acting.
    deployments.deploy("m", 2, canary=20, analysis=FAST)
    analysis = analyzer.analyze("m")
    assert analysis is not None and analysis.acts
    deployments.deploy("m", 2, canary=50)
    with pytest.raises(DeploymentChangedError, match="changed") as caught:
        analyzer.act(analysis)
    assert caught.value.code == "deploy.conflict"


def test_only_the_lease_holder_analyses(registry: Registry) -> None:
    first = CanaryAnalyzer(registry.store, holder="a")
    second = CanaryAnalyzer(registry.store, holder="b")
    assert first.try_run() == []
    assert second.try_run() is None
    first.release()
    assert second.try_run() == []
