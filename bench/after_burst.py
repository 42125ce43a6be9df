"""One client before and after a burst: p50 and CPU per request, per server setting.

Goal 3 of issue 14 asks for c=1 p50 <= 1.1x bare FastAPI also after a burst. Each run starts
one server pinned to a core (hey on the other), measures c=1, drives c=64 for ``--burst``
seconds, and measures c=1 again on the same process, so the before/after pair is not
confounded by a restart. Settings alternate run by run (A/B), and the CPU per request is
split into the event loop's thread and the busiest other thread (the scoring thread, or
the bare server's worker thread), read from /proc/PID/task.

Settings: ``bare`` (bench/servers/bare_fastapi.py), ``log`` (Plinth as configured),
``nolog`` (PLINTH_LOG_PREDICTIONS=false), ``arena2`` (MALLOC_ARENA_MAX=2), ``mmap``
(MALLOC_MMAP_THRESHOLD_=131072: every block above 128 kB gets its own mapping), ``trim``
(Plinth, with ``malloc_trim(0)`` called in the server through gdb after the burst).

    .venv/bin/python bench/after_burst.py --settings bare,log,nolog,arena2,trim --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
import procs
import targets
import workers
import workload

SERVER_CORE, LOAD_CORE = 1, 0
MALLOC_ENV = {
    "log": {},
    "nolog": {"PLINTH_LOG_PREDICTIONS": "false"},
    "arena2": {"MALLOC_ARENA_MAX": "2"},
    "mmap": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "trim": {},
}


def _thread_cpu(pid: int) -> dict[str, float]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / procs.CLOCK_TICKS
    return out


def _level(hey: str, pid: int, url: str, body: Path, clients: int, seconds: float) -> str:
    load.run_hey(hey, url, body, concurrency=clients, duration_s=2, core=LOAD_CORE)  # warm-up
    before = _thread_cpu(pid)
    r = load.run_hey(hey, url, body, concurrency=clients, duration_s=seconds, core=LOAD_CORE)
    after = _thread_cpu(pid)
    n = max(r.requests, 1)
    per = {tid: 1000 * (cpu - before.get(tid, 0.0)) / n for tid, cpu in after.items()}
    loop = per.pop(str(pid), 0.0)
    busiest = max(per.values(), default=0.0)
    if clients > 1:
        return f"{r.rps:,.0f} req/s"
    return f"p50 {r.p50_ms:.2f} ms (CPU/req: loop {loop:.2f} + busiest thread {busiest:.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--settings", default="bare,log,nolog")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds at c=1")
    p.add_argument("--burst", type=float, default=15.0, help="seconds at c=64")
    args = p.parse_args()
    procs.install_cleanup()
    hey = load.ensure_hey()
    work = Path(tempfile.mkdtemp(prefix="plinth-bench-after-burst-"))
    meta = workload.train(work)
    ctx = targets.Context(
        work,
        meta["feature_names"],
        meta["rows"],
        work / "model.joblib",
        Path(sys.executable).parent,
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    for round_ in range(args.rounds):
        for setting in args.settings.split(","):
            home = work / f"home-{setting}-{round_}"
            home.mkdir()
            body = home / "body.json"
            if setting == "bare":
                launch = targets.prepare_bare(ctx, procs.free_port())
                argv, env, url, ready = (
                    launch.argv,
                    launch.env,
                    launch.predict_url,
                    launch.ready_urls,
                )
                body.write_text(json.dumps(launch.body))
            else:
                env = workers._env(home, None, log=True)
                env.update(MALLOC_ENV[setting])
                workers._register(work, env)
                port = procs.free_port()
                argv = [workers.PLINTH, "serve", "--host", "127.0.0.1", "--port", str(port)]
                url = f"http://127.0.0.1:{port}/v1/models/bc/predict"
                ready = [f"http://127.0.0.1:{port}/readyz"]
                record = dict(zip(meta["feature_names"], meta["rows"][0], strict=True))
                body.write_text(json.dumps({"records": [record]}))
            server = procs.start(
                setting, argv, env=env, cwd=work, log_path=home / "server.log", core=SERVER_CORE
            )
            try:
                why = procs.wait_ready(server, ready, timeout=120)
                if why:
                    raise SystemExit(f"{setting} not ready: {why}\n{server.log_tail()}")
                time.sleep(1)
                pid = workers._worker_pids(server)[0]
                first = _level(hey, pid, url, body, 1, args.seconds)
                burst = _level(hey, pid, url, body, 64, args.burst)
                if setting == "trim":
                    call = ["gdb", "-p", str(pid), "-batch", "-ex", "call (int)malloc_trim(0)"]
                    subprocess.run(call, capture_output=True, timeout=60, check=False)
                then = _level(hey, pid, url, body, 1, args.seconds)
                print(
                    f"round {round_} {setting:6s} | before: {first} | burst {burst} "
                    f"| after: {then} | load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            finally:
                server.stop()


if __name__ == "__main__":
    main()
