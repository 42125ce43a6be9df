"""Benchmark Plinth against its peers on the reference workload, the way BENCHMARKING.md says.

One run: train the reference forest; time the bare model (the limit); then, round after round,
start each server pinned to one core, drive it closed-loop from the other core with hey at each
concurrency (1, 16, 64, then 1 again), and stop it. Rounds interleave the servers so slow drift
of the machine spreads over all of them. Prints a markdown table and writes
bench/results/latest.json and latest.md.

    .venv/bin/python bench/run.py --quick --servers bare,mlserver,bentoml
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import envs
import load
import procs
import report
import targets
import workload

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_SERVERS = (
    "plinth,plinth-onnx,plinth-v2,plinth-v2-binary,plinth-otel,plinth-nolog,floor,bare,"
    "mlserver,bentoml"
)


def say(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--servers", default=DEFAULT_SERVERS, help=f"comma list of {', '.join(targets.TARGETS)}"
    )
    p.add_argument("--concurrency", default="1,16,64,1", help="closed-loop levels, in order")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per level")
    p.add_argument(
        "--rounds", type=int, default=2, help="rounds over all servers (>= 2 for a spread)"
    )
    p.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured")
    p.add_argument(
        "--attempts", type=int, default=3, help="tries per level before giving up on Little's law"
    )
    p.add_argument("--server-core", type=int, default=1)
    p.add_argument("--load-core", type=int, default=0)
    p.add_argument("--work-dir", type=Path, help="keep models, logs and server homes here")
    p.add_argument("--keep", action="store_true", help="keep the temporary work dir")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="REF",
        help="also measure Plinth at this git commit (own worktree and venv), beside the\n"
        "current tree in the same rounds: an A/B of a change. Repeatable.",
    )
    args = p.parse_args(argv)
    for ref in args.baseline:
        target = targets.baseline_target(ref)
        targets.TARGETS[target.key] = target
    if args.quick:
        args.warmup, args.duration = 1.0, 3.0
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.servers += [
        f"plinth@{ref}" for ref in args.baseline if f"plinth@{ref}" not in args.servers
    ]
    unknown = [s for s in args.servers if s not in targets.TARGETS]
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(targets.TARGETS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.rounds < 1 or not args.concurrency or min(args.concurrency) < 1:
        p.error("--rounds and every --concurrency level must be at least 1")
    return args


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hey": "Debian hey",
    }


def pip_versions(python: Path, names: list[str]) -> dict[str, str]:
    """Installed versions of `names` in the environment of `python`."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=False
    )
    return json.loads(done.stdout) if done.returncode == 0 else {}


class SkipServerError(Exception):
    """This server cannot be measured in this run; the message says why."""


