"""Artifact names come back from the store, so a name that is not a sha256 never becomes a
path: nothing outside $PLINTH_HOME/artifacts can be opened through an altered record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from plinth.errors import InvalidArtifactNameError
from plinth.services.registry.versions import Registry
from plinth.store.artifacts import ArtifactStore
from tests.support import churn_model, churn_table


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "a" * 63, "A" * 64, "a" * 64 + "/..", "..", ""],
)
def test_a_name_that_is_not_a_sha256_is_refused(tmp_path: Path, name: str) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(InvalidArtifactNameError, match="not a sha256"):
        store.path(name)


def test_stored_files_stay_inside_the_root(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest = store.put(b"model bytes")
    assert store.path(digest).parent == tmp_path / "artifacts"
    assert store.path(digest).read_bytes() == b"model bytes"


def test_loading_a_version_whose_record_was_altered_opens_nothing(
    tmp_path: Path, database_url: str
) -> None:
    from plinth.store import Store

    outside = tmp_path / "secret"
    outside.write_bytes(b"not a model")
    with Store(database_url) as store:
        registry = Registry(store, ArtifactStore(tmp_path / "home" / "artifacts"))
        train = churn_table()
        record = registry.register(churn_model(train), name="churn", train=train, target="churn")
        altered = dataclasses.replace(record, sha256="../../secret")
        with pytest.raises(InvalidArtifactNameError) as info:
            registry.load(altered)
        assert info.value.code == "registry.invalid_artifact_name"
