"""A real ``plinth serve`` subprocess on a loopback port, and the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.support import free_port

PLINTH = str(Path(sys.executable).parent / "plinth")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    home: Path
    env: dict[str, str]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [PLINTH, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.home.parent,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"plinth {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]


@pytest.fixture
def plinth_env(tmp_path: Path, database_url: str) -> Env:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    home = tmp_path / "home"
    env["PLINTH_HOME"] = str(home)
    env["PLINTH_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(REPO)  # so pickled test models (tests.support) can be loaded
    env["COLUMNS"] = "200"
    return Env(home, env)


def start_server(
    plinth_env: Env, *extra: str, port: int | None = None, timeout: float = 60.0
) -> Server:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(plinth_env.home.parent / f"server-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [PLINTH, "serve", "--port", str(port), *extra],
        env=plinth_env.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise AssertionError(
                (plinth_env.home.parent / f"server-{port}.log").read_text(errors="replace")
            )
        try:
            ready = httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            if ready and process.poll() is None:  # not another test's server on this port
                return Server(url, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # its workers too: they would outlive the test
    process.wait()
    log.close()
    raise AssertionError("plinth serve did not become ready")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    server.log.close()


@pytest.fixture
def serve(plinth_env: Env) -> Iterator[type[Server]]:
    started: list[Server] = []

    class Starter(Server):
        def __new__(cls, *extra: str) -> Server:  # type: ignore[misc]
            server = start_server(plinth_env, *extra)
            started.append(server)
            return server

    yield Starter
    for server in started:
        stop_server(server)
