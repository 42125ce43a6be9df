"""The review queue's SLA maths when the wall clock jumps, and with a full queue.

Items carry wall-clock times written by many processes; a clock set back (NTP step, a VM
restored) must not give negative ages or resolution times, a clock that jumps ahead ages
the queue by exactly the jump, and thousands of open items change nothing but the count.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from plinth.core.review_policy import ReviewPolicy
from plinth.services.registry.versions import Registry
from plinth.services.review.queue import ReviewQueue
from plinth.services.review.writer import ReviewWriter
from plinth.services.serving.scoring import Job, score
from tests.support import churn_model, churn_record, churn_table


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def gate_everything(registry: Registry, records: int) -> None:
    """Score ``records`` with a gate every answer falls under; log and queue them all."""
    model = registry.load(registry.store.get_version("churn"))
    model.review = ReviewPolicy(1.0)
    writer = ReviewWriter(registry.store, with_context=False)
    writer.start()
    try:
        now = time.perf_counter()
        rows = [churn_record(age=20 + i % 60) for i in range(records)]
        (result,) = score(model, [Job(rows, "req", now, now + 600)])
        assert result.error is None
        registry.store.insert_predictions(result.rows)
        writer.submit(result.reviews).result(timeout=120)
    finally:
        writer.close()


@pytest.fixture
def churn(registry: Registry) -> Registry:
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    return registry


def test_a_clock_set_back_gives_no_negative_age_and_a_jump_ahead_ages_exactly(
    churn: Registry,
) -> None:
    gate_everything(churn, 2)
    created = datetime.now(UTC)
    clock = Clock(created - timedelta(hours=1))  # set back an hour after the items were made
    queue = ReviewQueue(churn.store, sla=timedelta(hours=4), clock=clock)
    (numbers,) = queue.numbers("churn")
    assert numbers.open == 2 and numbers.oldest_age_s == 0.0 and not numbers.sla_breached
    first, second = (i["id"] for i in queue.list_items(model="churn"))
    queue.claim(first, "ann")
    queue.resolve(first, "ann", "approve")  # resolved "before" it was created
    (numbers,) = queue.numbers("churn")
    assert numbers.median_resolution_s == 0.0 and numbers.resolved_counted == 1

    clock.now = created + timedelta(hours=4, minutes=1)  # jumps ahead past the SLA
    (numbers,) = queue.numbers("churn")
    assert numbers.open == 1 and numbers.sla_breached
    assert numbers.oldest_age_s == pytest.approx(4 * 3600 + 60, abs=60)
    queue.claim(second, "bob")
    queue.resolve(second, "bob", "approve")
    (numbers,) = queue.numbers("churn")
    assert numbers.open == 0 and numbers.oldest_age_s is None and not numbers.sla_breached


def test_a_full_queue_is_counted_and_listed_without_trouble(churn: Registry) -> None:
    gate_everything(churn, 2000)
    queue = ReviewQueue(churn.store, sla=timedelta(minutes=30))
    (numbers,) = queue.numbers("churn")
    assert numbers.open == 2000 and not numbers.sla_breached
    assert numbers.oldest_age_s is not None and 0.0 <= numbers.oldest_age_s < 1800
    page = queue.list_items(model="churn", limit=100)
    assert len(page) == 100 and all(i["status"] == "pending" for i in page)
    queue.publish([numbers])  # the gauges take it as well
