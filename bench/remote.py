"""What Plinth adds to a call to a remote model: ``plinth serve`` in front of the provider
simulator against calling the simulator directly with httpx, at concurrency 1 and 64.

Both paths send the same chat-completions request to the same simulator (``tests/
provider_sim.py``, with a fixed provider latency so it is not the bottleneck) from the same
closed-loop asyncio httpx client. Plinth runs with everything on: input contract, schema
validation, metrics, durable logging of request, raw reply and usage (SQLite), one worker.
The overhead per call is the difference of mean latencies at concurrency 1; throughput is
compared at 64. Wall-clock figures need a quiet machine; the CPU seconds ``plinth serve``
spends per call (its whole process tree, from /proc) hold even on a busy one.

    .venv/bin/python bench/remote.py [--duration 10] [--latency-ms 20] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from procs import cpu_seconds, process_tree  # noqa: E402  (bench/ is on the path)

from tests.remote_support import (  # noqa: E402
    EXAMPLES,
    Provider,
    triage_spec,
    write_examples,
    write_spec,
)

PLINTH = str(Path(sys.executable).parent / "plinth")
ANSWER = {"label": "billing", "confidence": 0.9}


async def closed_loop(
    send: Any, concurrency: int, duration: float, warmup: float
) -> dict[str, float]:
    """``concurrency`` clients each sending back to back; latencies after the warm-up."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration

    async def client() -> None:
        nonlocal errors, sent
        while True:
            began = time.perf_counter()
            if began >= stop:
                return
            ok = await send()
            sent += 1
            done = time.perf_counter()
            if began >= measure_from:
                if ok:
                    latencies.append(done - began)
                else:
                    errors += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return {
        "sent": sent,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / duration,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": (
            statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 100 else 0.0
        ),
    }


def direct_body(provider: Provider) -> dict[str, Any]:
    """The request Plinth sends for EXAMPLES[0]: rendered with the same spec."""
    import pandas as pd

    from plinth.flavors.remote import RemoteFlavor, RemoteSpec

    flavor = RemoteFlavor(RemoteSpec.from_dict(triage_spec(provider.base_url)))
    body = flavor._request(
        {k: v for k, v in pd.DataFrame(EXAMPLES[:1]).to_dict(orient="records")[0].items()}
    )
    flavor.close()
    return body


async def run_level(
    url: str, body: dict[str, Any], concurrency: int, args: Any
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def send() -> bool:
            reply = await client.post(url, json=body)
            return reply.status_code == 200

        return await closed_loop(send, concurrency, args.duration, args.warmup)


def start_plinth(home: Path, provider: Provider, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PYTHONPATH=str(REPO))
    spec = write_spec(home.parent / "triage.toml", triage_spec(provider.base_url))
    examples = write_examples(home.parent / "examples.jsonl")
    subprocess.run(
        [PLINTH, "register", str(spec), "--name", "triage", "--examples", str(examples)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    process = subprocess.Popen(
        [PLINTH, "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("plinth serve did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    from tests.support import free_port

    provider = Provider()
    provider.script(default=ANSWER, latency_s=args.latency_ms / 1000.0, keep_requests=False)
    work = Path(tempfile.mkdtemp(prefix="plinth-bench-remote-"))
    port = free_port()
    server = start_plinth(work / "home", provider, port)
    rows: list[dict[str, Any]] = []
    try:
        body = direct_body(provider)
        record = {"records": [EXAMPLES[0]]}
        for concurrency in levels:
            direct = asyncio.run(
                run_level(f"{provider.base_url}/chat/completions", body, concurrency, args)
            )
            tree = process_tree(server.pid)
            cpu_before = cpu_seconds(tree)
            plinth = asyncio.run(
                run_level(
                    f"http://127.0.0.1:{port}/v1/models/triage/predict", record, concurrency, args
                )
            )
            plinth["cpu_ms_per_call"] = (
                (cpu_seconds(tree) - cpu_before) / max(1, plinth["sent"]) * 1000
            )
            rows.append({"concurrency": concurrency, "direct": direct, "plinth": plinth})
    finally:
        server.terminate()
        server.wait(timeout=30)
        provider.stop()

    lines = [
        "# Remote model overhead",
        "",
        f"`bench/remote.py --duration {args.duration:g} --latency-ms {args.latency_ms:g}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| clients | path | req/s | mean ms | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        for path in ("direct", "plinth"):
            r = row[path]
            lines.append(
                f"| {row['concurrency']} | {path} | {r['rps']:.0f} | {r['mean_ms']:.2f} | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
            )
    lines.append("")
    for row in rows:
        d, p = row["direct"], row["plinth"]
        lines.append(
            f"- {row['concurrency']} client(s): Plinth adds {p['mean_ms'] - d['mean_ms']:.2f} ms "
            f"per call (mean), throughput {p['rps'] / d['rps']:.1%} of direct; `plinth serve` "
            f"spent {p['cpu_ms_per_call']:.2f} ms of CPU per call."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(rows, indent=2))
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
