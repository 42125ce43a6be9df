"""Content-addressed model files: ``<root>/<sha256>``, written once, never changed.

A name is read back from the store (a version's ``sha256``, a review asset's digest), so it
is checked to be 64 lowercase hex digits before it becomes a path: an altered record
cannot make Plinth open ``../../etc/passwd`` or anything else outside ``<root>``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from plinth.errors import InvalidArtifactNameError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactStore:
    """A folder of immutable files named by the sha256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the artifact named ``sha256`` lives; refuses anything but a sha256."""
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise InvalidArtifactNameError(
                f"{str(sha256)[:80]!r} is not a sha256 (64 hex digits); it is not opened."
            )
        return self.root / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (atomically, fsynced) and return its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return digest
