"""Each peer gets its own virtual environment under bench/.venvs, because their pins conflict.

The harness creates and installs them on first use and reuses them afterwards; a marker file
records what was installed, so changing a pin reinstalls instead of silently reusing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VENVS_DIR = Path(__file__).resolve().parent / ".venvs"
MARKER = ".bench-installed.json"

# Pins that installed on this kind of machine (see /work/shared/BENCHMARKING.md):
# MLServer 1.7.1 needs uvloop<0.22; BentoML 1.4.40 fails on a certifi pin, 1.4.39 installs;
# Evidently 0.7.23 (the monitoring peer in bench/monitoring.py) does not import with pandas 3.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"],
    "bentoml": ["bentoml==1.4.39"],
    "evidently": ["evidently==0.7.23", "pandas<3"],
}


@dataclass(frozen=True)
class PeerEnv:
    """An installed peer environment; `sklearn_pinned` says whether it matches the trainer's."""

    name: str
    python: Path
    bin_dir: Path
    sklearn_pinned: bool


class EnvError(RuntimeError):
    """A peer environment could not be created or installed; the peer is skipped."""


def _base_python() -> str:
    # Build peer venvs from the interpreter behind the project venv, not from the venv itself.
    return getattr(sys, "_base_executable", None) or sys.executable


def _pip(python: Path, args: list[str], log: Path) -> bool:
    with log.open("a") as out:
        out.write(f"\n$ pip {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(
            [str(python), "-m", "pip", *args], stdout=out, stderr=subprocess.STDOUT, check=False
        )
    return done.returncode == 0


def ensure_env(name: str, sklearn_version: str, *, say: Callable[[str], None] = print) -> PeerEnv:
    """Create bench/.venvs/<name> and install the peer into it, unless already done.

    First try with scikit-learn pinned to the trainer's version, so the one joblib file loads
    everywhere; if that conflicts, install the peer's own choice and report it unpinned (the
    harness then trains a copy of the model inside that environment).
    """
    if name not in PEER_REQUIREMENTS:
        raise EnvError(f"no environment recipe for {name!r}")
    requirements = PEER_REQUIREMENTS[name]
    root = VENVS_DIR / name
    python = root / "bin" / "python"
    marker = root / MARKER
    wanted = {"requirements": requirements, "sklearn": sklearn_version}
    if marker.exists() and python.exists():
        recorded = json.loads(marker.read_text())
        if {k: recorded.get(k) for k in wanted} == wanted:
            return PeerEnv(name, python, root / "bin", bool(recorded["sklearn_pinned"]))
    log = VENVS_DIR / f"{name}-install.log"
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    say(f"[env] creating {root} (pip log: {log}); this can take several minutes")
    if not python.exists():
        made = subprocess.run(
            [_base_python(), "-m", "venv", str(root)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            raise EnvError(f"python -m venv failed: {made.stderr.strip()[-500:]}")
    _pip(python, ["install", "--quiet", "--upgrade", "pip"], log)
    pinned = _pip(
        python,
        ["install", "--quiet", *requirements, f"scikit-learn=={sklearn_version}"],
        log,
    )
    if not pinned:
        say(
            f"[env] {name}: scikit-learn=={sklearn_version} conflicts with its pins; "
            "installing its own scikit-learn and training the model inside it"
        )
        if not _pip(python, ["install", "--quiet", *requirements, "scikit-learn", "pandas"], log):
            lines = log.read_text().splitlines()
            # pip's own ERROR lines say what conflicted; fall back to the log's tail.
            errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-15:]
            raise EnvError(f"pip install {' '.join(requirements)} failed:\n" + "\n".join(errors))
    marker.write_text(json.dumps({**wanted, "sklearn_pinned": pinned}, indent=2))
    return PeerEnv(name, python, root / "bin", pinned)


if __name__ == "__main__":
    # `python bench/envs.py mlserver 1.9.1` installs one environment ahead of a run.
    env = ensure_env(sys.argv[1], sys.argv[2])
    print(env)


def ensure_plinth_at(
    ref: str, sklearn_version: str, *, say: Callable[[str], None] = print
) -> PeerEnv:
    """A worktree of this repository at ``ref`` with its own venv (its own pins), reused."""
    root = VENVS_DIR / f"plinth@{ref}"
    source = root / "src"
    python = root / "bin" / "python"
    log = VENVS_DIR / f"plinth@{ref}-install.log"
    repo = Path(__file__).resolve().parent.parent
    if not (root / ".installed").exists():
        VENVS_DIR.mkdir(parents=True, exist_ok=True)
        say(f"[env] building Plinth at {ref} in {root} (pip log: {log})")
        if not source.exists():
            added = subprocess.run(
                ["git", "-C", str(repo), "worktree", "add", "--detach", str(source), ref],
                capture_output=True,
                text=True,
                check=False,
            )
            if added.returncode != 0:
                raise EnvError(f"git worktree add {ref} failed: {added.stderr.strip()[-400:]}")
        if not python.exists():
            made = subprocess.run(
                [_base_python(), "-m", "venv", str(root)],
                capture_output=True,
                text=True,
                check=False,
            )
            if made.returncode != 0:
                raise EnvError(f"python -m venv failed: {made.stderr.strip()[-500:]}")
        _pip(python, ["install", "--quiet", "--upgrade", "pip"], log)
        pin = f"scikit-learn=={sklearn_version}"  # the trainer's: one joblib file loads in both
        if not _pip(python, ["install", "--quiet", "-e", str(source), pin], log):
            raise EnvError(f"pip install of Plinth at {ref} failed; see {log}")
        (root / ".installed").touch()
    return PeerEnv(name=f"plinth@{ref}", python=python, bin_dir=root / "bin", sklearn_pinned=True)
