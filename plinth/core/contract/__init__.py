"""The input data contract: what a model was trained on, checked and repaired per batch.

A :class:`Contract` is inferred from the training features (:func:`infer_contract`), stored
as JSON with the model version, edited by people, and applied to every request batch.
``apply`` never raises: each record either becomes one row of the model frame or comes back
with every problem listed, and every repair is reported as a warning. ``spec`` says what one
field allows, ``inference`` reads it off training data, ``application`` applies it fast.

>>> import pandas as pd
>>> contract = infer_contract(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
>>> result = contract.apply([{"x": "2.5", "c": "a"}, {"x": [1], "c": "z"}])
>>> result.features()
[{'x': 2.5, 'c': 'a'}]
>>> [p.code for p in result.problems[1]], [w.code for w in result.warnings[0]]
(['contract.wrong_type'], ['contract.coerced'])
"""

from plinth.core.contract.application import ContractResult
from plinth.core.contract.contract import Contract
from plinth.core.contract.inference import infer_contract
from plinth.core.contract.spec import (
    CATEGORICAL_HARD_CAP,
    CATEGORICAL_MAX_DISTINCT,
    CATEGORICAL_MAX_SHARE,
    MAX_EXTRA_WARNINGS,
    FieldKind,
    FieldSpec,
    NullMarker,
    NullPolicy,
    UnseenPolicy,
)
from plinth.errors import (
    ContractViolationError,
    InvalidContractSpecError,
    InvalidTrainingDataError,
)
from plinth.errors.contract import (
    COERCED,
    EXTRA_FIELD,
    IMPUTED,
    MISSING_FIELD,
    NON_FINITE,
    NOT_AN_OBJECT,
    NULL_PASSED,
    NULL_VALUE,
    OUT_OF_RANGE,
    UNSEEN_CATEGORY,
    WRONG_TYPE,
)

# The error codes, as the classes that own them say.
INVALID = ContractViolationError.code
INVALID_SPEC = InvalidContractSpecError.code
INVALID_TRAINING_DATA = InvalidTrainingDataError.code

__all__ = [
    "CATEGORICAL_HARD_CAP",
    "CATEGORICAL_MAX_DISTINCT",
    "CATEGORICAL_MAX_SHARE",
    "COERCED",
    "EXTRA_FIELD",
    "IMPUTED",
    "INVALID",
    "INVALID_SPEC",
    "INVALID_TRAINING_DATA",
    "MAX_EXTRA_WARNINGS",
    "MISSING_FIELD",
    "NON_FINITE",
    "NOT_AN_OBJECT",
    "NULL_PASSED",
    "NULL_VALUE",
    "OUT_OF_RANGE",
    "UNSEEN_CATEGORY",
    "WRONG_TYPE",
    "Contract",
    "ContractResult",
    "FieldKind",
    "FieldSpec",
    "NullMarker",
    "NullPolicy",
    "UnseenPolicy",
    "infer_contract",
]
