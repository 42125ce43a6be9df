"""``plinth show``: the contract table says what each field really does with a null."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import plinth
from plinth.api import open_registry
from plinth.cli.common import console
from plinth.cli.main import app
from plinth.config.settings import Settings
from plinth.services.registry.contracts import update_contract
from tests.support import imputing_pipeline, numbers_only_model, shoppers_table


@pytest.fixture
def home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLINTH_DATABASE_URL", database_url)
    monkeypatch.setattr(console, "width", 200)  # one table row per line
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    train = shoppers_table()
    common = {"train": train, "target": "bought", "settings": settings}
    plinth.register(imputing_pipeline(train), name="shoppers", **common)
    plinth.register(numbers_only_model(train), name="numbers", **common)
    return settings.home


def _repairs(home: Path, ref: str) -> dict[str, str]:
    """The contract table's repair column, by field."""
    shown = CliRunner().invoke(app, ["show", ref, "--home", str(home)])
    assert shown.exit_code == 0, shown.output
    rows = [line.split("│") for line in shown.output.splitlines() if line.count("│") == 7]
    return {cells[1].strip(): cells[6].strip() for cells in rows}


def test_show_prints_what_a_null_really_gets(home: Path) -> None:
    assert _repairs(home, "shoppers") == {
        "region": "null→pass to model, unseen→pass",
        "segment": "null→pass to model, unseen→pass",
        "age": "null→pass to model",
        "income": "null→pass to model",
        "visits": "null→reject",  # required: a null is a 422, whatever on_null says
    }
    train = shoppers_table()
    assert _repairs(home, "numbers") == {
        "age": f"null→impute {float(train['age'].median())!r}",  # cannot take a NaN: imputed
        "income": f"null→impute {float(train['income'].median())!r}",
        "visits": "null→reject",
    }


def test_show_tells_a_null_from_an_absent_key_when_they_differ(home: Path) -> None:
    with open_registry(Settings(home=home)) as registry:
        document = registry.store.get_version("numbers").metadata["contract"]
        for field in document["fields"]:
            if field["name"] == "visits":
                field["required"] = False  # may now be absent (imputed), still not null
        update_contract(registry.store, "numbers", None, document, reason="optional visits")
    visits = round(shoppers_table()["visits"].median())
    assert _repairs(home, "numbers")["visits"] == f"null→reject, missing→impute {visits}"
