"""One HTTP exchange with a remote model, retried the way a careful client retries.

Time-outs, connection failures, 429 and 5xx are retried with full-jitter exponential
backoff (``plinth.core.backoff``), obeying ``Retry-After``; any other 4xx is the request's
fault and is not retried. Each attempt's time-out is the spec's ``timeout_s`` cut to what
is left of the call's budget: the spec's ``total_timeout_s`` and the request's own deadline
(``plinth.flavors.base.CALL_DEADLINE``, set by scoring), so a retry never outlives the
caller. The clock, the sleep and the random draw are attributes, so a test swaps them.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from plinth.core.backoff import Backoff, retry_after_seconds
from plinth.errors import RemoteRefusedError, RemoteUnavailableError

#: Called once per attempt with its record (the tracing hook: one span per attempt).
AttemptHook = Callable[[dict[str, Any]], None]


@dataclass
class Exchange:
    """The answer to one request and how it was obtained."""

    body: Any  # the parsed JSON reply
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Caller:
    """Sends JSON requests to one endpoint with retries, a time budget and a concurrency cap."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int,
        timeout_s: float,
        total_timeout_s: float,
        backoff: Backoff,
        concurrency: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s
        self.backoff = backoff
        self.headers = dict(headers or {})
        # Seams for tests (an injected clock): the perf_counter clock scoring's deadlines use.
        self.clock: Callable[[], float] = time.perf_counter
        self.sleep: Callable[[float], None] = time.sleep
        self.draw: Callable[[], float] = random.random
        self.on_attempt: AttemptHook | None = None
        self._slots = threading.BoundedSemaphore(concurrency)
        self._client = httpx.Client(
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def post(
        self, body: dict[str, Any], *, headers: dict[str, str], deadline: float | None = None
    ) -> Exchange:
        """POST ``body`` until a 2xx JSON reply, a refusal, or the time budget runs out."""
        start = self.clock()
        limit = start + self.total_timeout_s
        if deadline is not None:
            limit = min(limit, deadline)
        attempts: list[dict[str, Any]] = []
        for retry in range(self.attempts):
            left = limit - self.clock()
            if left <= 0:
                break
            timeout = min(self.timeout_s, left)
            began = self.clock()
            record: dict[str, Any] = {"attempt": retry + 1, "timeout_s": round(timeout, 6)}
            retry_after: float | None = None
            try:
                with self._slots:
                    response = self._client.post(
                        self.url,
                        json=body,
                        headers={**self.headers, **headers},
                        timeout=httpx.Timeout(timeout),
                    )
            except httpx.TimeoutException:
                record["outcome"] = "timeout"
            except httpx.TransportError as exc:
                record["outcome"] = f"transport: {type(exc).__name__}"
            else:
                record["status"] = response.status_code
                if 200 <= response.status_code < 300:
                    try:
                        parsed = response.json()
                    except ValueError:
                        record["outcome"] = "invalid JSON reply"
                    else:
                        record["outcome"] = "ok"
                        record["seconds"] = round(self.clock() - began, 6)
                        attempts.append(record)
                        self._notify(record)
                        return Exchange(parsed, attempts)
                elif response.status_code == 429 or response.status_code >= 500:
                    record["outcome"] = "rate limited" if response.status_code == 429 else "error"
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
                    if retry_after is not None:
                        record["retry_after_s"] = retry_after
                else:
                    record["outcome"] = "refused"
                    record["seconds"] = round(self.clock() - began, 6)
                    attempts.append(record)
                    self._notify(record)
                    raise RemoteRefusedError(
                        f"The endpoint refused the request with HTTP {response.status_code}: "
                        f"{_excerpt(response.text)}",
                    )
            record["seconds"] = round(self.clock() - began, 6)
            attempts.append(record)
            self._notify(record)
            if retry + 1 >= self.attempts:
                break
            wait = self.backoff.delay(retry, draw=self.draw(), retry_after_s=retry_after)
            if self.clock() + wait >= limit:
                attempts[-1]["gave_up"] = "the next wait would pass the deadline"
                break
            attempts[-1]["wait_s"] = round(wait, 6)
            self.sleep(wait)
        summary = "; ".join(
            f"#{a['attempt']} {a.get('status', '')} {a['outcome']}".replace("  ", " ")
            for a in attempts
        )
        error = RemoteUnavailableError(
            f"The endpoint did not answer after {len(attempts)} attempt(s) within "
            f"{limit - start:.3g} s: {summary or 'no time left to try'}.",
        )
        error.attempts = attempts  # type: ignore[attr-defined]
        raise error

    def _notify(self, record: dict[str, Any]) -> None:
        if self.on_attempt is not None:
            with contextlib.suppress(Exception):  # a tracing hook never fails a call
                self.on_attempt(record)


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
