"""The root's behaviour: leaves own codes, families are not raised, the wire shape holds."""

from __future__ import annotations

import pickle

import pytest

from plinth.errors import (
    MAX_LISTED_PROBLEMS,
    BodyTooLargeError,
    ContractError,
    ContractViolationError,
    HttpStatusError,
    ModelNotFoundError,
    NotFoundError,
    PlinthError,
    Problem,
    RegistryError,
    RemoteError,
    error_class,
)


def test_a_leaf_owns_its_code_status_and_hint() -> None:
    error = ModelNotFoundError("model 'x' is not registered")
    assert (error.code, error.status) == ("registry.model_not_found", 404)
    assert error.hint == ModelNotFoundError.hint != ""
    assert isinstance(error, RegistryError) and isinstance(error, NotFoundError)
    assert (
        str(error) == f"[registry.model_not_found] model 'x' is not registered Hint: {error.hint}"
    )


def test_message_hint_and_problems_stay_overridable() -> None:
    problems = [Problem("contract.missing_field", "x is missing", field="x", record=0)]
    error = ContractViolationError(problems, message="1 of 1 record broke it", hint="fix x")
    assert error.to_dict() == {
        "error": {
            "code": "contract.invalid",
            "message": "1 of 1 record broke it",
            "hint": "fix x",
            "problems": [
                {
                    "code": "contract.missing_field",
                    "message": "x is missing",
                    "field": "x",
                    "record": 0,
                }
            ],
        }
    }
    assert ContractViolationError(problems).message == (
        "The request breaks the input contract (1 problem)."
    )


def test_structured_arguments_build_the_message() -> None:
    error = BodyTooLargeError(2048, 1024, hint="Send less.")
    assert error.to_dict()["error"] == {
        "code": "request.too_large",
        "message": "The body is 2048 bytes; the limit is 1024.",
        "hint": "Send less.",
    }
    assert error.status == 413
    assert HttpStatusError("Method Not Allowed", 405).status == 405


def test_long_problem_lists_are_capped_and_say_how_many_more() -> None:
    problems = [Problem("contract.wrong_type", "bad", record=i) for i in range(250)]
    body = ContractViolationError(problems).to_dict()["error"]
    assert len(body["problems"]) == MAX_LISTED_PROBLEMS
    assert body["problems_not_shown"] == 250 - MAX_LISTED_PROBLEMS


def test_a_family_is_not_raised() -> None:
    with pytest.raises(TypeError, match="ContractError is a family"):
        ContractError("which one?")
    with pytest.raises(TypeError, match="PlinthError is a family"):
        PlinthError("which one?")


def test_two_classes_cannot_claim_one_code() -> None:
    with pytest.raises(TypeError, match=r"both claim 'registry\.model_not_found'"):

        class Again(RegistryError):  # noqa: N818 - never created
            code = "registry.model_not_found"


def test_an_error_survives_pickling_with_its_built_message() -> None:
    error = BodyTooLargeError(2048, 1024)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is BodyTooLargeError
    assert back.to_dict() == error.to_dict() and back.status == 413


def test_a_code_names_its_class_and_unknown_codes_stay_remote() -> None:
    assert error_class("registry.model_not_found") is ModelNotFoundError
    assert error_class("no.such_code") is None
    restored = ModelNotFoundError.restore("gone", "look elsewhere", 404)
    assert (restored.message, restored.hint, restored.status) == ("gone", "look elsewhere", 404)
    remote = RemoteError("Bad Gateway", status=502, code="future.code")
    assert (remote.code, remote.status) == ("future.code", 502)
