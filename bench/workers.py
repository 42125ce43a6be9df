"""Scaling with workers: CPU per request with ``plinth serve --workers 1`` and ``--workers 2``.

Two workers on two cores must not lose throughput per core to contention in the store
(SQLite's single writer, PostgreSQL's locks, the deployment poll): if they did, each request
would cost more CPU with two workers than with one. A closed loop at full speed cannot show
this here, because the load generator would take a share of the same two cores. So each
level offers a fixed rate that needs a fraction of a core (hey's per-client pacing), the
server is not pinned, and what is compared is the server's CPU per request (its whole
process tree, supervisor included) and each worker's share of the requests' CPU. A last,
closed-loop level at 64 clients shows the throughput each setting reaches with hey beside it.

Levels alternate the settings round by round (1, 2, 1, 2, ...), so slow drift of the
machine falls on both.

    .venv/bin/python bench/workers.py                          # SQLite and PostgreSQL, ~6 min
    .venv/bin/python bench/workers.py --stores sqlite --rates 500,1500 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
import procs
import workload

PLINTH = str(Path(sys.executable).parent / "plinth")
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "plinth_bench_workers"
CLIENTS = 64  # paced levels: enough clients that each one's pace stays well above its latency


def _fresh_pg_database() -> str:
    admin = sa.create_engine(ADMIN_URL, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {PG_DATABASE}")
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"


def _env(home: Path, database_url: str | None, *, log: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "VIRTUAL_ENV"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PLINTH_HOME"] = str(home)
    if database_url:
        env["PLINTH_DATABASE_URL"] = database_url
    if not log:
        env["PLINTH_LOG_PREDICTIONS"] = "false"
    return env


def _register(work: Path, env: dict[str, str]) -> None:
    argv = [PLINTH, "register", str(work / "model.joblib"), "--name", "bc", "--trust-pickle"]
    argv += ["--train", str(work / "train.csv"), "--target", "target"]
    done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"plinth register failed:\n{done.stdout}{done.stderr}")


def _worker_pids(server: procs.Server) -> list[int]:
    """The processes that serve requests: the supervisor's children, or itself if it has none."""
    tree = server.tree()
    return [p for p in tree if p != server.pid] or [server.pid]


def _measure(
    hey: str,
    server: procs.Server,
    url: str,
    body: Path,
    *,
    seconds: float,
    rate: float | None,
) -> dict[str, Any]:
    clients = CLIENTS
    per_client = rate / clients if rate else None

    def drive(seconds: float) -> load.LoadResult:
        return load.run_hey(
            hey, url, body, concurrency=clients, duration_s=seconds, core=None,
            rate_per_client=per_client,
        )  # fmt: skip

    drive(2)  # warm-up
    workers = _worker_pids(server)
    tree = server.tree()
    cpu0 = procs.cpu_seconds(tree)
    per_worker0 = [procs.cpu_seconds([p]) for p in workers]
    result = drive(seconds)
    cpu = procs.cpu_seconds(tree) - cpu0
    per_worker = [procs.cpu_seconds([p]) - c for p, c in zip(workers, per_worker0, strict=True)]
    total = sum(per_worker) or 1.0
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "non_2xx": result.non_2xx,
        "cpu_ms_per_req": 1000 * cpu / max(result.requests, 1),
        "worker_shares": [w / total for w in per_worker],
        "rss_mb": procs.memory_mb(tree)["rss_mb"],
        "worker_rss_mb": max(procs.memory_mb([p])["rss_mb"] for p in workers),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--stores",
        default="sqlite,postgresql,sqlite-nolog",
        help="sqlite, postgresql, and sqlite-nolog (no prediction log: what is left is batching)",
    )
    p.add_argument("--rates", default="500,1500", help="offered req/s levels (paced)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-closed", action="store_true", help="skip the closed-loop c=64 level")
    args = p.parse_args()
    procs.install_cleanup()
    hey = load.ensure_hey()
    rates: list[float | None] = [float(r) for r in args.rates.split(",") if r]
    if not args.no_closed:
        rates.append(None)
    work = Path(tempfile.mkdtemp(prefix="plinth-bench-workers-"))
    meta = workload.train(work)
    body = work / "body.json"
    body.write_text(
        json.dumps({"records": [dict(zip(meta["feature_names"], meta["rows"][0], strict=True))]})
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f}; work dir {work}")
    results: dict[tuple[str, int, float | None], list[dict[str, Any]]] = {}
    for store in args.stores.split(","):
        home = work / f"home-{store}"
        home.mkdir()
        url = _fresh_pg_database() if store == "postgresql" else None
        env = _env(home, url, log=not store.endswith("-nolog"))
        _register(work, env)
        for _round in range(args.rounds):
            for workers in (1, 2):
                port = procs.free_port()
                argv = [PLINTH, "serve", "--host", "127.0.0.1", "--port", str(port)]
                argv += ["--workers", str(workers)]
                log = work / "server.log"
                server = procs.start(
                    f"w{workers}", argv, env=env, cwd=work, log_path=log, core=None
                )
                try:
                    base = f"http://127.0.0.1:{port}"
                    why = procs.wait_ready(server, [f"{base}/readyz"], timeout=120)
                    if why:
                        raise SystemExit(f"server not ready: {why}\n{server.log_tail()}")
                    time.sleep(1)
                    for rate in rates:
                        url = f"{base}/v1/models/bc/predict"
                        row = _measure(hey, server, url, body, seconds=args.seconds, rate=rate)
                        results.setdefault((store, workers, rate), []).append(row)
                finally:
                    server.stop()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print()
    print("| store | offered | workers | req/s | p50 ms | p99 ms | CPU ms/req | worker shares "
          "| RSS MB, all | RSS MB, largest worker | non-2xx |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for (store, workers, rate), rows in results.items():

        def span(key: str, rows: list[dict[str, Any]] = rows) -> str:
            vals = [r[key] for r in rows]
            lo, hi = min(vals), max(vals)
            fmt = "{:,.0f}" if key in ("rps", "rss_mb", "worker_rss_mb") else "{:.2f}"
            return fmt.format(lo) if lo == hi else f"{fmt.format(lo)} to {fmt.format(hi)}"

        shares = "/".join(
            f"{statistics.mean(r['worker_shares'][i] for r in rows):.0%}"
            for i in range(len(rows[0]["worker_shares"]))
        )
        offered = f"{rate:,.0f}" if rate else "closed, c=64"
        print(
            f"| {store} | {offered} | {workers} | {span('rps')} | {span('p50_ms')} "
            f"| {span('p99_ms')} | {span('cpu_ms_per_req')} | {shares} | {span('rss_mb')} "
            f"| {span('worker_rss_mb')} | {sum(r['non_2xx'] for r in rows)} |"
        )


if __name__ == "__main__":
    main()
