"""Content-addressed model files: ``<root>/<sha256>``, written once, never changed.

A name is only ever 64 lowercase hex digits, checked before the filesystem is touched, so
a version record altered in the database (``../../etc/passwd``, ``/dev/zero``) can never
make the server open a file outside the artifacts folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from plinth.errors import HashMismatchError

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtifactStore:
    """A folder of immutable files named by the sha256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the file named ``sha256`` lives; refused unless it is a sha256."""
        if not _SHA256.fullmatch(sha256):
            raise HashMismatchError(
                f"Artifact name {sha256[:80]!r} is not a sha256: the version's record was "
                "altered; refused without opening anything.",
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