def measure_server(
    target: targets.Target,
    ctx: targets.Context,
    args: argparse.Namespace,
    hey: str,
    round_no: int,
    runs: list[dict[str, Any]],
) -> None:
    """Start one server, run every concurrency level against it, stop it; append to `runs`.

    Appending level by level keeps what was measured when a later level fails or Ctrl-C lands.
    """
    port = procs.free_port()
    try:
        launch = target.prepare(ctx, port)
    except targets.SetupError as exc:
        raise SkipServerError(str(exc)) from exc
    body_file = ctx.work_dir / f"body-{target.key}.json"
    body = launch.raw_body if launch.raw_body is not None else json.dumps(launch.body).encode()
    body_file.write_bytes(body)
    log_path = ctx.work_dir / f"{target.key}-round{round_no}.log"
    core = args.server_core if args.pinned else None
    server = procs.start(
        target.key, launch.argv, env=launch.env, cwd=launch.cwd, log_path=log_path, core=core
    )
    try:
        started = time.monotonic()
        why = procs.wait_ready(server, launch.ready_urls, launch.startup_timeout_s)
        if why is not None:
            raise SkipServerError(
                f"server {why}; last log lines ({log_path}):\n{server.log_tail()}"
            )
        ready_s = time.monotonic() - started
        status, reply = procs.http_post(launch.predict_url, body, headers=launch.headers)
        if status != 200:
            raise SkipServerError(f"sample request got HTTP {status}: {reply[:300]!r}")
        say(
            f"  ready in {ready_s:.1f} s on port {port}; "
            f"sample reply {reply[:120].decode(errors='replace')}"
        )
        load_core = args.load_core if args.pinned else None
        for step, c in enumerate(args.concurrency):
            load.run_hey(
                hey,
                launch.predict_url,
                body_file,
                concurrency=c,
                duration_s=args.warmup,
                core=load_core,
                headers=launch.headers,
            )
            dropped, row = 0, None
            for _attempt in range(args.attempts):
                tree = server.tree()
                cpu0 = procs.cpu_seconds(tree)
                ticks0 = procs.core_ticks(args.server_core)
                wall0 = time.monotonic()
                res = load.run_hey(
                    hey,
                    launch.predict_url,
                    body_file,
                    concurrency=c,
                    duration_s=args.duration,
                    core=load_core,
                    headers=launch.headers,
                )
                tree = server.tree()
                cpu1 = procs.cpu_seconds(tree)
                ticks1 = procs.core_ticks(args.server_core)
                wall = time.monotonic() - wall0
                total = max(1, ticks1[2] - ticks0[2])
                busy = 100 * (ticks1[0] - ticks0[0]) / total
                server_pct = 100 * (cpu1 - cpu0) / wall
                mem = procs.memory_mb(tree)
                row = {
                    "server": target.key,
                    "round": round_no,
                    "step": step,
                    "concurrency": c,
                    "load": res.to_dict(),
                    "cpu_ms_per_req": 1e3 * (cpu1 - cpu0) / res.requests if res.requests else None,
                    "cpu_util": (cpu1 - cpu0) / res.elapsed_s if res.elapsed_s else None,
                    "ready_s": ready_s,
                    "server_core_busy_pct": busy,
                    # Core time not spent by the server: other tenants' work on "its" core.
                    "server_core_other_pct": max(0.0, busy - server_pct) if args.pinned else None,
                    "server_core_steal_pct": 100 * (ticks1[1] - ticks0[1]) / total,
                    **mem,
                }
                if res.consistent:
                    break
                dropped += 1
                say(
                    f"    c={c}: dropped a run failing c ≈ throughput x mean latency "
                    f"(ratio {res.little_ratio:.2f}); retrying"
                )
            assert row is not None
            if server.proc.poll() is not None:
                raise SkipServerError(
                    f"server died during c={c} (exit {server.proc.returncode}); "
                    f"last log lines ({log_path}):\n{server.log_tail()}"
                )
            row["dropped"] = dropped
            row["kept"] = row["load"]["consistent"]
            runs.append(row)
            r = row["load"]
            cpu = row["cpu_ms_per_req"]
            say(
                f"    c={c:<3} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.1f}  "
                f"p95 {r['p95_ms']:7.1f}  "
                f"p99 {r['p99_ms']:7.1f} ms  cpu {cpu if cpu is None else round(cpu, 2)} ms/req  "
                f"rss {row['rss_mb']:.0f} MB  little {r['little_ratio']:.2f}  "
                f"core{args.server_core}: busy {busy:.0f}% other {busy - server_pct:.0f}% "
                f"steal {row['server_core_steal_pct']:.0f}%"
                + (f"  non-2xx {r['non_2xx']}" if r["non_2xx"] else "")
            )
    except load.LoadError as exc:
        raise SkipServerError(f"load generator failed: {exc}") from exc
    finally:
        server.stop()


