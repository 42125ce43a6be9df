"""One HTTP exchange with a remote model, retried the way a careful client retries.

Time-outs, connection failures, 429 and 5xx are retried with full-jitter exponential
backoff (``plinth.core.backoff``), obeying ``Retry-After``; any other 4xx is the request's
fault and is not retried. Each attempt's time-out is the spec's ``timeout_s`` cut to what
is left of the call's budget: the spec's ``total_timeout_s`` and the request's own deadline
(``plinth.flavors.base.CALL_DEADLINE``, set by scoring), so a retry never outlives the
caller. With ``hedge_after_s`` an attempt that has no reply by then is sent once more and
the first reply wins (a hedged request: the slow tail costs a second call, not a time-out).
The clock, the sleep and the random draw are attributes, so a test swaps them.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from plinth.core.backoff import Backoff, retry_after_seconds
from plinth.errors import RemoteRefusedError, RemoteUnavailableError
from plinth.flavors.remote.transport import (
    Connections,
    Reply,
    TransportFailureError,
    TransportTimeoutError,
)

#: Called once per attempt with its record (the flavor counts attempts by outcome).
AttemptHook = Callable[[dict[str, Any]], None]
#: Where ``post`` notes each attempt for tracing: its record, start and end (epoch ns).
AttemptSpans = list[tuple[dict[str, Any], int, int]]
#: What an attempt returns: the standard library transport's reply or httpx's response.
Response = Reply | httpx.Response


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
        hedge_after_s: float | None = None,
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
        self.hedge_after_s = hedge_after_s
        self._json_headers = {"content-type": "application/json", **self.headers}
        self._slots = threading.BoundedSemaphore(concurrency)
        # Hedged attempts run here: two per attempt at most, each holding a slot.
        self._hedges = ThreadPoolExecutor(2 * concurrency, thread_name_prefix="plinth-hedge")
        # The standard library's connections (a fifth of httpx's CPU per call), unless a
        # proxy variable applies to the endpoint: httpx honours those.
        self._connections: Connections | None = None
        self._client: httpx.Client | None = None
        if _proxied(url):
            self._client = httpx.Client(
                limits=httpx.Limits(
                    max_connections=concurrency, max_keepalive_connections=concurrency
                ),
                follow_redirects=False,
            )
        else:
            self._connections = Connections(url, concurrency)

    def close(self) -> None:
        self._hedges.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
        if self._connections is not None:
            self._connections.close()

    def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        headers: dict[str, str],
        deadline: float | None = None,
        spans: AttemptSpans | None = None,
    ) -> Exchange:
        """POST ``body`` until a 2xx JSON reply, a refusal, or the time budget runs out.

        ``body`` may come already serialised (the remote flavor hashes those very bytes),
        so a request is encoded once, not once for its hash and again for the wire. With
        ``spans`` (tracing on), each attempt's record is noted there with its wall-clock
        start and end; without, the clock is not read for it."""
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {**self._json_headers, **headers} if headers else self._json_headers
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
            began_ns = time.time_ns() if spans is not None else 0
            record: dict[str, Any] = {"attempt": retry + 1, "timeout_s": round(timeout, 6)}
            retry_after: float | None = None
            try:
                response = self._attempt(content, sent, timeout, limit, record)
            except (httpx.TimeoutException, TransportTimeoutError):
                record["outcome"] = "timeout"
            except httpx.TransportError as exc:
                record["outcome"] = f"transport: {type(exc).__name__}"
            except TransportFailureError as exc:
                record["outcome"] = f"transport: {exc}"  # the failure's class name
            else:
                record["status"] = response.status_code
                if 200 <= response.status_code < 300:
                    try:
                        parsed = orjson.loads(response.content)
                    except ValueError:
                        record["outcome"] = "invalid JSON reply"
                    else:
                        record["outcome"] = "ok"
                        record["seconds"] = round(self.clock() - began, 6)
                        attempts.append(record)
                        self._notify(record, spans, began_ns)
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
                    self._notify(record, spans, began_ns)
                    raise RemoteRefusedError(
                        f"The endpoint refused the request with HTTP {response.status_code}: "
                        f"{_excerpt(response.text)}",
                    )
            record["seconds"] = round(self.clock() - began, 6)
            attempts.append(record)
            self._notify(record, spans, began_ns)
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

    def _send(self, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        with self._slots:
            if self._connections is not None:
                return self._connections.post(body, headers, timeout)
            assert self._client is not None
            return self._client.post(
                self.url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
            )

    def _attempt(
        self,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        limit: float,
        record: dict[str, Any],
    ) -> Response:
        """One attempt; hedged: if no reply came within ``hedge_after_s``, the same request
        is sent once more and the first reply wins (the other is left to finish unread, and
        its tokens are not counted)."""
        if self.hedge_after_s is None or self.hedge_after_s >= timeout:
            return self._send(body, headers, timeout)
        first = self._hedges.submit(self._send, body, headers, timeout)
        done, _ = wait([first], timeout=self.hedge_after_s)
        if done:
            return first.result()
        record["hedged"] = True
        second = self._hedges.submit(
            self._send, body, headers, max(0.001, min(timeout, limit - self.clock()))
        )
        pending = {first, second}
        finished: list[Future[Response]] = []
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            finished += done
            for future in done:
                if future.exception() is None and 200 <= future.result().status_code < 300:
                    return future.result()
        # Neither answered well: a reply (429, 5xx) if there is one, else the first error.
        replies = [f for f in finished if f.exception() is None]
        return (replies or [first])[0].result()

    def _notify(self, record: dict[str, Any], spans: AttemptSpans | None, began_ns: int) -> None:
        if spans is not None:
            spans.append((record, began_ns, time.time_ns()))
        if self.on_attempt is not None:
            with contextlib.suppress(Exception):  # the hook never fails a call
                self.on_attempt(record)


def _proxied(url: str) -> bool:
    """Whether an ``HTTP(S)_PROXY`` or ``ALL_PROXY`` variable applies to ``url`` (``NO_PROXY``
    considered), as httpx would read them."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
