"""``python -m plinth.services.training.limit MEGABYTES|- PROGRAM ARGS...``: cap the address
space, ask to die with the worker, then become the program (``exec``).

Two guards for a trainer that is user code:

- ``RLIMIT_AS`` (unless ``-``): an allocation past the cap fails inside the trainer (a
  MemoryError in Python) instead of pushing the machine into swap or the OOM killer;
- on Linux, ``PR_SET_PDEATHSIG``: if the worker that started the trainer is killed (SIGKILL
  included), the kernel kills the trainer too, so no orphan keeps training for a job that has
  already failed. It survives ``exec``; it fires when the starting *thread* ends, which in
  Plinth is a long-lived worker thread.

A wrapper instead of ``preexec_fn``: running Python between fork and exec is unsafe in a
process with threads, and the server has many.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux only; elsewhere a no-op (the lease still fails the job)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return


def main(argv: list[str]) -> None:
    megabytes, program = argv[1], argv[2:]
    if megabytes != "-":
        cap = int(megabytes) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    die_with_parent()
    os.execvp(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
