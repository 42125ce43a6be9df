"""Where one request's CPU goes: py-spy on a pinned `plinth serve`, folded into stages.

Serves the reference forest on one core, drives it closed-loop with hey from the other core,
and samples whichever thread holds the GIL with py-spy: Python's own work, split into the
request's stages below. The server's CPU seconds (from /proc, as bench/run.py measures them)
turn shares into microseconds per request; CPU beyond the GIL-holding time is work done with
the GIL released (SQLite commits, socket calls, the trees' C loops).

    .venv/bin/python bench/profile.py --concurrency 64 --seconds 12
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procs
import workload

MAIN_BIN = Path(sys.executable).parent
RATE = 200  # samples per second

# Innermost match wins, in this order: a sample in the model under the scoring code counts as
# the model. Awaits are charged to the coroutine that awaits (routing, batching), which is
# where asyncio resumes them.
STAGES: list[tuple[str, str]] = [
    ("model call (scikit-learn)", r"call_model|Flavor\.predict"),
    ("output contract and answer", r"output_record|OutputContract|answer_and_row"),
    ("input contract", r"Contract\.apply|Contract\._"),
    ("review gate", r"[Rr]eview"),
    ("profiles and drift counters", r"MonitorCollector|Profile\.update|_Plan\.|LatencyHistogram"),
    ("Prometheus metrics", r"prometheus_client|Batcher\._count"),
    ("request id", r"new_request_id"),
    ("prediction log: ids, rows, insert",
     r"LogWriter|PredictionAppender|RowBuilder|new_ids|_dumps"),
    ("scoring glue: jobs, feature frame", r"scoring\.py"),
    ("batching hand-off: queue, thread, futures",
     r"Batcher|_chain_future|_copy_future_state|concurrent/futures"),
    ("routing", r"Router\.|within \(|ModelPool"),
    ("JSON parse and request checks", r"parse_json|_read_json|parse_predict_body|Auth\."),
    ("reply: encode and send", r"respond \(|RequestResponseCycle\.send"),
    ("HTTP server and event loop (uvicorn, asyncio)", r".*"),
]  # fmt: skip


def fold(raw: Path) -> tuple[collections.Counter[str], int]:
    """Samples per stage from py-spy's raw (collapsed) output."""
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")[1:]
        for name, pattern in STAGES:
            if any(re.search(pattern, f) for f in frames):
                stages[name] += n
                break
    return stages, total


def record(pid: int, out: Path, seconds: float, *, core: int) -> int:
    argv = ["taskset", "-c", str(core), str(_py_spy()), "record", "-p", str(pid)]
    argv += ["-r", str(RATE), "-d", str(int(seconds)), "-f", "raw", "-o", str(out), "--gil"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid


def _py_spy() -> Path:
    found = shutil.which("py-spy") or str(MAIN_BIN / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return Path(found)


def hey(url: str, body: Path, concurrency: int, seconds: float, core: int) -> dict[str, float]:
    argv = ["taskset", "-c", str(core), "hey", "-z", f"{seconds}s", "-c", str(concurrency)]
    argv += ["-m", "POST", "-T", "application/json", "-D", str(body), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"\[200\]\s+(\d+) responses", out)
    return {
        "req_s": float(rate.group(1)) if rate else 0.0,
        "ok": float(total.group(1)) if total else 0.0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--server-core", type=int, default=1)
    p.add_argument("--load-core", type=int, default=0)
    p.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this file")
    p.add_argument(
        "--no-spy",
        action="store_true",
        help="CPU per request only, without py-spy's own cost (and without the stage table)",
    )
    args = p.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed (Debian package hey)")
    with tempfile.TemporaryDirectory(prefix="plinth-profile-") as tmp:
        work = Path(tmp)
        meta = workload.train(work)
        body = work / "body.json"
        record_ = dict(zip(meta["feature_names"], meta["rows"][0], strict=True))
        body.write_text(json.dumps({"records": [record_]}))
        env = dict(os.environ, PLINTH_HOME=str(work / "home"))
        plinth = str(MAIN_BIN / "plinth")
        register = [plinth, "register", str(work / "model.joblib"), "--name", "bc"]
        register += ["--train", str(work / "train.csv"), "--target", "target", "--trust-pickle"]
        subprocess.run(register, env=env, cwd=work, check=True, capture_output=True)
        port = procs.free_port()
        server = procs.start(
            "plinth",
            [plinth, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=work,
            log_path=work / "serve.log",
            core=args.server_core,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            problem = procs.wait_ready(server, [f"{base}/readyz"], timeout=120)
            if problem is not None:
                raise SystemExit(f"plinth {problem}: {server.log_tail()}")
            url = f"{base}/v1/models/bc/predict"
            hey(url, body, args.concurrency, 3, args.load_core)  # warm up
            raw = args.raw or work / "profile.txt"
            batches_before = _batches(base)
            cpu_before = procs.cpu_seconds(server.tree())
            loop_before = _thread_cpu(server_pid := _python_pid(server))
            spy = (
                None if args.no_spy else record(server_pid, raw, args.seconds, core=args.load_core)
            )
            load = hey(url, body, args.concurrency, args.seconds, args.load_core)
            cpu = procs.cpu_seconds(server.tree()) - cpu_before
            loop_cpu = _thread_cpu(server_pid) - loop_before
            batches = [a - b for a, b in zip(_batches(base), batches_before, strict=True)]
            while spy is not None and _alive(spy):
                time.sleep(0.2)
        finally:
            procs.stop(server)
    ok = max(load["ok"], 1)
    us_per_request = 1e6 * cpu / ok
    print(f"c={args.concurrency}: {load['req_s']:,.0f} req/s", end="")
    print("" if args.no_spy else " under py-spy", end="")
    print(
        f", {us_per_request:.0f} µs CPU per request: {1e6 * loop_cpu / ok:.0f} on the event ",
        end="",
    )
    print(f"loop's thread, {1e6 * (cpu - loop_cpu) / ok:.0f} on the others; ", end="")
    print(f"{batches[1] / max(batches[0], 1):.1f} records per model call")
    if args.no_spy:
        return
    stages, held = fold(raw)
    outside = max(0.0, 1 - held / (RATE * cpu))
    print(f"{100 * outside:.0f} % outside the GIL\n")
    print("| stage | share of CPU | µs per request |")
    print("| --- | ---: | ---: |")
    for name, _ in STAGES:
        share = (1 - outside) * stages[name] / max(held, 1)
        print(f"| {name} | {100 * share:.1f} % | {share * us_per_request:.0f} |")
    print(f"| outside the GIL: SQLite commit, sockets, C loops | {100 * outside:.1f} % ", end="")
    print(f"| {outside * us_per_request:.0f} |")


def _python_pid(server: procs.Server) -> int:
    """The server's Python process (``taskset`` execs it, so usually the started pid)."""
    return server.pid


def _thread_cpu(pid: int) -> float:
    """CPU seconds of the process's main thread: the event loop's, in a uvicorn worker."""
    raw = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / procs.CLOCK_TICKS


def _batches(base: str) -> tuple[float, float]:
    """(model calls, records) so far, from the server's own batch-size histogram."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    count = re.search(r'^plinth_batch_records_count\{model="bc"\} ([\d.e+]+)', text, re.M)
    total = re.search(r'^plinth_batch_records_sum\{model="bc"\} ([\d.e+]+)', text, re.M)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


if __name__ == "__main__":
    main()
