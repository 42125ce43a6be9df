"""What Plinth adds to a call to a remote model: ``plinth serve`` in front of the provider
simulator against calling the simulator directly, at concurrency 1 and 64.

Both paths send the same chat-completions request to the same simulator (``tests/
provider_sim.py``, with a fixed provider latency so it is not the bottleneck) from the same
closed-loop load generator, ``hey`` (as the other benches). Not an asyncio httpx client:
``httpx.AsyncClient`` managed about 50-90 req/s at 64 concurrent requests here, against
the 2,600 req/s the simulator answers hey, so it measured itself (encode/httpx#3215).
Plinth runs with everything on: input contract, schema validation, metrics, durable
logging of request, raw reply and usage (SQLite), one worker, and a spec that allows as
many calls in flight as there are clients. The overhead per call is the difference of mean
latencies; throughput is compared at 64. Wall-clock figures need a quiet machine; the CPU
seconds ``plinth serve`` spends per call (its whole process tree, from /proc) hold even on a
busy one.

``--profile DIR`` also samples ``plinth serve`` with py-spy (the GIL-holding thread) during
each level's Plinth leg and folds the stacks into the remote path's stages (py-spy costs the
server some CPU of its own: take CPU figures from runs without it). To measure another
checkout, run its copy of this file: the server imports Plinth from the tree the file is
in (its ``PYTHONPATH``).

    .venv/bin/python bench/remote.py [--duration 10] [--latency-ms 20] [--out FILE.md]
                                     [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from load import ensure_hey, run_hey  # noqa: E402  (bench/ is on the path)
from procs import cpu_seconds, process_tree  # noqa: E402

from tests.remote_support import (  # noqa: E402
    EXAMPLES,
    Provider,
    triage_spec,
    write_examples,
    write_spec,
)

PLINTH = str(Path(sys.executable).parent / "plinth")
ANSWER = {"label": "billing", "confidence": 0.9}
SPY_RATE = 200  # samples per second

# Innermost-first: a sample counts for the first stage any of its frames matches.
STAGES: list[tuple[str, str]] = [
    ("remote: HTTP exchange (sockets)", r"transport\.py|http/client\.py|Caller\."),
    ("remote: output schema validation", r"jsonschema|RemoteFlavor\._parse"),
    ("remote: request rendering and hashing", r"RemoteFlavor\._request|_canonical|_render"),
    ("remote: cost, tokens, budget", r"RemoteFlavor\._charge|_count_attempt|Ledger"),
    ("remote: rest of the flavor", r"flavors/remote/"),
    ("output contract and answer", r"output_record|OutputContract|answer_and_row"),
    ("input contract", r"Contract\.apply|Contract\._"),
    ("review gate", r"[Rr]eview"),
    ("profiles and drift counters", r"MonitorCollector|Profile\.update|_Plan\.|Usage"),
    ("Prometheus metrics", r"prometheus_client"),
    ("prediction log: rows, encode, insert", r"LogWriter|PredictionAppender|RowBuilder|_dumps"),
    ("scoring glue", r"scoring\.py"),
    ("batching hand-off: queue, threads, futures", r"Batcher|concurrent/futures|threading\.py"),
    ("routing", r"Router\.|ModelPool"),
    ("HTTP edge: parse, checks, reply", r"http/predict\.py|http/edge\.py|Auth\."),
    ("HTTP server and event loop (uvicorn, asyncio)", r".*"),
]  # fmt: skip


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


def run_level(hey: str, url: str, body: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    """``seconds`` of ``concurrency`` closed-loop clients (hey, unpinned)."""
    result = run_hey(hey, url, body, concurrency=concurrency, duration_s=seconds, core=None)
    return {
        "sent": result.requests,
        "errors": result.non_2xx,
        "rps": result.rps,
        "mean_ms": result.mean_ms,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "little_ratio": result.little_ratio,
    }


def start_plinth(home: Path, provider: Provider, port: int, calls: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PYTHONPATH=str(REPO))
    # As many calls in flight as clients: the spec's cap must not be what is measured.
    spec = triage_spec(provider.base_url, limits={"concurrency": calls})
    spec = write_spec(home.parent / "triage.toml", spec)
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


def spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` for ``seconds``: the GIL holder's stacks, collapsed."""
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [found, "record", "-p", str(pid), "-r", str(SPY_RATE), "-d", str(int(seconds))]
    argv += ["-f", "raw", "-o", str(out), "--gil", "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fold(raw: Path) -> tuple[dict[str, int], int]:
    """Samples per stage of py-spy's collapsed stacks."""
    stages = dict.fromkeys((name for name, _ in STAGES), 0)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        frames = stack.split(";")[1:]
        for name, pattern in STAGES:
            if any(re.search(pattern, f) for f in frames):
                stages[name] += int(count)
                break
    return stages, total


def batches(port: int) -> tuple[float, float]:
    """(model calls, records) so far, from the server's batch-size histogram."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = [
        re.search(rf'^plinth_batch_records_{k}\{{model="triage"\}} ([\d.e+]+)', text, re.M)
        for k in ("count", "sum")
    ]
    return (
        float(found[0].group(1)) if found[0] else 0.0,
        float(found[1].group(1)) if found[1] else 0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy stacks go here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    from tests.support import free_port

    provider = Provider()
    provider.script(default=ANSWER, latency_s=args.latency_ms / 1000.0, keep_requests=False)
    work = Path(tempfile.mkdtemp(prefix="plinth-bench-remote-"))
    port = free_port()
    hey = ensure_hey()
    load_before = os.getloadavg()[0]
    server = start_plinth(work / "home", provider, port, max(levels))
    rows: list[dict[str, Any]] = []
    direct_url = f"{provider.base_url}/chat/completions"
    plinth_url = f"http://127.0.0.1:{port}/v1/models/triage/predict"
    try:
        body = work / "direct.json"
        body.write_text(json.dumps(direct_body(provider)))
        record = work / "plinth.json"
        record.write_text(json.dumps({"records": [EXAMPLES[0]]}))
        for concurrency in levels:
            run_level(hey, direct_url, body, concurrency, args.warmup)
            direct = run_level(hey, direct_url, body, concurrency, args.duration)
            run_level(hey, plinth_url, record, concurrency, args.warmup)
            tree = process_tree(server.pid)
            calls_before = batches(port)
            cpu_before = cpu_seconds(tree)
            sampler = None
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                raw = args.profile / f"c{concurrency}.txt"
                sampler = spy(server.pid, raw, args.duration)
            plinth = run_level(hey, plinth_url, record, concurrency, args.duration)
            cpu = cpu_seconds(tree) - cpu_before
            calls = [a - b for a, b in zip(batches(port), calls_before, strict=True)]
            plinth["cpu_ms_per_call"] = cpu / max(1, plinth["sent"]) * 1000
            plinth["records_per_batch"] = calls[1] / max(1.0, calls[0])
            if sampler is not None:
                sampler.wait(timeout=120)
                plinth["stages"], plinth["samples"] = fold(raw)
                plinth["cpu_s"] = cpu
            rows.append({"concurrency": concurrency, "direct": direct, "plinth": plinth})
    finally:
        server.terminate()
        server.wait(timeout=30)
        provider.stop()

    lines = [
        "# Remote model overhead",
        "",
        f"`bench/remote.py --duration {args.duration:g} --latency-ms {args.latency_ms:g}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, load average {load_before:.1f} before, "
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
            f"spent {p['cpu_ms_per_call']:.2f} ms of CPU per call "
            f"({p['records_per_batch']:.1f} calls per batch)."
        )
    for row in rows:
        p = row["plinth"]
        if "stages" not in p:
            continue
        # Samples of the GIL holder against the process's CPU: the rest ran without the GIL.
        held = p["samples"] / SPY_RATE / max(p["cpu_s"], 1e-9)
        lines += [
            "",
            f"{row['concurrency']} client(s), under py-spy ({p['cpu_ms_per_call']:.2f} ms CPU "
            f"per call with it; {min(held, 1.0):.0%} of it holding the GIL):",
            "",
            "| stage | share of GIL samples | µs per call |",
            "| --- | ---: | ---: |",
        ]
        for name, n in p["stages"].items():
            share = n / max(p["samples"], 1)
            us = share * min(held, 1.0) * p["cpu_ms_per_call"] * 1000
            lines.append(f"| {name} | {share:.1%} | {us:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(rows, indent=2))
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
