"""A canary between two prompt versions of a remote classifier, judged on labelled traffic
by the same user scorer ``plinth evaluate`` uses (the provider simulator on loopback)."""

from __future__ import annotations

import time

import pandas as pd

from plinth.flavors.remote import RemoteSpec
from plinth.services.feedback.labels import Feedback
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.rollout.canary import CanaryAnalyzer
from plinth.services.rollout.deployments import Deployments
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.scoring import Job, score
from tests.remote_support import EXAMPLES, LABELS, Provider, strict_rules, triage_spec

POLICY = {
    "min_requests": 40,
    "min_duration_s": 0,
    "min_labels": 40,
    "checks": ["error_rate", "performance"],
    "scorer": "tests.remote_support:partial_credit",
}


def _version(registry: Registry, provider: Provider, model: str) -> ServedModel:
    spec = RemoteSpec.from_dict(triage_spec(provider.base_url, endpoint={"model": model}))
    record = registry.register_remote(spec, name="triage", examples=pd.DataFrame(EXAMPLES))
    return registry.load(record)


def _serve_and_label(
    registry: Registry, model: ServedModel, collector: MonitorCollector, rounds: int
) -> None:
    """Each example ``rounds`` times as one-record requests, logged, then labelled."""
    writer = LogWriter(registry.store)
    items = []
    for _ in range(rounds):
        now = time.perf_counter()
        jobs = [Job([e], "req", now, now + 30) for e in EXAMPLES]
        results = score(model, jobs, [collector])
        writer.write([row for r in results for row in r.rows])
        for result, label in zip(results, LABELS, strict=True):
            assert result.error is None, result.error
            collector.observe_reply(model, result, 0.01)
            items.append({"prediction_id": result.answers[0]["prediction_id"], "label": label})
    writer.close()
    assert Feedback(registry.store).ingest(items).failed == 0


def test_a_worse_prompt_version_is_rolled_back_by_the_scorer_on_labels(
    registry: Registry, provider: Provider
) -> None:
    # The champion's prompt gets the keywords right (4 of 5 examples); the canary answers
    # "other" to everything (1 of 5). Neither ever errs: only the labels tell them apart.
    champion = _version(registry, provider, "sim-large")
    canary = _version(registry, provider, "sim-small")
    provider.script(
        rules=[
            {"model": "sim-small", "answer": {"label": "other", "confidence": 0.7}},
            *strict_rules("sim-large"),
        ],
        default={"label": "billing", "confidence": 0.9},
    )
    deployments = Deployments(registry.store)
    deployments.deploy("triage", champion.version)
    deployments.deploy("triage", canary.version, canary=20, analysis=POLICY)
    collector = MonitorCollector(registry.store, interval_s=60.0)
    _serve_and_label(registry, champion, collector, rounds=10)
    _serve_and_label(registry, canary, collector, rounds=10)
    collector.flush(final=True)
    for model in (champion, canary):
        model.flavor.close()

    [outcome] = CanaryAnalyzer(registry.store).run_once()

    assert outcome.analysis.verdict.decision == "rollback", outcome.analysis.verdict.summary
    live = deployments.current("triage")
    assert live is not None and live.spec.canary is None and live.spec.champion == 1
    checks = {c["name"]: c for c in live.evidence["checks"]}  # type: ignore[index]
    assert checks["error_rate"]["passed"] is True
    performance = checks["performance"]
    assert performance["passed"] is False
    # Loss = 1 - partial_credit: the champion misses one example in five (it says "billing"
    # for a bug: no credit); the canary's four wrong "other"s get half credit each, so its
    # loss is 0.4, where exact match would have said 0.8.
    assert performance["champion"] == 0.2 and abs(performance["canary"] - 0.4) < 1e-9
