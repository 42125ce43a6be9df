"""Shadow benchmark: the champion's p50 with and without a shadow that sleeps 500 ms.

    .venv/bin/python bench/shadow.py [--requests 2000] [--clients 4] [--workers 1]

Starts a real ``plinth serve`` on a loopback port in a temporary home (SQLite), registers a
linear champion and a shadow that sleeps 500 ms on every batch, and drives the same
closed-loop load twice: champion alone, then champion with the shadow. Prints both p50s
(and p95s), the ratio, and how many shadow copies were answered or dropped. Nothing is
asserted: a shadow must leave the champion's p50 unchanged (ratio close to 1).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plinth.api import open_registry  # noqa: E402
from plinth.config.settings import Settings  # noqa: E402
from tests.canary_support import LinearModel, records  # noqa: E402
from tests.rollout_support import SlowModel, register  # noqa: E402
from tests.support import free_port  # noqa: E402

PLINTH = str(Path(sys.executable).parent / "plinth")


def _drive(url: str, n: int, clients: int) -> list[float]:
    """``n`` one-record requests from ``clients`` threads; each request's latency in seconds."""
    pending = records(0, n, rare=0.0)
    for r in pending:
        r["a"] = 600.0  # SlowModel sleeps on a > 500: the shadow sleeps on every copy
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(n))

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                reply = http.post(f"{url}/v1/models/m/predict", json={"records": [pending[i]]})
                elapsed = time.perf_counter() - t0
                reply.raise_for_status()
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        settings = Settings(home=home)
        with open_registry(settings) as registry:
            register(registry, "m", LinearModel())
            register(registry, "m", SlowModel(0.5))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
        env |= {"PLINTH_HOME": str(home), "PYTHONPATH": str(REPO)}
        subprocess.run([PLINTH, "deploy", "m", "1"], env=env, check=True, capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [PLINTH, "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            _drive(url, 200, args.clients)  # warm up
            alone = _drive(url, args.requests, args.clients)
            subprocess.run(
                [PLINTH, "deploy", "m", "1", "--shadow", "2"], env=env, check=True,
                capture_output=True,
            )  # fmt: skip
            time.sleep(1.5)  # every worker applies the revision (and warms the shadow)
            shadowed = _drive(url, args.requests, args.clients)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    dropped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("plinth_shadow_dropped_total{")
    )
    answered = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("plinth_requests_total{") and 'route="shadow"' in line
    )
    p50_alone, p50_shadow = statistics.median(alone), statistics.median(shadowed)
    print(f"requests per run: {args.requests}, clients: {args.clients}, workers: {args.workers}")
    for label, values in (("champion alone:     ", alone), ("with 500 ms shadow: ", shadowed)):
        p50, p95 = statistics.median(values) * 1000, _quantile(values, 0.95) * 1000
        print(f"{label} p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    print(f"ratio (shadow/alone):  p50 {p50_shadow / p50_alone:.3f}")
    print(f"shadow copies answered {answered:.0f}, dropped {dropped:.0f} (queue full)")


if __name__ == "__main__":
    main()
