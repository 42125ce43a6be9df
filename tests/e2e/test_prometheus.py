"""A real Prometheus scrapes a real ``plinth serve --workers 2``; promtool accepts /metrics.

Needs the Debian ``prometheus`` package (``/usr/bin/prometheus`` and ``promtool``); CI
installs it (``.ci/run``). Missing binaries fail the test rather than skip it, so a green
run always means a real scrape happened.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import skops.io as sio

from tests.e2e.conftest import Env, Server
from tests.support import churn_model, churn_record, churn_table, free_port, write_csv

pytestmark = pytest.mark.e2e

QUERY = "histogram_quantile(0.99, sum(rate(plinth_request_duration_seconds_bucket[1m])) by (le))"


def _binary(name: str) -> str:
    found = shutil.which(name)
    assert found, (
        f"{name} is not installed; run: apt-get install -y --no-install-recommends prometheus"
    )
    return found


def _wait(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _register(plinth_env: Env, tmp_path: Path) -> None:
    train = churn_table(0)
    sio.dump(churn_model(train), tmp_path / "churn.skops")
    write_csv(train, tmp_path / "train.csv")
    plinth_env.cli(
        "register", str(tmp_path / "churn.skops"), "--name", "churn",
        "--train", str(tmp_path / "train.csv"), "--target", "churn",
    )  # fmt: skip


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Prometheus for a target; yields a function that returns its base URL."""
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: plinth\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [
                    _binary("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in logs:
        log.close()


def test_real_prometheus_scrapes_and_answers_p99(
    plinth_env: Env, serve: type[Server], tmp_path: Path, prometheus: Callable[[str], str]
) -> None:
    _register(plinth_env, tmp_path)
    server = serve("--workers", "2")
    stop = threading.Event()
    workers: set[str] = set()

    sent: list[int] = []

    def traffic() -> None:
        while not stop.is_set():
            # A new connection each time, so both workers get requests.
            reply = httpx.post(
                f"{server.url}/v1/models/churn/predict",
                json={"records": [churn_record()]},
                timeout=10,
            )
            assert reply.status_code == 200
            workers.add(reply.headers.get("x-plinth-worker", ""))
            sent.append(1)
            time.sleep(0.01)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        # promtool lints the exposition format (names, types, help, units).
        _wait(lambda: "plinth_request_duration_seconds_bucket" in _metrics(server), "metrics")
        exposition = _metrics(server)
        checked = subprocess.run(
            [_binary("promtool"), "check", "metrics"],
            input=exposition.encode(),
            capture_output=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()

        base = prometheus(server.url.removeprefix("http://"))
        _wait(lambda: _target_up(base), "Prometheus to scrape plinth")

        def p99() -> float | None:
            result = _query(base, QUERY)
            if not result:
                return None
            value = float(result[0]["value"][1])
            return value if math.isfinite(value) else None

        value = _wait(p99, "histogram_quantile(0.99, ...) to answer")
        assert 0 < value < 10
        # Both workers' requests are in the scraped counters (multiprocess mode).
        total = _wait(
            lambda: _query(base, 'sum(plinth_requests_total{model="churn",outcome="ok"})'),
            "the request counter",
        )
        assert float(total[0]["value"][1]) > 0
    finally:
        stop.set()
        sender.join(10)
    # /metrics adds up every worker's counters (multiprocess mode): nothing is lost.
    counted = _sum_samples(_metrics(server), 'plinth_requests_total{model="churn"')
    assert counted == len(sent)
    assert len(workers - {""}) >= 1


def _metrics(server: Server) -> str:
    return httpx.get(f"{server.url}/metrics", timeout=10).text


def _sum_samples(exposition: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.startswith(prefix)
    )


def _target_up(base: str) -> bool:
    try:
        targets = httpx.get(f"{base}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    except (httpx.HTTPError, KeyError, ValueError):
        return False
    return any(t["health"] == "up" for t in targets)


def _query(base: str, query: str) -> list[Any]:
    try:
        reply = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=5)
    except httpx.HTTPError:
        return []
    body = reply.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])
