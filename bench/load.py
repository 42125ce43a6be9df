"""Closed-loop load with `hey`, pinned to the load core, and the check that the run was sane.

hey's CSV output gives every request's latency, so percentiles are exact rather than read off
a histogram. A closed loop of c workers must satisfy c ≈ throughput x mean latency (Little's
law); a run that does not was mis-measured (BENCHMARKING.md: wrk failed it a quarter of the
time here) and is dropped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

LITTLE_TOLERANCE = 0.15  # hey's own gap between requests keeps it a little under c


class LoadError(RuntimeError):
    """hey is missing or failed outright."""


def ensure_hey(say: Any = print) -> str:
    """Path to hey, installing Debian's package (apt-get update only if the first try fails)."""
    found = shutil.which("hey")
    if found:
        return found
    say("[load] hey not found; installing Debian package 'hey'")
    install = ["apt-get", "install", "-y", "-q", "hey"]
    if subprocess.run(install, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
        done = subprocess.run(install, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LoadError(f"could not install hey: {done.stderr.strip()[-400:]}")
    found = shutil.which("hey")
    if not found:
        raise LoadError("hey installed but not on PATH")
    return found


@dataclass
class LoadResult:
    """One hey run, summarised from its per-request samples."""

    concurrency: int
    requests: int
    non_2xx: int
    elapsed_s: float
    rps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    little_ratio: float  # throughput x mean latency ÷ concurrency; 1.0 for a perfect loop

    @property
    def consistent(self) -> bool:
        return abs(self.little_ratio - 1.0) <= LITTLE_TOLERANCE and self.requests > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "consistent": self.consistent}


def run_hey(
    hey: str,
    url: str,
    body_file: Path,
    *,
    concurrency: int,
    duration_s: float,
    core: int | None,
    timeout_s: int = 30,
    headers: dict[str, str] | None = None,
    rate_per_client: float | None = None,
) -> LoadResult:
    """Drive `url` for `duration_s` with `concurrency` workers; summarise the CSV samples.

    `rate_per_client` paces each client (hey's ``-q``), so the offered rate is fixed at
    ``concurrency x rate_per_client`` as long as the server keeps up.
    """
    argv = [
        hey,
        "-z",
        f"{duration_s:g}s",
        "-c",
        str(concurrency),
        "-cpus",
        "1",
        "-t",
        str(timeout_s),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-D",
        str(body_file),
        "-o",
        "csv",
        *[arg for key, value in (headers or {}).items() for arg in ("-H", f"{key}: {value}")],
        *(["-q", f"{rate_per_client:g}"] if rate_per_client else []),
        url,
    ]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=duration_s + timeout_s + 30
    )
    if done.returncode != 0:
        raise LoadError(f"hey exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return summarise(done.stdout, concurrency)


def summarise(csv_text: str, concurrency: int) -> LoadResult:
    """Turn hey's CSV (response-time,...,status-code,offset; seconds) into one LoadResult."""
    lines = [ln for ln in csv_text.splitlines()[1:] if ln.strip()]
    if not lines:
        nan = float("nan")
        return LoadResult(concurrency, 0, 0, 0.0, 0.0, nan, nan, nan, nan, nan, 0.0)
    table = np.array([[float(v) for v in ln.split(",")] for ln in lines])
    latency, status, offset = table[:, 0], table[:, 6], table[:, 7]
    # Elapsed from the first request's start to the last one's end, not hey's nominal -z.
    elapsed = float(np.max(offset + latency) - np.min(offset))
    rps = len(latency) / elapsed if elapsed > 0 else 0.0
    mean = float(np.mean(latency))
    p50, p95, p99 = np.percentile(latency, [50, 95, 99])
    return LoadResult(
        concurrency=concurrency,
        requests=len(latency),
        non_2xx=int(np.sum((status < 200) | (status >= 300))),
        elapsed_s=elapsed,
        rps=rps,
        mean_ms=mean * 1e3,
        p50_ms=float(p50) * 1e3,
        p95_ms=float(p95) * 1e3,
        p99_ms=float(p99) * 1e3,
        max_ms=float(np.max(latency)) * 1e3,
        little_ratio=rps * mean / concurrency,
    )


if __name__ == "__main__":
    # `python bench/load.py URL BODY C SECONDS`: one pinned run, printed as JSON.
    import json

    url_, body_, c_, s_ = sys.argv[1:5]
    result = run_hey(
        ensure_hey(), url_, Path(body_), concurrency=int(c_), duration_s=float(s_), core=0
    )
    print(json.dumps(result.to_dict(), indent=2))
