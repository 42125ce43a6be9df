from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from tests.support import (
    BrokenModel,
    churn_model,
    churn_table,
    regression_table,
    strict_category_model,
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
        registry.register(strict_category_model(train), name="strict", train=train, target="churn")
        registry.register(
            BrokenModel(),
            name="broken",
            train=regression_table(),
            target="y",
            task="regression",
            trust_pickle=True,
        )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client
