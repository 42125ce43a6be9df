"""``plinth contract show | set`` (plinth.cli.contract) from a terminal: export, edit, set,
and a file that is not JSON refused with its code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Env
from tests.e2e.test_serve import _register_churn

pytestmark = pytest.mark.e2e


def test_contract_can_be_exported_edited_and_set(plinth_env: Env, tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    document = json.loads(plinth_env.cli("contract", "show", "churn:1").stdout)
    for field in document["fields"]:
        if field["name"] == "age":
            field["maximum"] = 60
    edited = tmp_path / "contract.json"
    edited.write_text(json.dumps(document))
    done = plinth_env.cli("contract", "set", "churn", str(edited), "--reason", "tighter age")
    assert "updated the contract of churn:1" in done.stdout
    again = json.loads(plinth_env.cli("contract", "show", "churn").stdout)
    assert next(f for f in again["fields"] if f["name"] == "age")["maximum"] == 60
    edited.write_text("{not json")
    refused = plinth_env.cli("contract", "set", "churn", str(edited), check=False)
    assert refused.returncode == 1 and "cli.invalid_file" in refused.stderr
