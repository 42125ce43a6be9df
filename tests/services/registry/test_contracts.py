from __future__ import annotations

import copy

import pytest

from plinth.errors import ContractError, PlinthError
from plinth.services.registry.contracts import update_contract
from plinth.services.registry.versions import Registry
from tests.support import churn_model, churn_record, churn_table


def test_an_edited_contract_is_applied_and_its_history_kept(registry: Registry) -> None:
    train = churn_table()
    record = registry.register(churn_model(train), name="churn", train=train, target="churn")
    document = copy.deepcopy(record.metadata["contract"])
    for field in document["fields"]:
        if field["name"] == "city":
            field["on_unseen"] = "reject"
    updated = update_contract(registry.store, "churn", 1, document, reason="no new cities")
    assert updated.metadata["contract_history"][0]["reason"] == "no new cities"
    model = registry.load(updated)
    result = model.contract.apply([churn_record(city="rome")])
    assert [p.code for p in result.problems[0]] == ["contract.unseen_category"]


def test_edits_that_change_the_fields_are_refused_with_every_problem(registry: Registry) -> None:
    train = churn_table()
    record = registry.register(churn_model(train), name="churn", train=train, target="churn")
    renamed = copy.deepcopy(record.metadata["contract"])
    renamed["fields"][0]["name"] = "years"
    with pytest.raises(ContractError) as info:
        update_contract(registry.store, "churn", None, renamed)
    assert info.value.code == "contract.incompatible_edit"
    retyped = copy.deepcopy(record.metadata["contract"])
    retyped["fields"][0]["kind"] = "text"
    retyped["fields"][0]["dtype"] = "object"
    with pytest.raises(ContractError) as info:
        update_contract(registry.store, "churn", None, retyped)
    assert [p.code for p in info.value.problems] == ["contract.kind_changed"] * 2
    with pytest.raises(PlinthError) as bad:
        update_contract(registry.store, "churn", None, {"fields": "nope"})
    assert bad.value.code == "contract.invalid_spec"
