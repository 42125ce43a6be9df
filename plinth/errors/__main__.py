"""``python -m plinth.errors [--check FILE]``: print the catalogue, or check a file holds it."""

from __future__ import annotations

import sys
from pathlib import Path

from plinth.errors.catalogue import render


def main(argv: list[str]) -> int:
    text = render()
    if argv[:1] == ["--check"]:
        path = Path(argv[1] if len(argv) > 1 else "docs/errors.md")
        if path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: run python -m plinth.errors > {path}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
