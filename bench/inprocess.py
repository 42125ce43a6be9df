"""Plinth's own CPU per request, without HTTP: the ASGI app driven in process.

The real app (``create_app``: contract, routing, batching, log, profiles, metrics), with the
reference forest registered, answers ``--requests`` predict calls from ``--concurrency``
coroutines on its own event loop; no socket, no uvicorn. Because the clients are
coroutines of the same loop, exactly ``--concurrency`` requests are always in flight and the
batches come out the same size whatever else the machine is doing, so the CPU per request
(process and event-loop thread, from the kernel's own counters) is steady enough for an A/B
of a change to the request path on a shared machine. The clients' own share (a dict and two
tiny coroutines per request) is in the loop thread's figure and is the same for both sides.

    .venv/bin/python bench/inprocess.py --requests 20000 --concurrency 64 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import workload

MAIN_BIN = Path(sys.executable).parent


async def drive(app: Any, name: str, body: bytes, requests: int, concurrency: int) -> float:
    """Send ``requests`` predict calls, ``concurrency`` at a time; returns the loop thread's
    CPU seconds (the process's are read by the caller)."""
    path = f"/v1/models/{name}/predict"
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    left = requests
    failed = 0

    async def client() -> None:
        nonlocal left, failed
        message = {"type": "http.request", "body": body, "more_body": False}
        status = [0]

        async def receive() -> dict[str, Any]:
            return message

        async def send(event: dict[str, Any]) -> None:
            if event["type"] == "http.response.start":
                status[0] = event["status"]

        while left > 0:
            left -= 1
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "query_string": b"",
                "headers": headers,
                "client": ("127.0.0.1", 40000),
            }
            await app(scope, receive, send)
            if status[0] != 200:
                failed += 1

    started = time.thread_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    if failed:
        raise SystemExit(f"{failed} of {requests} requests failed")
    return time.thread_time() - started


async def measure(home: Path, body: bytes, args: argparse.Namespace) -> list[dict[str, float]]:
    from plinth.config.settings import Settings
    from plinth.http.app import create_app

    app = create_app(Settings(home=home))
    rounds = []
    async with app.router.lifespan_context(app):
        await drive(app, "bc", body, max(2000, args.requests // 5), args.concurrency)  # warm up
        for _ in range(args.rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            loop_cpu = await drive(app, "bc", body, args.requests, args.concurrency)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rounds.append(
                {
                    "us_per_request": 1e6 * cpu / args.requests,
                    "loop_us_per_request": 1e6 * loop_cpu / args.requests,
                    "other_us_per_request": 1e6 * (cpu - loop_cpu) / args.requests,
                    "req_s": args.requests / wall,
                }
            )
    return rounds


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--core", type=int, default=1, help="the core to pin this process to")
    p.add_argument("--no-log", action="store_true", help="PLINTH_LOG_PREDICTIONS=false")
    p.add_argument("--asyncio-loop", action="store_true", help="asyncio's own loop, not uvloop")
    args = p.parse_args()
    os.sched_setaffinity(0, {args.core})
    for key in [k for k in os.environ if k.startswith("PLINTH_")]:
        del os.environ[key]
    if args.no_log:
        os.environ["PLINTH_LOG_PREDICTIONS"] = "false"
    with tempfile.TemporaryDirectory(prefix="plinth-inprocess-") as tmp:
        work = Path(tmp)
        meta = workload.train(work)
        home = work / "home"
        record = dict(zip(meta["feature_names"], meta["rows"][0], strict=True))
        body = json.dumps({"records": [record]}).encode()
        register = [str(MAIN_BIN / "plinth"), "register", str(work / "model.joblib")]
        register += ["--name", "bc", "--train", str(work / "train.csv"), "--target", "target"]
        register += ["--trust-pickle"]
        env = dict(os.environ, PLINTH_HOME=str(home))
        subprocess.run(register, env=env, cwd=work, check=True, capture_output=True)
        factory = None if args.asyncio_loop else _loop_factory()
        with asyncio.Runner(loop_factory=factory) as runner:  # uvicorn's choice
            rounds = runner.run(measure(home, body, args))
    for key in ("us_per_request", "loop_us_per_request", "other_us_per_request", "req_s"):
        values = [r[key] for r in rounds]
        print(
            f"{key}: median {statistics.median(values):,.1f} "
            f"(range {min(values):,.1f} to {max(values):,.1f})"
        )
    print(f"load: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
