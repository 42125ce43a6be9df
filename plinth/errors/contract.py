"""The input data contract: a caller's records, a stored contract, or training data (4xx).

The problem and warning codes of one record's fields are declared here too: callers and
dashboards match on them (docs/contract.md explains each).
"""

from __future__ import annotations

from collections.abc import Sequence

from plinth.errors.base import PlinthError, Problem, ProblemKind, problem_code


class ContractError(PlinthError):
    """Input broke the data contract; ``problems`` lists every violation at once."""

    status = 422


class ContractViolationError(ContractError):
    """Records broke the input contract; each problem names its record and field."""

    code = "contract.invalid"
    hint = "Fix every listed field; GET /v1/models/{name} shows the contract."

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        noun = "problem" if len(problems) == 1 else "problems"
        default = f"The request breaks the input contract ({len(problems)} {noun})."
        super().__init__(message or default, hint=hint, problems=problems)


class InvalidContractSpecError(ContractError):
    """A stored or edited contract document is not a valid contract (never a request)."""

    code = "contract.invalid_spec"
    status = 400
    hint = "fix the contract JSON (see docs/contract.md) and load it again"

    def __init__(self, name: object, reason: str) -> None:
        where = f"field {name!r}: " if name else ""
        super().__init__(f"invalid contract: {where}{reason}")


class InvalidTrainingDataError(ContractError):
    """The training table cannot give a contract (not a DataFrame, bad column names, dtypes)."""

    code = "contract.invalid_training_data"
    status = 400
    hint = "pass the training table as a DataFrame with one named column per feature"


class IncompatibleContractEditError(ContractError):
    """An edited contract changes the fields or their types, which the model cannot take."""

    code = "contract.incompatible_edit"
    hint = "Keep the same fields, in the same order, with the same kinds and dtypes."


def _code(code: str, meaning: str, kind: ProblemKind = "problem") -> str:
    return problem_code(ContractError, code, meaning, kind)


NOT_AN_OBJECT = _code("contract.not_an_object", "A record is not a JSON object.")
MISSING_FIELD = _code(
    "contract.missing_field",
    "A required, non-nullable key is absent (or absent with on_null: reject).",
)
NULL_VALUE = _code("contract.null_value", "null in a non-nullable field, or with on_null: reject.")
WRONG_TYPE = _code(
    "contract.wrong_type", "A value that cannot be converted to the field's type without loss."
)
NON_FINITE = _code(
    "contract.non_finite",
    "NaN, infinity, or an integer too large for a float, in a number field.",
)
UNSEEN_CATEGORY = _code(
    "contract.unseen_category",
    "A category outside the training set (a problem with on_unseen: reject).",
    "problem or warning",
)
IMPUTED = _code("contract.imputed", "A null or absent value was filled in.", "warning")
NULL_PASSED = _code(
    "contract.null_passed",
    "A null reached the model as a missing value, because the model handles it itself "
    "(probed at registration).",
    "warning",
)
COERCED = _code(
    "contract.coerced", 'A lossless conversion was made (e.g. "2.5" -> 2.5).', "warning"
)
OUT_OF_RANGE = _code(
    "contract.out_of_range",
    "A number or datetime outside the training [minimum, maximum]; the model is still called.",
    "warning",
)
EXTRA_FIELD = _code("contract.extra_field", "A key the contract does not name; ignored.", "warning")
FIELDS_CHANGED = _code(
    "contract.fields_changed", "An edited contract lists other fields than the model's."
)
KIND_CHANGED = _code("contract.kind_changed", "An edited contract changes a field's kind or dtype.")
