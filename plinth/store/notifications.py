"""PostgreSQL notifications: one listening connection per process, on its own thread.

A notification is a hint, never the data: whoever listens re-reads the store when one
arrives, and keeps polling anyway, so a notification lost while the connection was down
costs only the poll interval. The connection reconnects with backoff, and says "something
may have changed" after each reconnect, since it could not hear while it was gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

WAIT_S = 0.5  # how long one wait for notifications blocks before checking for stop
MAX_BACKOFF_S = 30.0


class Listener:
    """``LISTEN channel`` on a dedicated autocommit connection; ``on_notify`` runs on the
    listener's thread for each notification (and once after each reconnect)."""

    def __init__(self, url: str, channel: str, on_notify: Callable[[], None]) -> None:
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._channel = channel
        self._on_notify = on_notify
        self._stop = threading.Event()
        #: Set while the LISTEN is in place (tests and health checks wait on it).
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plinth-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    self.listening.set()
                    backoff = 0.5
                    if not first:
                        self._notify()  # changes made while we could not hear
                    first = False
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=WAIT_S):
                            self._notify()
            except psycopg.Error as error:
                self.listening.clear()
                log.warning(
                    "listening for %s failed (%s); retrying in %.1f s",
                    self._channel,
                    error,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.listening.clear()

    def _notify(self) -> None:
        try:
            self._on_notify()
        except Exception:  # a listener must outlive its callback's bugs
            log.exception("notification handler for %s failed", self._channel)
