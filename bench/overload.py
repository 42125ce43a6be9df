"""Overload: admitted p99, shed share and non-503 5xx at 1x, 2x and 4x the sustainable rate.

Serves a forest behind a fixed 40 ms call (``overload_model.FixedCostModel``: the cost of
an accelerator or remote model, spent off the GIL), batches of at most 4 records and a
250 ms request deadline, so the model caps the rate near 100 req/s, which a Python client
can exceed several times; the server is pinned to one core, the load generator is not.
The sustainable rate is measured first (closed loop, 16 clients); then each multiple
runs open loop: requests leave on schedule whether or not earlier ones were answered,
which is what real callers do. With admission on (the default) the server sheds what its
queue cannot answer in time; ``--no-shed`` runs the same levels without it, for contrast.

Client-side latency counts from the moment the request is sent, so it also holds any wait
before the server reads it (the kernel's accept queue, a starved event loop); the
server-side p99 comes from the server's own histogram (``plinth_request_duration_seconds``,
from the request's arrival; it also counts requests abandoned at their deadline).

    .venv/bin/python bench/overload.py                 # about a minute
    .venv/bin/python bench/overload.py --no-shed --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs
from overload_model import FixedCostModel

PLINTH = str(Path(sys.executable).parent / "plinth")


@dataclass
class Level:
    multiple: float
    offered_rps: float
    sent: int = 0
    latencies_ok: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    server_p99_ms: float = float("nan")  # from the server's own latency histogram

    def row(self) -> str:
        ok = len(self.latencies_ok)
        p50 = np.percentile(self.latencies_ok, 50) * 1e3 if ok else float("nan")
        p99 = np.percentile(self.latencies_ok, 99) * 1e3 if ok else float("nan")
        shed = self.outcomes["503 server.overloaded"]
        other_5xx = sum(
            n
            for k, n in self.outcomes.items()
            if k.startswith("5") and k != "503 server.overloaded"
        )
        return (
            f"| {self.multiple:g}x | {self.offered_rps:.0f} | {self.sent} | {ok} | "
            f"{p50:.0f} | {p99:.0f} | {self.server_p99_ms:.0f} | "
            f"{shed / max(self.sent, 1):.1%} | {other_5xx} | "
            f"{self.outcomes['client error']} |"
        )


def prepare(work: Path, shed: bool) -> dict[str, str]:
    """Train and register the forest; the environment ``plinth serve`` runs with."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from plinth.api import open_registry
    from plinth.config.settings import Settings

    data = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    features = frame.drop(columns=["target"])
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, n_jobs=1, random_state=0)
    forest.fit(features, frame["target"])
    model = FixedCostModel(forest, 0.04)
    home = work / "home"
    with open_registry(Settings(home=home)) as registry:
        registry.register(model, name="cancer", train=frame, target="target", trust_pickle=True)
    (work / "plinth.toml").write_text("[models.cancer]\nmax_batch_size = 4\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        PLINTH_HOME=str(home),
        PLINTH_POLICY_FILE=str(work / "plinth.toml"),
        PLINTH_REQUEST_TIMEOUT_S="0.25",
        PLINTH_SHED="true" if shed else "false",
        PLINTH_ALERTS_ENABLED="false",
        PYTHONPATH=str(Path(__file__).resolve().parent),  # the server unpickles the model
    )
    record = features.iloc[0].to_dict()
    (work / "body.json").write_text(__import__("json").dumps({"records": [record]}))
    return env


async def closed_loop(url: str, body: bytes, clients: int, seconds: float) -> float:
    """Answers per second with ``clients`` callers each waiting for its reply."""
    done = 0
    stop = time.perf_counter() + seconds

    async def caller(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            reply = await http.post(url, content=body, headers={"content-type": "application/json"})
            done += reply.status_code == 200

    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=clients)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(caller(http) for _ in range(clients)))
        return done / (time.perf_counter() - started)


async def open_loop(url: str, body: bytes, level: Level, seconds: float) -> None:
    """Send at ``level.offered_rps`` on schedule for ``seconds``; record every outcome."""
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:

        async def one() -> None:
            sent = time.perf_counter()
            try:
                reply = await http.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                level.outcomes["client error"] += 1
                return
            if reply.status_code == 200:
                level.latencies_ok.append(time.perf_counter() - sent)
                level.outcomes["200"] += 1
            else:
                code = reply.json().get("error", {}).get("code", "?")
                level.outcomes[f"{reply.status_code} {code}"] += 1

        tasks = []
        start = time.perf_counter()
        total = int(level.offered_rps * seconds)
        for i in range(total):
            delay = start + i / level.offered_rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        level.sent = total
        await asyncio.gather(*tasks)


def latency_buckets(base: str) -> dict[float, float]:
    """The server's ``plinth_request_duration_seconds`` buckets (served requests only)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        if line.startswith("plinth_request_duration_seconds_bucket{") and 'model="cancer"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            found[float(le)] = float(line.rsplit(" ", 1)[1])
    return found


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Milliseconds, interpolated within the bucket as Prometheus does, over one level."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank, lower, below = q * counts[-1], 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower * 1e3
            share = (rank - below) / max(cumulative - below, 1e-9)
            return (lower + (bound - lower) * share) * 1e3
        lower, below = bound, cumulative
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per level")
    parser.add_argument("--multiples", default="1,2,4")
    parser.add_argument("--no-shed", action="store_true", help="run with PLINTH_SHED=false")
    parser.add_argument("--server-core", type=int, default=1)
    args = parser.parse_args()
    procs.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="plinth-overload-") as tmp:
        work = Path(tmp)
        env = prepare(work, shed=not args.no_shed)
        port = procs.free_port()
        server = procs.start(
            "plinth",
            [PLINTH, "serve", "--port", str(port)],
            env=env,
            cwd=work,
            log_path=work / "server.log",
            core=args.server_core,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while procs.http_status(f"{base}/readyz") != 200:
                if time.monotonic() > deadline or server.proc.poll() is not None:
                    raise SystemExit(server.log_tail())
                time.sleep(0.2)
            url = f"{base}/v1/models/cancer/predict"
            body = (work / "body.json").read_bytes()
            asyncio.run(closed_loop(url, body, 16, 1.0))  # warm-up
            capacity = asyncio.run(closed_loop(url, body, 16, 4.0))
            print(f"sustainable rate (closed loop, 16 clients): {capacity:.0f} req/s")
            print(
                f"admission: {'off (PLINTH_SHED=false)' if args.no_shed else 'on'}; "
                "deadline 250 ms; batches of <= 4 records; server on one core\n"
            )
            print(
                "| load | offered req/s | sent | 200 | p50 ms | admitted p99 ms (client) | "
                "admitted p99 ms (server) | shed (503 server.overloaded) | other 5xx | "
                "client errors |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for multiple in (float(m) for m in args.multiples.split(",")):
                level = Level(multiple, capacity * multiple)
                before = latency_buckets(base)
                asyncio.run(open_loop(url, body, level, args.duration))
                level.server_p99_ms = histogram_quantile(0.99, before, latency_buckets(base))
                print(level.row(), flush=True)
                others = {k: n for k, n in level.outcomes.items() if k not in ("200",)}
                if others:
                    print(f"|  | outcomes: {dict(others)} ||||||||", flush=True)
                time.sleep(1.0)
        finally:
            procs.stop(server)


if __name__ == "__main__":
    main()
