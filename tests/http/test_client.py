"""plinth.Client against the real app: a server's error comes back as the class owning its code."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from plinth.client import Answer, AsyncClient, Client, PredictReply, Retry
from plinth.errors import (
    ContractError,
    ContractViolationError,
    ModelNotFoundError,
    NotFoundError,
    NotServingError,
    PathNotFoundError,
)
from tests.support import churn_record, free_port


@pytest.fixture
def plinth_client(client: TestClient) -> Client:
    remote = Client()
    remote._http = client  # the in-process app instead of a socket; same httpx API
    return remote


def test_a_contract_error_is_a_contract_error_on_the_client(plinth_client: Client) -> None:
    with pytest.raises(ContractError) as caught:
        plinth_client.predict("churn", [{"tenure": "many"}])
    error = caught.value
    assert type(error) is ContractViolationError and error.status == 422
    assert error.code == "contract.invalid" and error.problems
    assert {p.code for p in error.problems} >= {"contract.wrong_type"}


def test_not_found_errors_keep_their_family_and_the_servers_hint(
    plinth_client: Client, client: TestClient
) -> None:
    with pytest.raises(NotFoundError) as caught:
        plinth_client.model("nope")
    assert type(caught.value) is ModelNotFoundError
    assert caught.value.hint == client.get("/v1/models/nope").json()["error"]["hint"]
    with pytest.raises(PathNotFoundError, match="Not Found"):
        plinth_client._call("GET", "/v1/nowhere")


def test_replies_are_typed(plinth_client: Client) -> None:
    reply = plinth_client.predict("churn", [churn_record(), churn_record(city="rome")], key="k-1")
    assert isinstance(reply, PredictReply) and reply.model == "churn" and reply.version == 1
    assert [type(a) for a in reply.predictions] == [Answer, Answer]
    first = reply.predictions[0]
    assert first.prediction in {"yes", "no"} and first.route == "champion"
    assert set(first.probabilities or {}) == {"no", "yes"}
    assert first.confidence == max((first.probabilities or {}).values())
    unseen = {w["code"] for w in reply.predictions[1].warnings}
    assert "contract.unseen_category" in unseen


class _Flaky:
    """A real HTTP server on loopback that answers ``statuses`` in turn, then a reply."""

    def __init__(self, statuses: list[tuple[int, dict[str, str]]]) -> None:
        self.statuses = list(statuses)
        self.seen = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                flaky.seen += 1
                status, headers = flaky.statuses.pop(0) if flaky.statuses else (200, {})
                body = json.dumps(REPLY if status == 200 else _error(status)).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


REPLY = {
    "model": "m",
    "version": 2,
    "route": "canary",
    "request_id": "r-1",
    "predictions": [
        {"prediction_id": "p-1", "prediction": 1.5, "confidence": None, "version": 2,
         "route": "canary", "warnings": []}
    ],
}  # fmt: skip


def _error(status: int) -> dict[str, Any]:
    code = "server.not_serving" if status == 503 else "contract.invalid"
    return {"error": {"code": code, "message": "no", "hint": "later"}}


class _Recorded(Retry):
    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        waits.append(super().delay(attempt, response))
        return 0.0  # the test does not sleep; it checks what the client would have waited


waits: list[float] = []


@pytest.fixture
def flaky() -> Iterator[Callable[[list[tuple[int, dict[str, str]]]], _Flaky]]:
    servers: list[_Flaky] = []

    def start(statuses: list[tuple[int, dict[str, str]]]) -> _Flaky:
        servers.append(_Flaky(statuses))
        return servers[-1]

    waits.clear()
    yield start
    for server in servers:
        server.close()


def _predict(kind: str, url: str, retry: Retry) -> PredictReply:
    """One predict call through the blocking ``Client`` or the ``AsyncClient``."""
    if kind == "sync":
        with Client(url, retry=retry) as client:
            return client.predict("m", [{"a": 1}])

    async def call() -> PredictReply:
        async with AsyncClient(url, retry=retry) as client:
            return await client.predict("m", [{"a": 1}], key="k")

    return asyncio.run(call())


CLIENTS = pytest.mark.parametrize("kind", ["sync", "async"])


@CLIENTS
def test_503_and_429_are_retried_honouring_retry_after(flaky: Any, kind: str) -> None:
    server = flaky([(503, {"Retry-After": "2"}), (429, {}), (503, {})])
    reply = _predict(kind, server.url, _Recorded(retries=3, backoff_s=0.1))
    assert server.seen == 4 and reply.route == "canary" and reply.predictions[0].prediction == 1.5
    assert reply == PredictReply.from_json(REPLY)
    assert waits[0] == 2.0  # the server's Retry-After
    assert 0.1 <= waits[1] <= 0.2 and 0.2 <= waits[2] <= 0.4  # backoff with jitter, doubling


@CLIENTS
def test_retry_after_is_capped_and_read_as_a_date(flaky: Any, kind: str) -> None:
    # A Retry-After far away is capped (4 x max_backoff_s); an HTTP date in the past is 0.
    server = flaky(
        [(503, {"Retry-After": "3600"}), (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})]
    )
    _predict(kind, server.url, _Recorded(retries=2, max_backoff_s=5.0))
    assert server.seen == 3 and waits == [20.0, 0.0]


@CLIENTS
def test_retries_give_up_and_4xx_is_never_retried(flaky: Any, kind: str) -> None:
    always = flaky([(503, {})] * 10)
    with pytest.raises(NotServingError) as caught:
        _predict(kind, always.url, _Recorded(retries=2))
    assert always.seen == 3 and caught.value.code == "server.not_serving"
    refused = flaky([(422, {})])
    with pytest.raises(ContractError):
        _predict(kind, refused.url, _Recorded(retries=5))
    assert refused.seen == 1


@CLIENTS
def test_a_refused_connection_is_retried_then_raised(kind: str) -> None:
    waits.clear()
    with pytest.raises(httpx.ConnectError):
        _predict(kind, f"http://127.0.0.1:{free_port()}", _Recorded(retries=2))
    assert len(waits) == 2
