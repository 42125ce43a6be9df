"""``python -m plinth.services.training.limit MEGABYTES PROGRAM ARGS...``: cap the address
space, then become the program (``exec``), so the cap holds for the trainer and its children.

A wrapper instead of ``preexec_fn``: running Python between fork and exec is unsafe in a
process with threads, and the server has many.
"""

from __future__ import annotations

import os
import resource
import sys


def main(argv: list[str]) -> None:
    megabytes, program = int(argv[1]), argv[2:]
    cap = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.execvp(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
