"""The remote flavor's HTTP transport: kept-alive connections, a connection the server
closed while idle, time-outs, and httpx when a proxy variable applies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from plinth.core.backoff import Backoff
from plinth.flavors.remote.client import Caller
from plinth.flavors.remote.transport import Connections, TransportTimeoutError


class Server:
    """HTTP/1.1 on loopback that answers ``{"n": k}``; ``close_after`` hangs up after each
    reply without saying so (as a server whose keep-alive time-out passed does)."""

    def __init__(self) -> None:
        self.connections = 0
        self.close_after = False
        self.delay_s = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(server.delay_s)
                reply = json.dumps({"echo": json.loads(body)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                self.close_connection = server.close_after

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1/chat/completions"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


HEADERS = {"content-type": "application/json"}


def test_connections_are_kept_alive_and_reused(server: Server) -> None:
    pool = Connections(server.url, size=2)
    for n in range(3):
        reply = pool.post(json.dumps({"n": n}).encode(), HEADERS, timeout=5)
        assert (reply.status_code, json.loads(reply.content)) == (200, {"echo": {"n": n}})
    assert server.connections == 1
    pool.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused(server: Server) -> None:
    server.close_after = True
    pool = Connections(server.url, size=2)
    for n in range(2):
        assert pool.post(json.dumps({"n": n}).encode(), HEADERS, timeout=5).status_code == 200
        time.sleep(0.05)  # let the hang-up arrive (not a timing assertion: both must answer)
    assert server.connections == 2
    pool.close()


def test_a_slow_reply_times_out_and_its_connection_is_dropped(server: Server) -> None:
    server.delay_s = 0.5
    pool = Connections(server.url, size=2)
    with pytest.raises(TransportTimeoutError):
        pool.post(b"{}", HEADERS, timeout=0.1)
    assert pool._idle == []
    server.delay_s = 0.0
    assert pool.post(b"{}", HEADERS, timeout=5).status_code == 200
    pool.close()


def caller(url: str) -> Caller:
    return Caller(
        url, attempts=1, timeout_s=5, total_timeout_s=5, backoff=Backoff(0.01, 0.01),
        concurrency=2,
    )  # fmt: skip


def test_a_proxy_variable_that_applies_keeps_httpx(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = caller(server.url)
    assert direct._connections is not None and direct._client is None
    assert direct.post({"a": 1}, headers={}).body == {"echo": {"a": 1}}
    direct.close()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    proxied = caller(server.url)
    assert proxied._client is not None and proxied._connections is None
    proxied.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = caller(server.url)
    assert bypassed._connections is not None
    bypassed.close()
