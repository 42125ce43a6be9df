"""Artifact names are sha256 digests only: nothing outside the folder is ever opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth.errors import PlinthError
from plinth.store.artifacts import ArtifactStore


def test_a_stored_file_is_found_by_its_digest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest = store.put(b"model bytes")
    assert store.path(digest).read_bytes() == b"model bytes"
    assert store.path(digest).parent == tmp_path / "artifacts"


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/dev/zero", "a" * 63, "A" * 64, "0" * 64 + "/..", "", "ab/../" * 11],
)
def test_a_name_that_is_not_a_sha256_is_refused_before_any_file_is_opened(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(PlinthError) as refused:
        ArtifactStore(tmp_path).path(name)
    assert refused.value.code == "registry.hash_mismatch" and refused.value.status == 503
