"""Admission in front of the batcher, and a hung model beside healthy ones.

A request the model's queue cannot answer before its deadline is refused at once with
``server.overloaded`` (and a Retry-After), not queued to time out; a queue bound refuses
what is past it; a model whose call never returns answers by its fallback chain and holds
up no other model. Real store, real pool, real batchers; the slow models really sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from plinth.config.policies import BatchingPolicy, Policies
from plinth.errors import OverloadedError
from plinth.services import telemetry
from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Deployments
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.pool import ModelPool
from plinth.services.serving.routing import Routed, Router
from tests.rollout_support import HANG_RELEASE, ConstantModel, HangingModel, SlowModel, register

SLOW = {"a": 900.0, "b": 0.0}  # SlowModel sleeps on a > 500


@asynccontextmanager
async def router_over(
    registry: Registry, batching: dict[str, BatchingPolicy]
) -> AsyncIterator[Router]:
    writer = LogWriter(registry.store)
    writer.start()
    pool = ModelPool(registry.store, registry, writer, policies=Policies(batching_models=batching))
    router = Router(pool, Deployments(registry.store), seed=0)
    await router.start(watch=False)
    try:
        yield router
    finally:
        await router.close()
        await pool.close()
        writer.close()


async def predict(router: Router, name: str, record: dict[str, Any]) -> Routed:
    return await router.predict(name, [record], request_id="r", received=time.perf_counter())


def shed_count(name: str) -> float:
    return telemetry.SHED.labels(name)._value.get()


def test_a_request_the_queue_cannot_answer_in_time_is_shed_at_once(registry: Registry) -> None:
    version = register(registry, "m", SlowModel(0.2)).version
    Deployments(registry.store).deploy("m", version, fallback=["default"], deadline_ms=300)
    before = shed_count("m")

    async def scenario() -> list[Routed]:
        async with router_over(registry, {"m": BatchingPolicy(max_batch_size=1)}) as router:
            assert (await predict(router, "m", SLOW)).error is None  # learns ~0.2 s a call
            return await asyncio.gather(*(predict(router, "m", SLOW) for _ in range(6)))

    replies = asyncio.run(scenario())
    # One call at a time, 0.2 s each, 0.3 s deadline: only the first fits; the other five
    # are refused before queueing (no fallback: overload is not the model's failure).
    served = [r for r in replies if r.error is None]
    shed = [r.error for r in replies if isinstance(r.error, OverloadedError)]
    assert len(served) == 1 and served[0].route == "champion"
    assert len(shed) == 5
    assert all(e.status == 503 and e.retry_after_s >= 1 for e in shed)
    assert "past this request's deadline" in shed[0].message
    assert shed_count("m") - before == 5


def test_a_queue_bound_refuses_what_is_past_it_even_without_deadline_shedding(
    registry: Registry,
) -> None:
    register(registry, "m", SlowModel(0.2))
    policy = BatchingPolicy(max_queue_records=2, shed=False)

    async def scenario() -> list[Routed]:
        async with router_over(registry, {"m": policy}) as router:
            return await asyncio.gather(*(predict(router, "m", SLOW) for _ in range(5)))

    replies = asyncio.run(scenario())
    codes = [r.error.code if r.error else "ok" for r in replies]
    assert codes == ["ok", "ok", "server.overloaded", "server.overloaded", "server.overloaded"]
    assert replies[2].error is not None
    assert "max_queue_records 2" in replies[2].error.message


def test_without_shedding_everything_queues(registry: Registry) -> None:
    version = register(registry, "m", SlowModel(0.1)).version
    Deployments(registry.store).deploy("m", version, deadline_ms=150)
    policy = BatchingPolicy(max_batch_size=1, shed=False)

    async def scenario() -> list[Routed]:
        async with router_over(registry, {"m": policy}) as router:
            await predict(router, "m", SLOW)
            return await asyncio.gather(*(predict(router, "m", SLOW) for _ in range(4)))

    codes = {r.error.code if r.error else "ok" for r in asyncio.run(scenario())}
    assert "server.overloaded" not in codes
    assert "model.deadline_exceeded" in codes  # queued to time out: what shedding prevents


def test_a_hung_model_answers_by_its_fallback_and_holds_up_no_other_model(
    registry: Registry,
) -> None:
    hung = register(registry, "m", HangingModel()).version
    register(registry, "other", ConstantModel(2.0))
    Deployments(registry.store).deploy("m", hung, fallback=["default"], deadline_ms=100)
    HANG_RELEASE.clear()

    async def scenario() -> tuple[Routed, list[Routed], bool]:
        async with router_over(registry, {}) as router:
            try:
                answered = await predict(router, "m", SLOW)  # its call hangs past 100 ms
                others = [await predict(router, "other", {"a": 1.0, "b": 0.0}) for _ in range(20)]
                batcher = await router.pool.get("m", hung)
                still_hung = batcher._running is not None
                return answered, others, still_hung
            finally:
                HANG_RELEASE.set()  # let the hung call return, so the pool can close

    answered, others, still_hung = asyncio.run(scenario())
    assert still_hung  # every answer below came while m's model call had not returned
    assert all(r.error is None and r.answers[0]["prediction"] == 2.0 for r in others)
    assert answered.error is None and answered.route == "fallback"
    codes = [w["code"] for w in answered.answers[0]["warnings"]]
    assert "route.fallback" in codes and "route.default" in codes
    assert "model.deadline_exceeded" in answered.answers[0]["warnings"][-2]["message"]
