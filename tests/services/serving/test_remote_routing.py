"""The router over remote versions: fallback, the breaker opening and recovering, no warm-up
calls, against the provider simulator on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from plinth.flavors.remote import RemoteSpec
from plinth.services.registry.versions import Registry
from plinth.services.serving.routing import Routed
from tests.remote_support import EXAMPLES, Provider, triage_spec
from tests.services.serving.test_routing import ManualClock, harness

BILLING = {"label": "billing", "confidence": 0.9}
FAST_RETRY = {"attempts": 1, "timeout_s": 2.0}


def register(registry: Registry, provider: Provider, **sections: Any) -> int:
    spec = RemoteSpec.from_dict(triage_spec(provider.base_url, **sections))
    import pandas as pd

    return registry.register_remote(spec, name="triage", examples=pd.DataFrame(EXAMPLES)).version


def test_the_breaker_opens_on_a_failing_endpoint_and_closes_when_it_recovers(
    registry: Registry, provider: Provider
) -> None:
    backup = register(registry, provider, parameters={"temperature": 0.0, "seed": 1})
    primary = register(registry, provider, retry=FAST_RETRY, endpoint={"model": "sim-large"})
    clock = ManualClock()

    async def scenario() -> tuple[list[Routed], int, list[Routed], int, Routed]:
        async with harness(registry, clock=clock) as h:
            await h.deploy("triage", primary, fallback=[backup])
            assert provider.requests() == []  # deploying a remote version sends nothing
            # The primary (model sim-large) fails every time, the backup answers.
            provider.script(rules=[{"model": "sim-large", "status": 500}], default=BILLING)
            failing = [await h.predict("triage", [EXAMPLES[0]]) for _ in range(3)]
            after_three = len(provider.requests())
            skipped = [await h.predict("triage", [EXAMPLES[0]]) for _ in range(4)]
            after_skips = len(provider.requests())
            clock.now += 30.0  # the cool-down: one probe goes to the primary, and it answers
            provider.script(default=BILLING)
            recovered = await h.predict("triage", [EXAMPLES[1]])
            return failing, after_three, skipped, after_skips, recovered

    failing, after_three, skipped, after_skips, recovered = asyncio.run(scenario())
    for routed in failing + skipped:
        assert routed.error is None and (routed.version, routed.route) == (backup, "fallback")
    assert "[model.remote_unavailable]" in failing[0].answers[0]["warnings"][-1]["message"]
    assert after_three == 6  # primary then backup, three times
    for routed in skipped:
        assert "circuit breaker is open" in routed.answers[0]["warnings"][-1]["message"]
    assert after_skips == after_three + 4  # the open breaker sent only the backup's calls
    assert recovered.error is None and (recovered.version, recovered.route) == (primary, "champion")


def test_a_slow_reply_does_not_hold_up_the_requests_behind_it(
    registry: Registry, provider: Provider
) -> None:
    # With limits.concurrency = 1 (one batch at a time) the slow request would finish
    # before the fast ones behind it; the default 8 lets them pass it.
    version = register(registry, provider)
    provider.script(
        rules=[{"contains": "office", "delay_s": 1.5, "answer": BILLING}], default=BILLING
    )
    finished: list[str] = []

    async def scenario() -> None:
        async with harness(registry) as h:
            await h.deploy("triage", version)

            async def ask(label: str, record: dict[str, Any]) -> None:
                routed = await h.predict("triage", [record])
                assert routed.error is None, routed.error
                finished.append(label)

            slow = asyncio.create_task(ask("slow", EXAMPLES[2]))
            await asyncio.sleep(0.2)  # the slow one's batch is at the provider
            await asyncio.gather(*(ask(f"fast{i}", EXAMPLES[i]) for i in (0, 1, 3)))
            await slow

    asyncio.run(scenario())
    assert finished[-1] == "slow" and len(finished) == 4
