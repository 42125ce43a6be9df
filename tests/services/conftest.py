from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.config.settings import Settings
from plinth.services.registry.versions import Registry
from plinth.store import Store
from plinth.store.artifacts import ArtifactStore


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    store = Store(settings.resolved_database_url())
    yield Registry(store, ArtifactStore(settings.artifacts_dir))
    store.close()
