"""A remote model's calls, tokens and cost in the monitoring report, and the budget alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from plinth.config import MonitorPolicy
from plinth.errors import RemoteSchemaError
from plinth.flavors.remote import RemoteSpec
from plinth.services.monitoring.alerts import AlertEvaluator, AlertRules
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.monitoring.report import Monitor
from plinth.services.monitoring.report_html import render_html
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.scoring import JobResult
from plinth.store import Store
from plinth.store.monitoring import MonitoringStore
from plinth.store.spend import SpendStore
from tests.remote_support import EXAMPLES, triage_spec

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC).timestamp()
BUDGET = 2.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def paid(prompt: int, completion: int, cost: float, cached: bool = False) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return {"remote": {"parsed": {}, "usage": usage, "cost": cost, "cached": cached}}


@pytest.fixture
def triage(registry: Registry) -> list[ServedModel]:
    versions = []
    for temperature in (0, 0.5):
        spec = RemoteSpec.from_dict(
            triage_spec(
                "http://127.0.0.1:9/v1",  # never called here
                parameters={"temperature": temperature},
                cost={"prompt_per_1k": 1.0, "budget_per_day": BUDGET, "alert_at": 0.8},
            )
        )
        record = registry.register_remote(spec, name="triage", examples=pd.DataFrame(EXAMPLES))
        versions.append(registry.load(record))
    return versions


def test_tokens_and_cost_per_version_in_every_form_of_the_report(
    store: Store, triage: list[ServedModel]
) -> None:
    v1, v2 = triage
    clock = Clock(T0)
    collector = MonitorCollector(store, interval_s=60, clock=clock)
    for minute in range(3):
        clock.now = T0 + 60 * minute
        collector.observe_reply(v1, JobResult(answers=[paid(100, 10, 0.11)]), 0.2)
        collector.observe_reply(v1, JobResult(answers=[paid(0, 0, 0.0, cached=True)]), 0.001)
        failed = RemoteSchemaError("broke the schema twice")
        failed.details = paid(200, 20, 0.22)["remote"]  # type: ignore[attr-defined]
        collector.observe_reply(v2, JobResult(error=failed), 0.5)
    collector.flush(final=True)
    SpendStore(store).add("triage", datetime.fromtimestamp(T0, UTC).date(), 0.5)

    report = Monitor(store).report(
        "triage", window=timedelta(hours=1), now=datetime.fromtimestamp(T0 + 600, UTC)
    )
    cost = report["cost"]
    assert cost["versions"] == [
        {"version": 1, "calls": 3, "cached": 3, "prompt_tokens": 300,
         "completion_tokens": 30, "cost": pytest.approx(0.33)},
        {"version": 2, "calls": 3, "cached": 0, "prompt_tokens": 600,
         "completion_tokens": 60, "cost": pytest.approx(0.66)},
    ]  # fmt: skip
    assert cost["total"]["prompt_tokens"] == 900 and cost["total"]["cost"] == pytest.approx(0.99)
    assert cost["budget"] == {
        "day": "2026-12-05", "per_day": BUDGET, "spent": 0.5, "share": 0.25,
        "alert_at": 0.8, "on_budget": "fallback", "version": report["version"],
    }  # fmt: skip
    html = render_html(report)
    assert "Remote calls and cost" in html and "Budget 2026-12-05: spent 0.5 of 2 (25%" in html

    # Hourly roll-ups keep the sums.
    rows = MonitoringStore(store)
    assert (
        rows.roll_up(datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 3600, UTC)) == 6
    )
    again = Monitor(store).report(
        "triage", window=timedelta(hours=1), now=datetime.fromtimestamp(T0 + 600, UTC)
    )
    assert again["cost"]["versions"] == cost["versions"]


def test_a_model_that_is_not_remote_has_no_cost_section(store: Store, registry: Registry) -> None:
    from tests.support import churn_model, churn_table

    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    report = Monitor(store).report("churn", window=timedelta(hours=1))
    assert report["cost"] is None


def test_the_budget_alert_fires_at_the_threshold_and_not_below(
    store: Store, triage: list[ServedModel]
) -> None:
    rules = AlertRules(hold_down=timedelta(minutes=5), latency_p99_s=None)
    evaluator = AlertEvaluator(store, MonitorPolicy(rules), [])
    spend = SpendStore(store)
    now = datetime.fromtimestamp(T0, UTC)

    def budget_events(at: datetime) -> list[tuple[str, str]]:
        return [(e.event, e.alert.rule) for e in evaluator.evaluate(at) if "budget" in e.alert.rule]

    spend.add("triage", now.date(), 0.79 * BUDGET)  # below 80 %: no false alarm
    assert budget_events(now) == []
    assert [a.rule for a in MonitoringStore(store).open_alerts("triage")] == []
    spend.add("triage", now.date(), 0.02 * BUDGET)  # 81 %
    fired = evaluator.evaluate(now + timedelta(minutes=1))
    [alert] = [e.alert for e in fired if e.alert.rule == "remote_budget"]
    assert alert.summary == "spent 1.62 of the daily budget of 2 (81%; alert at 80%)"
    assert alert.evidence["spent"] == pytest.approx(1.62)
    assert budget_events(now + timedelta(minutes=2)) == []  # still firing: one incident
    # A new UTC day: spend starts again from zero, and the alert resolves after hold-down.
    tomorrow = datetime(2026, 12, 6, 0, 1, tzinfo=UTC)
    assert budget_events(tomorrow) == [("resolved", "remote_budget")]
