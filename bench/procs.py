"""Server processes: start pinned in their own process group, measure, and always kill.

Every server the harness starts is registered here; `kill_all` runs on normal exit, on errors
and on SIGINT/SIGTERM, so a Ctrl-C never leaves a server holding a core or a port.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

_live: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    """A loopback port nobody holds right now (the kernel picks; we release it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """The root and all its descendants, found by scanning /proc for parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime+stime (and that of reaped children) summed over processes, in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # Fields 14-17 of /proc/<pid>/stat: utime, stime, cutime, cstime (1-based).
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / CLOCK_TICKS


def memory_mb(pids: Iterable[int]) -> dict[str, float]:
    """Resident memory of a process tree: summed RSS, and summed PSS (shared pages split)."""
    rss_kb = pss_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss_kb += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss_kb += int(line.split()[1])
    return {"rss_mb": rss_kb / 1024, "pss_mb": pss_kb / 1024}


def core_ticks(core: int) -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of one CPU from /proc/stat, to tell a noisy neighbour apart.

    Steal is time the hypervisor gave our vCPU to someone else: a run with much of it measured
    the host, not the server.
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            v = [int(x) for x in line.split()[1:9]]
            user, nice, system, _idle, _iowait, irq, softirq, steal = v
            return user + nice + system + irq + softirq, steal, sum(v)
    return 0, 0, 0


@dataclass
class Server:
    """A started server process group and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[int]:
        return process_tree(self.proc.pid)

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        stop(self)


def start(
    name: str,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    core: int | None,
) -> Server:
    """Start argv in a new session (its own process group), pinned to `core` with taskset."""
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    log = log_path.open("ab")
    proc = subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _live[proc.pid] = proc
    return Server(name, proc, log_path, log)


def stop(server: Server, grace: float = 8.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is left, including strays outside the group."""
    proc = server.proc
    stragglers = set(server.tree())
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)
    for pid in stragglers:  # a worker that made its own session would survive the group kill
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _live.pop(proc.pid, None)
    server._log.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_all() -> None:
    """Kill every server this harness started and has not stopped yet."""
    for pid in list(_live):
        _signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            _live[pid].wait(timeout=5)
        _live.pop(pid, None)


def install_cleanup() -> None:
    """Kill servers on exit and turn SIGTERM into an exception so `finally` blocks run."""
    atexit.register(kill_all)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # A shell starts background jobs with SIGINT ignored; restore Ctrl-C's KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def http_post(
    url: str, body: bytes, timeout: float = 30.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError as exc:  # refused, reset, timed out: no HTTP status at all
        return 0, repr(exc).encode()


def wait_ready(server: Server, urls: list[str], timeout: float) -> str | None:
    """Poll until every URL answers 200; return None when ready, else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            return f"exited with code {code} before it was ready"
        if all(http_status(u) == 200 for u in urls):
            return None
        time.sleep(0.25)
    return f"not ready after {timeout:.0f} s ({', '.join(urls)})"
