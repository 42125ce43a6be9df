"""This process: its identity in shared rows and leases, and blocking work off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_thread(func: Callable[[], T]) -> T:
    """``asyncio.to_thread`` that, when cancelled, waits for the thread before re-raising.

    A cancelled ``to_thread`` returns at once while its thread runs on; at shutdown that
    thread would still hold (or reopen) a database connection after the store is closed.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


def worker_id() -> str:
    """Who wrote an interval row or holds a lease: host, pid and a random suffix (pids are
    reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
