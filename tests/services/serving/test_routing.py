"""The router: canary split, key stickiness, fallback chain, deadlines, breaker, shadows."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Canary, Deployments, DeploymentSpec
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.pool import ModelPool
from plinth.services.serving.routing import CircuitBreaker, Routed, Router, bucket, choose
from tests.rollout_support import ConstantModel, OtherBrokenModel, SlowModel, register
from tests.support import BrokenModel

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# -- choosing champion or canary ---------------------------------------------------------------


def test_a_ten_percent_canary_gets_ten_percent_of_random_traffic() -> None:
    spec = DeploymentSpec(champion=1, canary=Canary(2, 10.0))
    rng = random.Random(7)
    canary = sum(choose(spec, None, rng)[0] == "canary" for _ in range(5000))
    assert 400 <= canary <= 600


def test_a_ten_percent_canary_gets_ten_percent_of_keys_and_a_key_never_moves() -> None:
    spec = DeploymentSpec(champion=1, canary=Canary(2, 10.0))
    rng = random.Random(0)
    first = {f"user-{i}": choose(spec, f"user-{i}", rng) for i in range(5000)}
    assert 400 <= sum(route == "canary" for route, _ in first.values()) <= 600
    for key, decision in first.items():
        assert all(choose(spec, key, rng) == decision for _ in range(3))


def test_the_key_hash_is_stable_across_processes() -> None:
    # blake2b, not Python's salted hash(): every worker and replica agrees.
    assert bucket("user-42") == pytest.approx(bucket("user-42"))
    assert 0.0 <= bucket("") < 100.0
    assert bucket("user-42") == pytest.approx(int.from_bytes(
        __import__("hashlib").blake2b(b"user-42", digest_size=8).digest(), "big"
    ) / 2**64 * 100)  # fmt: skip


@pytest.mark.parametrize(("weight", "expected"), [(0.0, "champion"), (100.0, "canary")])
def test_weights_zero_and_one_hundred_are_exact(weight: float, expected: str) -> None:
    spec = DeploymentSpec(champion=1, canary=Canary(2, weight))
    rng = random.Random(1)
    routes = {choose(spec, None, rng)[0] for _ in range(2000)}
    routes |= {choose(spec, f"k{i}", rng)[0] for i in range(2000)}
    assert routes == {expected}


def test_without_a_canary_everything_goes_to_the_champion() -> None:
    rng = random.Random(2)
    assert {choose(DeploymentSpec(champion=3), None, rng) for _ in range(100)} == {("champion", 3)}


# -- circuit breaker ---------------------------------------------------------------------------


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    breaker.success()  # the streak resets
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10.0
    assert breaker.state == "half-open"
    assert breaker.allow()  # exactly one probe
    assert not breaker.allow()
    breaker.failure()  # the probe failed: open again for a full cool-down
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_a_probe_ended_by_a_caller_error_lets_another_probe_through() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failures=1, cooldown_s=1.0, clock=clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.neutral()
    assert breaker.allow()


# -- the router over a real store and pool -----------------------------------------------------


@dataclass
class Harness:
    router: Router
    deployments: Deployments
    writer: LogWriter

    async def predict(self, name: str, records: list[Any], key: str | None = None) -> Routed:
        return await self.router.predict(
            name, records, request_id="req", received=time.perf_counter(), key=key
        )

    async def deploy(self, name: str, version: int, **kwargs: Any) -> None:
        await asyncio.to_thread(self.deployments.deploy, name, version, **kwargs)
        assert await self.router.refresh()


@asynccontextmanager
async def harness(
    registry: Registry, clock: Callable[[], float] | None = None
) -> AsyncIterator[Harness]:
    writer = LogWriter(registry.store)
    writer.start()
    pool = ModelPool(registry.store, registry, writer)
    router = Router(
        pool,
        Deployments(registry.store),
        breaker_failures=3,
        breaker_cooldown_s=30.0,
        seed=0,
        clock=clock,
    )
    await router.start(watch=False)
    try:
        yield Harness(router, router.deployments, writer)
    finally:
        await router.close()
        await pool.close()
        writer.close()


@pytest.fixture
def versions(registry: Registry) -> dict[str, int]:
    """model 'm': 1 broken (raises / NaN), 2 answers 2.0, 3 slow, 4 broken too."""
    return {
        "broken": register(registry, "m", BrokenModel()).version,
        "good": register(registry, "m", ConstantModel(2.0)).version,
        "slow": register(registry, "m", SlowModel(1.0)).version,
        "broken2": register(registry, "m", OtherBrokenModel()).version,
    }


def test_undeployed_model_serves_its_newest_version_as_champion(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> Routed:
        async with harness(registry) as h:
            return await h.predict("m", [{"a": 1.0, "b": 0.0}])

    routed = run(scenario())
    assert routed.error is None and routed.route == "champion" and routed.revision is None
    assert routed.version == versions["broken2"]


@pytest.mark.parametrize(
    ("record", "code"),
    [({"a": 5000.0, "b": 0.0}, "model.error"), ({"a": -5000.0, "b": 0.0}, "model.bad_output")],
)
def test_a_failing_champion_is_answered_by_the_next_version_every_time(
    registry: Registry, versions: dict[str, int], record: dict[str, float], code: str
) -> None:
    async def scenario() -> list[Routed]:
        async with harness(registry) as h:
            await h.deploy("m", versions["broken"], fallback=[versions["good"], "default"])
            return [await h.predict("m", [record]) for _ in range(8)]

    replies = run(scenario())
    for routed in replies:
        assert routed.error is None, routed.error
        assert routed.route == "fallback" and routed.version == versions["good"]
        answer = routed.answers[0]
        assert answer["prediction"] == 2.0 and answer["route"] == "fallback"
        warning = next(w for w in answer["warnings"] if w["code"] == "route.fallback")
        assert f"version {versions['broken']}" in warning["message"]
    assert f"[{code}]" in replies[0].answers[0]["warnings"][-1]["message"]
    # Three failures opened the breaker: the rest skipped the champion without calling it.
    assert "circuit breaker is open" in replies[-1].answers[0]["warnings"][-1]["message"]


def test_a_champion_past_its_deadline_is_answered_by_the_default_responder(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> list[Routed]:
        async with harness(registry) as h:
            await h.deploy("m", versions["slow"], fallback=["default"], deadline_ms=50)
            return [await h.predict("m", [{"a": 900.0, "b": 0.0}]) for _ in range(4)]

    for routed in run(scenario()):
        assert routed.error is None, routed.error
        assert routed.route == "fallback"
        answer = routed.answers[0]
        codes = [w["code"] for w in answer["warnings"]]
        assert "route.fallback" in codes and "route.default" in codes
        assert isinstance(answer["prediction"], float)  # the training median of y


def test_fallback_rows_are_logged_with_their_route(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> None:
        async with harness(registry) as h:
            await h.deploy("m", versions["broken"], fallback=[versions["good"], "default"])
            await h.predict("m", [{"a": 5000.0, "b": 0.0}])

    run(scenario())
    rows = registry.store.list_predictions("m")
    assert [(r.route, r.version) for r in rows] == [("fallback", versions["good"])]


def test_a_caller_error_never_falls_back(registry: Registry, versions: dict[str, int]) -> None:
    async def scenario() -> Routed:
        async with harness(registry) as h:
            await h.deploy("m", versions["broken"], fallback=[versions["good"], "default"])
            return await h.predict("m", [{"a": "not a number", "b": 0.0}])

    routed = run(scenario())
    assert routed.error is not None and routed.error.status == 422
    assert routed.error.code == "contract.invalid"


def test_when_the_whole_chain_fails_the_caller_gets_503_with_every_reason(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> Routed:
        async with harness(registry) as h:
            await h.deploy("m", versions["broken"], fallback=[versions["broken2"]])
            return await h.predict("m", [{"a": 5000.0, "b": 0.0}])

    routed = run(scenario())
    assert routed.error is not None and routed.error.status == 503
    assert routed.error.code == "route.exhausted"
    assert [p.field for p in routed.error.problems] == [
        str(versions["broken"]),
        str(versions["broken2"]),
    ]


def test_breaker_opens_then_recovers_through_a_probe(
    registry: Registry, versions: dict[str, int]
) -> None:
    clock = ManualClock()

    async def scenario() -> tuple[list[str], list[str]]:
        async with harness(registry, clock) as h:
            await h.deploy("m", versions["broken"], fallback=["default"])
            breaker = h.router.breaker("m", versions["broken"])
            for _ in range(3):
                await h.predict("m", [{"a": 5000.0, "b": 0.0}])
            opened = breaker.state
            # Open: even a good request is not sent to the champion.
            skipped = await h.predict("m", [{"a": 1.0, "b": 0.0}])
            clock.now += 30.0
            probe = await h.predict("m", [{"a": 1.0, "b": 0.0}])  # half-open: the probe works
            return [opened, breaker.state], [skipped.route, probe.route]

    states, routes = run(scenario())
    assert states == ["open", "closed"]
    assert routes == ["fallback", "champion"]


def test_a_canary_answers_its_share_and_says_so(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> list[Routed]:
        async with harness(registry) as h:
            await h.deploy("m", versions["good"])
            await h.deploy("m", versions["slow"], canary=100.0)
            return [await h.predict("m", [{"a": 1.0, "b": 0.0}], key=f"k{i}") for i in range(5)]

    assert {(r.route, r.version) for r in run(scenario())} == {("canary", versions["slow"])}


def test_shadows_get_copies_that_are_logged_but_never_answer(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> list[Routed]:
        async with harness(registry) as h:
            await h.deploy("m", versions["good"], shadows=[versions["broken"], versions["slow"]])
            replies = [await h.predict("m", [{"a": float(i), "b": 0.0}]) for i in range(5)]
            # A failing shadow (a > 1000 raises in 'broken') must not change the reply.
            replies.append(await h.predict("m", [{"a": 5000.0, "b": 0.0}]))
            for _ in range(200):  # let the shadow copies finish
                if h.router._shadows.empty() and not h.router._tasks:
                    break
                await asyncio.sleep(0.02)
            return replies

    replies = run(scenario())
    assert {(r.route, r.version, r.error) for r in replies} == {
        ("champion", versions["good"], None)
    }
    rows = registry.store.list_predictions("m", limit=100)
    shadow = sorted((r.version, r.input["a"]) for r in rows if r.route == "shadow")
    assert shadow == sorted(
        [(versions["broken"], float(i)) for i in range(5)]
        + [(versions["slow"], float(i)) for i in range(5)]
        + [(versions["slow"], 5000.0)]
    )


def test_a_switch_loads_the_new_version_before_traffic_and_releases_the_old(
    registry: Registry, versions: dict[str, int]
) -> None:
    async def scenario() -> tuple[list[int], list[int], int | None, list[int]]:
        async with harness(registry) as h:
            await h.deploy("m", versions["good"])
            before = h.router.pool.versions_of("m")
            await h.deploy("m", versions["slow"])
            # Loaded (and warmed) by refresh, before any request asked for it.
            loaded = h.router.pool.versions_of("m")
            served = (await h.predict("m", [{"a": 1.0, "b": 0.0}])).version
            for _ in range(250):
                if h.router.pool.versions_of("m") == [versions["slow"]]:
                    break
                await asyncio.sleep(0.02)
            return before, loaded, served, h.router.pool.versions_of("m")

    before, loaded, served, after = run(scenario())
    assert before == [versions["good"]]
    assert versions["slow"] in loaded
    assert served == versions["slow"]
    assert after == [versions["slow"]]
