"""Run one trainer in a process of its own, with a time limit and a memory cap.

A trainer is user code: it may raise, hang, eat memory or be killed. None of that may reach
the server, so it never runs in the serving process. The child is started in its own session
(its whole process group is killed on timeout), with ``RLIMIT_AS`` set to the policy's
``memory_mb`` by ``plinth.services.training.limit`` (an allocation past it fails inside the
trainer as a MemoryError) and asked to die with its worker; its output goes to a log file
whose tail the job keeps. While it runs, the parent calls ``heartbeat`` about once a second:
the job's lease is renewed there, and a lost lease kills the trainer at once (another worker
has failed the job; nothing may be registered).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth.errors import JobLeaseLostError, TrainerFailedError, TrainerTimeoutError

LOG_TAIL_CHARS = 4000
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(frozen=True)
class TrainerRun:
    """Where the model file is, how long training took and the end of its output."""

    model: Path
    seconds: float
    log_tail: str


def run_trainer(
    *,
    entrypoint: str | None,
    command: Sequence[str] | None,
    data: Path,
    context: dict[str, Any],
    workdir: Path,
    time_limit_s: float,
    memory_mb: int | None,
    heartbeat: Callable[[float], bool] = lambda elapsed: True,
    sys_path: Sequence[str] = (),
    cwd: Path | None = None,
    threads: int | None = 1,
) -> TrainerRun:
    """Train in a child process; raises ``training.*`` errors that say what went wrong."""
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / "model.skops"
    result = workdir / "result.json"
    log_path = workdir / "trainer.log"
    if entrypoint is not None:
        spec = {
            "entrypoint": entrypoint,
            "data": str(data),
            "output": str(output),
            "result": str(result),
            "context": context,
            "sys_path": list(sys_path),
        }
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec, default=str), encoding="utf-8")
        argv = [sys.executable, "-m", "plinth.services.training.child", str(spec_path)]
    else:
        assert command is not None
        fill = {"data": str(data), "output": str(output), "seed": str(context.get("seed", 0))}
        argv = [part.format(**fill) for part in command]
    env = dict(os.environ)
    if threads is not None:
        # Native thread pools (OpenMP, BLAS) sized to the policy, not to every core: beside a
        # busy server an OpenMP trainer spinning on all cores was measured 38x slower.
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
    cap = "-" if memory_mb is None else str(memory_mb)
    argv = [sys.executable, "-m", "plinth.services.training.limit", cap, *argv]
    started = time.monotonic()
    with log_path.open("wb") as log:
        try:
            child = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            raise TrainerFailedError(f"Could not start the trainer {argv[0]!r}: {exc}") from exc
        try:
            _wait(child, started, time_limit_s, heartbeat)
        except BaseException:
            _kill(child)
            raise
    seconds = time.monotonic() - started
    tail = _tail(log_path)
    outcome = _result(result)
    if child.returncode != 0:
        if child.returncode < 0:
            name = signal.Signals(-child.returncode).name
            raise TrainerFailedError(
                f"The trainer was killed by {name} after {seconds:.1f} s"
                + (" (past its memory cap?)" if name == "SIGKILL" else "")
                + f". Output ends: {tail[-500:]!r}"
            )
        if outcome and not outcome.get("ok"):
            raise TrainerFailedError(
                f"The trainer raised {outcome.get('type')}: {outcome.get('message')}",
            )
        raise TrainerFailedError(
            f"The trainer exited with status {child.returncode}. Output ends: {tail[-500:]!r}"
        )
    model = Path(outcome["model"]) if outcome and outcome.get("model") else output
    if not model.is_file():
        raise TrainerFailedError(f"The trainer succeeded but wrote no model file at {model}.")
    return TrainerRun(model, seconds, tail)


def _wait(
    child: subprocess.Popen[bytes],
    started: float,
    time_limit_s: float,
    heartbeat: Callable[[float], bool],
) -> None:
    last_beat = started
    while True:
        try:
            child.wait(timeout=0.2)
            return
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - started > time_limit_s:
            raise TrainerTimeoutError(
                f"The trainer ran past its time limit of {time_limit_s:g} s and was killed."
            )
        if now - last_beat >= 1.0:
            last_beat = now
            if not heartbeat(now - started):
                raise JobLeaseLostError(
                    "The job's lease was lost while training; the trainer was killed."
                )


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-LOG_TAIL_CHARS:].decode("utf-8", errors="replace")


def _result(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