def setup_target(
    target: targets.Target, work_dir: Path, meta: dict[str, Any], sklearn_version: str
) -> tuple[targets.Context, dict[str, Any]]:
    """Environment and model file for one target; SkipServerError when it cannot install."""
    model_path = work_dir / "model.joblib"
    info: dict[str, Any] = {"label": target.label, "note": target.note}
    if target.env_name is None:
        bin_dir = targets.MAIN_BIN
        info["versions"] = pip_versions(
            bin_dir / "python", ["plinth-ml", "fastapi", "uvicorn", "scikit-learn"]
        )
    elif target.env_name.startswith("plinth@"):
        ref = target.env_name.removeprefix("plinth@")
        try:
            env = envs.ensure_plinth_at(ref, sklearn_version, say=say)
        except envs.EnvError as exc:
            raise SkipServerError(f"could not build Plinth at {ref}: {exc}") from exc
        bin_dir = env.bin_dir
        info["versions"] = pip_versions(env.python, ["plinth-ml", "fastapi", "scikit-learn"])
    else:
        try:
            env = envs.ensure_env(target.env_name, sklearn_version, say=say)
        except envs.EnvError as exc:
            raise SkipServerError(f"could not install its environment: {exc}") from exc
        bin_dir = env.bin_dir
        if not env.sklearn_pinned:
            # Its scikit-learn differs from ours: train the same forest with its own version.
            own = work_dir / f"model-{target.env_name}"
            done = subprocess.run(
                [str(env.python), str(Path(workload.__file__)), str(own)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SkipServerError(
                    f"training inside its environment failed: {done.stderr[-400:]}"
                )
            model_path = own / "model.joblib"
        info["versions"] = pip_versions(
            env.python,
            [target.env_name, "mlserver-sklearn", "scikit-learn", "numpy", "uvicorn", "uvloop"],
        )
    ctx = targets.Context(work_dir, meta["feature_names"], meta["rows"], model_path, bin_dir)
    return ctx, info


def render_markdown(doc: dict[str, Any]) -> str:
    a = doc["settings"]
    m = doc["machine"]
    labels = {k: v["label"] for k, v in doc["servers"].items()}
    parts = [
        "# Plinth benchmark — latest run",
        "",
        f"Run {doc['started']} with `{doc['command']}` ({doc['elapsed_s'] / 60:.1f} min).",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
        f"Python {m['python']}.",
        f"Server on core {a['server_core']}, hey on core {a['load_core']}"
        + ("" if a["pinned"] else " (NOT pinned: fewer than 2 CPUs)")
        + f"; {a['warmup']:g} s warm-up + {a['duration']:g} s measured per level, "
        f"{a['rounds']} round(s), medians shown with ± half the min-max range over rounds.",
        "Workload: RandomForestClassifier(n_estimators=50, max_depth=8) on breast-cancer data, "
        "one record per JSON request. Access logs off everywhere; peers' metrics on (default).",
        "Runs failing the closed-loop check (concurrency ≈ throughput x mean latency, ±15 %) are "
        "dropped and retried. Differences under about 10 % are noise on these machines.",
        "",
        report.markdown_table(doc["summary"], labels),
        "",
        "CPU ms/req: server process tree utime+stime over the measured window ÷ requests. "
        "RSS: summed over the process tree after the level. Ratios: Plinth (everything on) ÷ peer, "
        "at the same level. Other load: the worst round's share of the server core busy with "
        "work that was not the server's (other tenants); more than a few % taints that row. "
        "CPU steal: the worst round's share of time the hypervisor gave the server's core to "
        "another machine; it slows every server alike, but widens the spread.",
        "",
        f"## The limit: the model alone, in process, on one core (scikit-learn {doc['sklearn']})",
        "",
        report.limit_table(doc["model_limit"]),
        "",
        "## Servers",
        "",
    ]
    for key, s in doc["servers"].items():
        versions = ", ".join(f"{n} {v}" for n, v in s.get("versions", {}).items())
        status = s["status"] if s["status"] == "measured" else f"**{s['status']}**"
        line = f"- `{key}` — {s['label']}{'; ' + s['note'] if s['note'] else ''} — {status}"
        if versions:
            line += f" ({versions})"
        parts.append(line)
        if s.get("reason"):
            parts.append("")
            parts.append("  ```")
            parts.extend(f"  {ln}" for ln in str(s["reason"]).splitlines()[-12:])
            parts.append("  ```")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    procs.install_cleanup()
    started_at = time.monotonic()
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.sched_getaffinity(0)
    args.pinned = {args.server_core, args.load_core} <= cores and args.server_core != args.load_core
    if not args.pinned:
        say(f"[warn] cores {sorted(cores)} cannot host server and load apart; running unpinned")
    else:
        os.sched_setaffinity(0, {args.load_core})  # keep the harness itself off the server core
    hey = load.ensure_hey(say)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="plinth-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    say(f"[setup] work dir {work_dir}")
    meta = workload.train(work_dir)
    say(f"[setup] trained the reference forest with scikit-learn {meta['sklearn']}")
    limit = workload.pinned_limit(
        work_dir / "model.joblib", meta["rows"], args.server_core if args.pinned else 0
    )
    for batch, v in limit.items():
        say(
            f"[limit] predict_proba batch {batch}: {v['ms_per_call']:.2f} ms/call, "
            f"{v['rows_per_s']:,.0f} rows/s; as Plinth calls it "
            f"{v['plinth']['ms_per_call']:.2f} ms/call"
        )

    servers: dict[str, dict[str, Any]] = {}
    contexts: dict[str, targets.Context] = {}
    for key in args.servers:
        target = targets.TARGETS[key]
        try:
            contexts[key], servers[key] = setup_target(target, work_dir, meta, meta["sklearn"])
            servers[key]["status"] = "measured"
        except SkipServerError as exc:
            servers[key] = {
                "label": target.label,
                "note": target.note,
                "status": "skipped",
                "reason": str(exc),
            }
            say(f"[skip] {key}: {exc}")
    if "plinth-nolog" in contexts:
        honoured = targets.plinth_log_setting_known()
        servers["plinth-nolog"]["note"] += {
            True: " (Settings has log_predictions)",
            False: " (NOT in Plinth's Settings yet: this run is the same as logging on)",
            None: " (could not import plinth.config.settings to check)",
        }[honoured]

    runs: list[dict[str, Any]] = []
    interrupted = False
    try:
        for round_no in range(1, args.rounds + 1):
            for key, ctx in contexts.items():
                if servers[key]["status"] != "measured":
                    continue
                say(f"[round {round_no}/{args.rounds}] {servers[key]['label']}")
                try:
                    measure_server(targets.TARGETS[key], ctx, args, hey, round_no, runs)
                except (SkipServerError, OSError, subprocess.SubprocessError, ValueError) as exc:
                    # Anything one server does wrong costs that server, never the whole run.
                    why = (
                        str(exc) if isinstance(exc, SkipServerError) else f"harness error: {exc!r}"
                    )
                    say(f"[skip] {key}: {why}")
                    if not any(r["server"] == key for r in runs):
                        servers[key].update(status="skipped", reason=why)
                    else:
                        servers[key].setdefault("round_errors", []).append(
                            f"round {round_no}: {why}"
                        )
    except KeyboardInterrupt:
        interrupted = True
        say("[interrupted] stopping servers and writing what was measured so far")
    finally:
        procs.kill_all()

    labels = report.step_labels(args.concurrency)
    summary = report.aggregate(runs, labels)
    report.add_ratios(summary)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    doc = {
        "started": started,
        "elapsed_s": time.monotonic() - started_at,
        "command": " ".join(
            ["bench/run.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
        ),
        "interrupted": interrupted,
        "machine": machine_info(),
        "settings": settings,
        "sklearn": meta["sklearn"],
        "work_dir": str(work_dir),
        "model_limit": limit,
        "servers": servers,
        "summary": summary,
        "runs": runs,
    }
    markdown = render_markdown(doc)
    json_path, md_path = report.write(args.results_dir, doc, markdown)
    say("")
    say(report.markdown_table(summary, {k: v["label"] for k, v in servers.items()}))
    say("")
    for key, s in servers.items():
        if s["status"] != "measured":
            lines = str(s["reason"]).strip().splitlines()
            say(
                f"[skipped] {key}: {lines[0]}"
                + (f" ... {lines[-1].strip()}" if len(lines) > 1 else "")
            )
    # A temporary work dir holds Plinth's prediction logs (it grows); keep it only when asked,
    # or when a server failed and its log is the evidence.
    troubled = any(s["status"] != "measured" or s.get("round_errors") for s in servers.values())
    if args.work_dir is None and not args.keep and not troubled and not interrupted:
        shutil.rmtree(work_dir, ignore_errors=True)
        say(f"\nwrote {json_path} and {md_path}")
    else:
        say(f"\nwrote {json_path} and {md_path}; server logs in {work_dir}")
    if interrupted:
        return 130
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
