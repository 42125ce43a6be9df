"""One real ``plinth serve`` for all console tests, and Playwright on Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.ui.world import CHROMIUM, World, build, send_traffic, start_retraining


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build(tmp_path_factory.mktemp("console"))
    try:
        send_traffic(built)
        # A diamonds job through the real path (HTTP, the server's background worker, the
        # trainer's process, the gate), left to run while the other tests do.
        built.training_job = start_retraining(built)
        yield built
    finally:
        built.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per test file, stopped before the worker's next file: Playwright's sync
    API keeps an asyncio loop marked running on this thread while it is open, and any later
    test in the same xdist worker that calls ``asyncio.run`` would fail."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()
