"""HTTP clients for a running Plinth server: ``Client`` (blocking) and ``AsyncClient``.

Both speak the same JSON, return the same typed replies (``PredictReply`` of ``Answer``)
and raise a server's error as the ``PlinthError`` class that owns its code, so
``except ContractError`` works against a server as it does in-process.

A request the server could not take *now* is retried: a 503 (overloaded, a model that
failed, a store that is down) or a 429, and a connection that could not be opened, up to
``retries`` times, waiting the server's ``Retry-After`` when it sends one and otherwise an
exponential backoff with jitter (``backoff_s`` doubled per try, at most ``max_backoff_s``).
A 4xx is the caller's mistake and is never retried; neither is a timeout after the
request was sent, since the server may have scored (and logged) it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from plinth.errors import PlinthError, Problem, RemoteError, error_class

#: Statuses that mean "not now": retried with backoff.
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Answer:
    """One record's answer, as ``POST /v1/models/{name}/predict`` gives it."""

    prediction_id: str
    prediction: Any
    confidence: float | None
    version: int
    route: str
    probabilities: dict[str, float] | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    review: dict[str, Any] | None = None  # {"id", "status"} when it went to human review

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        return cls(
            prediction_id=data["prediction_id"],
            prediction=data["prediction"],
            confidence=data.get("confidence"),
            version=int(data["version"]),
            route=data["route"],
            probabilities=data.get("probabilities"),
            warnings=list(data.get("warnings", [])),
            review=data.get("review"),
        )


@dataclass(frozen=True)
class PredictReply:
    """A predict reply: who answered, and one ``Answer`` per record, in order."""

    model: str
    version: int
    route: str
    request_id: str
    predictions: list[Answer]
    revision: int | None = None  # the deployment revision that routed it, when one did

    @classmethod
    def from_json(cls, data: Mapping[str, Any], revision: str | None = None) -> PredictReply:
        return cls(
            model=data["model"],
            version=int(data["version"]),
            route=data["route"],
            request_id=data["request_id"],
            predictions=[Answer.from_json(a) for a in data["predictions"]],
            revision=int(revision) if revision and revision.isdigit() else None,
        )


@dataclass(frozen=True)
class Retry:
    """How a client retries what the server could not take now."""

    retries: int = 3
    backoff_s: float = 0.1
    max_backoff_s: float = 5.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before try ``attempt + 1``: the server's Retry-After, else backoff."""
        if response is not None:
            after = retry_after(response.headers.get("retry-after"))
            if after is not None:
                return min(after, self.max_backoff_s * 4)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: retries do not arrive together


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date), None if absent.

    >>> retry_after("2"), retry_after(None), retry_after("soon")
    (2.0, None, None)
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class _Calls:
    """What both clients share: request bodies, retry decisions, replies and errors."""

    retry: Retry

    @staticmethod
    def _predict_request(
        model: str, records: Sequence[Mapping[str, Any]], key: str | None, version: int | None
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        body: dict[str, Any] = {"records": list(records)}
        if key is not None:
            body["key"] = key
        params = {"version": version} if version is not None else None
        return f"/v1/models/{model}/predict", body, params

    def _should_retry(self, attempt: int, response: httpx.Response | None) -> bool:
        if attempt >= self.retry.retries:
            return False
        return response is None or response.status_code in RETRY_STATUSES

    @staticmethod
    def _decode(response: httpx.Response) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(response.content) if response.content else {}
        if response.status_code >= 400:
            raise _remote_error(data.get("error", {}), response)
        return data


class Client(_Calls):
    """Talks JSON to ``plinth serve``; server errors come back as ``PlinthError``."""

    def __init__(
        self, url: str = "http://127.0.0.1:8000", *, timeout: float = 30.0, retry: Retry = Retry()
    ) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.retry = retry

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def predict(
        self,
        model: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key: str | None = None,
        version: int | None = None,
    ) -> PredictReply:
        """Score records; one ``Answer`` per record, in order."""
        path, body, params = self._predict_request(model, records, key, version)
        response = self._send("POST", path, body, params)
        return PredictReply.from_json(
            self._decode(response), response.headers.get("x-plinth-revision")
        )

    def models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/models")["models"])

    def model(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{name}")

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/predictions/{prediction_id}")

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._decode(self._send(method, path, body, params))

    def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content else None
        attempt = 0
        while True:
            try:
                response: httpx.Response | None = self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.ConnectError:
                if not self._should_retry(attempt, None):
                    raise
                response = None
            if response is not None and not self._should_retry(attempt, response):
                return response
            time.sleep(self.retry.delay(attempt, response))
            attempt += 1


class AsyncClient(_Calls):
    """``Client`` for asyncio code: the same methods, awaited; use ``async with``."""

    def __init__(
        self, url: str = "http://127.0.0.1:8000", *, timeout: float = 30.0, retry: Retry = Retry()
    ) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout)
        self.retry = retry

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def predict(
        self,
        model: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key: str | None = None,
        version: int | None = None,
    ) -> PredictReply:
        """Score records; one ``Answer`` per record, in order."""
        path, body, params = self._predict_request(model, records, key, version)
        response = await self._send("POST", path, body, params)
        return PredictReply.from_json(
            self._decode(response), response.headers.get("x-plinth-revision")
        )

    async def models(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/v1/models"))["models"])

    async def model(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/models/{name}")

    async def prediction(self, prediction_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/predictions/{prediction_id}")

    async def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._decode(await self._send(method, path, body, params))

    async def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content else None
        attempt = 0
        while True:
            try:
                response: httpx.Response | None = await self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.ConnectError:
                if not self._should_retry(attempt, None):
                    raise
                response = None
            if response is not None and not self._should_retry(attempt, response):
                return response
            await asyncio.sleep(self.retry.delay(attempt, response))
            attempt += 1


def _remote_error(error: dict[str, Any], response: httpx.Response) -> PlinthError:
    """The server's error as the class that owns its code, so ``except ContractError``
    works against a server as it does in-process; a code this version does not know
    (or an answer that is no Plinth error) becomes a ``RemoteError`` carrying it."""
    message = error.get("message", response.text)
    hint = error.get("hint", "")
    problems = [
        Problem(
            p.get("code", ""),
            p.get("message", ""),
            p.get("hint", ""),
            p.get("field"),
            p.get("record"),
        )
        for p in error.get("problems", [])
    ]
    code = error.get("code")
    leaf = error_class(code) if isinstance(code, str) else None
    if leaf is None or leaf is RemoteError:
        return RemoteError(
            message, status=response.status_code, code=code, hint=hint, problems=problems
        )
    return leaf.restore(message, hint, response.status_code, problems)
