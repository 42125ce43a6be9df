"""Keep-alive HTTP/1.1 POSTs to one endpoint on the standard library's ``http.client``.

A remote call's own CPU is mostly the HTTP client's: httpx (request and URL objects, header
normalisation, the h11 state machine) spent about 530 µs per POST to the provider simulator
here, ``http.client`` on a kept-alive connection about 110 µs. Plinth sends one kind of
request to one origin, so it needs none of httpx's generality on this path: this module
keeps a small pool of connections (one per call in flight), a time-out per attempt (each
socket operation, like httpx's), no redirects, and drops a connection the server closed
while it sat idle before reusing it.

When an ``HTTP(S)_PROXY`` variable applies to the endpoint, ``Caller`` keeps using httpx,
which honours proxies; this transport never reads the environment.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi


@dataclass(frozen=True)
class Reply:
    """A response read whole: what ``Caller`` looks at."""

    status_code: int
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class TransportTimeoutError(Exception):
    """No reply within the attempt's time-out."""


class TransportFailureError(Exception):
    """The connection failed (refused, reset, closed mid-reply, bad HTTP); the message is
    the failure's class name, as httpx's are reported."""


class Connections:
    """POSTs to ``url`` over up to ``size`` kept-alive connections."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc.rpartition("@")[2]
        self.size = size
        # The CA bundle httpx verifies with (certifi, one of its dependencies), so moving
        # off httpx trusts exactly the certificates it did, whatever the image's system store.
        self._context = ssl.create_default_context(cafile=certifi.where()) if self.https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """One POST; the connection goes back to the pool only after a whole reply."""
        connection = self._take(timeout)
        try:
            connection.request("POST", self.target, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except TimeoutError as exc:
            connection.close()
            raise TransportTimeoutError(str(exc) or "timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransportFailureError(type(exc).__name__) from exc
        reply = Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            content,
        )
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return reply

    def close(self) -> None:
        """Close the idle connections; one still in use (a hedge's loser) closes when done."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self, timeout: float) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._open(timeout)
            sock = connection.sock
            if sock is None or _readable(sock):  # closed by the server while idle
                connection.close()
                continue
            sock.settimeout(timeout)
            connection.timeout = timeout
            return connection

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.size:
                self._idle.append(connection)
                return
        connection.close()


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed (or sent junk)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
