"""The input contract: inference, every problem and warning code, repairs, exact replay."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

import plinth.core.contract as contract_module
from plinth.core.contract import (
    CATEGORICAL_MAX_DISTINCT,
    MAX_EXTRA_WARNINGS,
    Contract,
    ContractResult,
    FieldSpec,
    infer_contract,
)
from plinth.errors import ContractError, Problem

# --- fixtures ----------------------------------------------------------------------------


def training_frame(rows: int = 60) -> pd.DataFrame:
    """One column of every kind, some with nulls; deterministic."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.2, 5.01, rows)
    x[[0, -1]] = [0.2, 5.01]
    x[3] = np.nan
    times = pd.Series(pd.date_range("2020-01-01", periods=rows, freq="D"))
    times[5] = pd.NaT
    return pd.DataFrame(
        {
            "x": x,
            "n": np.arange(rows) % 9 + 1,
            "b": np.arange(rows) % 3 == 0,
            "c": pd.Categorical(rng.choice(["red", "green", "blue"], rows)),
            "s": pd.Series(["lo", "hi", None] * (rows // 3), dtype="str"),
            "t": times,
            "tz": pd.Series(pd.date_range("2021-01-01", periods=rows, freq="h", tz="UTC")),
            "txt": [f"note number {i}" for i in range(rows)],
        }
    )


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return training_frame()


@pytest.fixture(scope="module")
def contract(train: pd.DataFrame) -> Contract:
    return infer_contract(train)


def good_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "x": 1.5,
        "n": 4,
        "b": True,
        "c": "red",
        "s": "hi",
        "t": "2020-01-10T00:00:00",
        "tz": "2021-01-01T05:00:00+00:00",
        "txt": "free text",
    }
    record.update(changes)
    return record


def codes(findings: list[Problem]) -> list[str]:
    return [f.code for f in findings]


def only(findings: list[Problem], code: str) -> Problem:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, findings
    return matching[0]


def spec(c: Contract, name: str) -> FieldSpec:
    return c.fields[c.feature_names.index(name)]


def edited(c: Contract, name: str, **changes: Any) -> Contract:
    """A copy of the contract with one field changed, the way a person edits the JSON."""
    data = c.to_dict()
    for f in data["fields"]:
        if f["name"] == name:
            f.update(changes)
    return Contract.from_dict(data)


def replayed(c: Contract, result: ContractResult) -> pd.DataFrame:
    """What replay rebuilds from the prediction log (features go through JSON)."""
    return c.frame(json.loads(json.dumps(result.features())))


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(contract_module).failed == 0


# --- inference ---------------------------------------------------------------------------


def test_infers_each_kind_and_dtype(contract: Contract, train: pd.DataFrame) -> None:
    kinds = {f.name: (f.kind, f.dtype) for f in contract.fields}
    assert kinds == {
        "x": ("numeric", "float64"),
        "n": ("integer", "int64"),
        "b": ("boolean", "bool"),
        "c": ("categorical", "category"),
        "s": ("categorical", "str"),
        "t": ("datetime", str(train["t"].dtype)),
        "tz": ("datetime", str(train["tz"].dtype)),
        "txt": ("text", "str"),
    }
    assert contract.feature_names == list(train.columns)


def test_infers_nullability_from_training_nulls(contract: Contract) -> None:
    nullable = {f.name for f in contract.fields if f.nullable}
    assert nullable == {"x", "s", "t"}
    for f in contract.fields:
        assert f.required is not f.nullable


def test_infers_ranges_categories_and_impute_values(
    contract: Contract, train: pd.DataFrame
) -> None:
    x = spec(contract, "x")
    assert (x.minimum, x.maximum) == (0.2, 5.01)
    assert x.impute == pytest.approx(float(train["x"].median()))
    n = spec(contract, "n")
    assert (n.minimum, n.maximum, n.impute) == (1, 9, 5)
    assert isinstance(n.impute, int)
    assert spec(contract, "b").impute is False  # 40 False against 20 True
    assert spec(contract, "c").categories == ["blue", "green", "red"]
    assert spec(contract, "s").categories == ["hi", "lo"]
    t = spec(contract, "t")
    assert (t.minimum, t.maximum) == ("2020-01-01T00:00:00", "2020-02-29T00:00:00")
    assert spec(contract, "tz").minimum == "2021-01-01T00:00:00+00:00"
    assert spec(contract, "txt").categories is None


def test_integer_impute_is_the_rounded_median() -> None:
    c = infer_contract(pd.DataFrame({"k": [1, 2, 3, 10]}))
    assert spec(c, "k").impute == 2  # median 2.5 rounds half to even


def test_mode_ties_pick_the_smallest_value() -> None:
    c = infer_contract(pd.DataFrame({"g": ["b", "a", "b", "a"]}))
    assert spec(c, "g").impute == "a"


def test_categorical_or_text_by_distinct_values() -> None:
    few = [f"v{i}" for i in range(CATEGORICAL_MAX_DISTINCT)]
    many = [f"v{i}" for i in range(CATEGORICAL_MAX_DISTINCT + 1)]
    assert spec(infer_contract(pd.DataFrame({"a": few})), "a").kind == "categorical"
    assert spec(infer_contract(pd.DataFrame({"a": many})), "a").kind == "text"
    # 60 distinct values over 2000 rows is 3 %: still categorical
    repeated = [f"v{i % 60}" for i in range(2000)]
    assert spec(infer_contract(pd.DataFrame({"a": repeated})), "a").kind == "categorical"


def test_object_columns_are_read_by_their_values() -> None:
    frame = pd.DataFrame(
        {
            "flag": pd.Series([True, None, False], dtype=object),
            "count": pd.Series([1, None, 3], dtype=object),
            "ratio": pd.Series([1.5, 2, None], dtype=object),
            "mixed": pd.Series(["a", 1, "a"], dtype=object),
        }
    )
    c = infer_contract(frame)
    assert [(f.kind, f.dtype, f.nullable) for f in c.fields] == [
        ("boolean", "object", True),
        ("integer", "object", True),
        ("numeric", "object", True),
        ("categorical", "object", False),
    ]
    assert spec(c, "mixed").categories == [1, "a"]  # numbers sort before strings


def test_all_null_and_empty_columns_have_no_impute_value_and_pass_nulls() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "s": pd.Series([None, None], dtype="str")})
    c = infer_contract(frame)
    assert [(f.kind, f.impute) for f in c.fields] == [("numeric", None), ("text", None)]
    result = c.apply([{"x": None, "s": None}])
    assert codes(result.warnings[0]) == ["contract.null_passed"] * 2  # flagged, as any pass
    assert result.frame["x"].isna().all()


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="s")}),
        pd.DataFrame({0: [1.0, 2.0]}),
        pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]),
    ],
)
def test_inference_refuses_what_a_contract_cannot_describe(frame: pd.DataFrame) -> None:
    with pytest.raises(ContractError) as info:
        infer_contract(frame)
    assert info.value.code == "contract.invalid_training_data"


def test_inference_needs_a_dataframe() -> None:
    with pytest.raises(ContractError, match="DataFrame"):
        infer_contract([1, 2])


def test_training_rows_pass_their_own_contract(contract: Contract, train: pd.DataFrame) -> None:
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in train.astype(object).to_dict(orient="records")
    ]
    result = contract.validate_or_raise(records)
    assert len(result.frame) == len(train)
    assert list(result.frame.dtypes) == list(train.dtypes)


# --- JSON round trip ---------------------------------------------------------------------


def test_contract_json_round_trip(contract: Contract) -> None:
    text = json.dumps(contract.to_dict())
    back = Contract.from_dict(json.loads(text))
    assert back == contract
    assert back.to_dict() == contract.to_dict()
    records = [good_record(), good_record(x=None, c="purple")]
    assert_frame_equal(back.apply(records).frame, contract.apply(records).frame)


def test_field_spec_round_trip() -> None:
    f = FieldSpec("a", "categorical", "str", categories=["x"], on_unseen="reject")
    assert FieldSpec.from_dict(json.loads(json.dumps(f.to_dict()))) == f


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kind": "complex"}, "kind must be one of"),
        ({"on_null": "ignore"}, "on_null must be one of"),
        ({"on_unseen": "drop"}, "on_unseen must be one of"),
        ({"dtype": "no-such-dtype"}, "unknown dtype"),
        ({"dtype": "str"}, "cannot hold a numeric field"),
        ({"minimum": "low"}, "do not fit"),
        ({"on_nul": "pass"}, "unknown keys"),
        ({"categories": "red"}, "categories must be a list"),
    ],
)
def test_a_bad_edit_fails_on_load(change: dict[str, Any], match: str) -> None:
    data = {"fields": [{"name": "x", "kind": "numeric", "dtype": "float64", **change}]}
    with pytest.raises(ContractError, match=match) as info:
        Contract.from_dict(data)
    assert info.value.code == "contract.invalid_spec"


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"fields": "x"},
        {"fields": [3]},
        {"fields": [{"name": "x"}]},
        {"fields": [{"name": "", "kind": "numeric", "dtype": "float64"}]},
        {"fields": [{"name": "x", "kind": "text", "dtype": "str"}] * 2},
    ],
)
def test_malformed_contract_json_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ContractError) as info:
        Contract.from_dict(data)
    assert info.value.code == "contract.invalid_spec"


def test_editing_a_field_in_place_takes_effect(train: pd.DataFrame) -> None:
    c = infer_contract(train)
    record = good_record(c="purple")
    assert c.apply([record]).problems == [[]]
    spec(c, "c").on_unseen = "reject"
    assert codes(c.apply([record]).problems[0]) == ["contract.unseen_category"]


# --- problems ----------------------------------------------------------------------------


def test_a_clean_record_passes_without_findings(contract: Contract) -> None:
    result = contract.apply([good_record()])
    assert result.problems == [[]]
    assert result.warnings == [[]]
    assert result.valid.tolist() == [0]


@pytest.mark.parametrize("record", ["text", 3, None, [1, 2], ["x", 1.0]])
def test_a_record_that_is_not_an_object(contract: Contract, record: Any) -> None:
    result = contract.apply([good_record(), record])
    problem = only(result.problems[1], "contract.not_an_object")
    assert (problem.record, problem.field) == (1, None)
    assert "not a JSON object" in problem.message and problem.hint
    assert result.valid.tolist() == [0]


def test_missing_required_field(contract: Contract) -> None:
    record = good_record()
    del record["n"]
    problem = only(contract.apply([record]).problems[0], "contract.missing_field")
    assert problem.field == "n"
    assert problem.message == "field 'n' is missing but is required"
    assert problem.hint == "send a whole number between 1 and 9"


def test_null_in_non_nullable_field(contract: Contract) -> None:
    problem = only(contract.apply([good_record(c=None)]).problems[0], "contract.null_value")
    assert problem.field == "c"
    assert problem.hint == "send one of 'blue', 'green', 'red'"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x", "abc"),
        ("x", True),
        ("x", [1.0]),
        ("x", {"v": 1.0}),
        ("n", 3.5),
        ("n", "abc"),
        ("n", False),
        ("n", 2**70),
        ("b", 2),
        ("b", "maybe"),
        ("b", [True]),
        ("c", ["red"]),
        ("c", {"red": 1}),
        ("s", {}),
        ("t", 5),
        ("t", "now"),
        ("t", "2020-13-01"),
        ("t", "2999-01-01" if False else "01/02/2020"),
        ("tz", True),
        ("txt", ["a"]),
        ("txt", "\ud800"),
        ("s", "\ud800"),
        ("c", "\udfff"),
    ],
)
def test_wrong_type(contract: Contract, name: str, value: Any) -> None:
    result = contract.apply([good_record(**{name: value})])
    problem = only(result.problems[0], "contract.wrong_type")
    assert problem.field == name
    assert problem.message.startswith(f"field {name!r} expects ")
    assert problem.hint.startswith("send ")
    assert result.valid.size == 0


def test_wrong_type_hint_names_the_observed_range(contract: Contract) -> None:
    problem = only(contract.apply([good_record(x="abc")]).problems[0], "contract.wrong_type")
    assert problem.message == "field 'x' expects a number, got 'abc'"
    assert problem.hint == "send a number between 0.2 and 5.01"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x", "NaN"),
        ("x", "nan"),
        ("x", "inf"),
        ("x", "-Infinity"),
        ("x", math.inf),
        ("x", -math.inf),
        ("x", 10**400),
        ("x", "1e400"),
        ("n", math.inf),
        ("n", "-inf"),
    ],
)
def test_non_finite_numbers(contract: Contract, name: str, value: Any) -> None:
    problem = only(
        contract.apply([good_record(**{name: value})]).problems[0], "contract.non_finite"
    )
    assert problem.field == name and problem.hint


def test_a_float_nan_is_a_null_the_way_pandas_spells_it(contract: Contract) -> None:
    nullable = contract.apply([good_record(x=math.nan)])
    assert codes(nullable.warnings[0]) == ["contract.imputed"]
    strict = contract.apply([good_record(n=math.nan)])
    assert codes(strict.problems[0]) == ["contract.null_value"]


def test_every_problem_of_every_record_is_listed(contract: Contract) -> None:
    records = [
        good_record(x="abc", n=3.5),
        good_record(),
        good_record(b="maybe", c=None, t="yesterday"),
        "oops",
    ]
    result = contract.apply(records)
    assert [codes(p) for p in result.problems] == [
        ["contract.wrong_type", "contract.wrong_type"],
        [],
        ["contract.wrong_type", "contract.null_value", "contract.wrong_type"],
        ["contract.not_an_object"],
    ]
    assert [[(p.record, p.field) for p in ps] for ps in result.problems] == [
        [(0, "x"), (0, "n")],
        [],
        [(2, "b"), (2, "c"), (2, "t")],
        [(3, None)],
    ]
    assert result.valid.tolist() == [1]
    assert len(result.frame) == 1

    with pytest.raises(ContractError) as info:
        contract.validate_or_raise(records)
    error = info.value
    assert (error.code, error.status) == ("contract.invalid", 422)
    assert error.problems == [p for ps in result.problems for p in ps]
    assert error.message == "3 of 4 records broke the input contract"


def test_validate_or_raise_returns_the_result_when_all_records_are_valid(
    contract: Contract,
) -> None:
    result = contract.validate_or_raise([good_record(), good_record(x=9.0)])
    assert result.valid.tolist() == [0, 1]


# --- null policies -----------------------------------------------------------------------


def test_nullable_field_imputes_by_default(contract: Contract) -> None:
    record = good_record(x=None, s=None, t=None)
    del record["x"]  # a missing key counts as null for a nullable field
    result = contract.apply([record])
    assert result.problems == [[]]
    assert codes(result.warnings[0]) == ["contract.imputed"] * 3
    imputed = only([w for w in result.warnings[0] if w.field == "x"], "contract.imputed")
    assert imputed.message.startswith("field 'x' was missing; imputed the training value")
    row = result.features()[0]
    assert row["x"] == spec(contract, "x").impute
    assert row["s"] == "hi"
    assert row["t"] == spec(contract, "t").impute


def test_nullable_field_with_pass_policy_keeps_the_null(contract: Contract) -> None:
    c = edited(edited(contract, "x", on_null="pass"), "s", on_null="pass")
    result = c.apply([good_record(x=None, s=None)])
    assert codes(result.warnings[0]) == ["contract.null_passed"] * 2
    passed = only([w for w in result.warnings[0] if w.field == "x"], "contract.null_passed")
    assert passed.message == "field 'x' was null; passed to the model as a missing value"
    assert math.isnan(result.frame["x"][0])
    assert pd.isna(result.frame["s"][0])
    assert result.features()[0]["x"] is None


def test_nullable_field_with_reject_policy(contract: Contract) -> None:
    c = edited(contract, "x", on_null="reject")
    assert codes(c.apply([good_record(x=None)]).problems[0]) == ["contract.null_value"]
    record = good_record()
    del record["x"]
    assert codes(c.apply([record]).problems[0]) == ["contract.missing_field"]


def test_optional_but_not_nullable_field_may_be_absent_but_not_null(contract: Contract) -> None:
    c = edited(contract, "n", required=False)
    record = good_record()
    del record["n"]
    assert codes(c.apply([record]).warnings[0]) == ["contract.imputed"]
    assert codes(c.apply([good_record(n=None)]).problems[0]) == ["contract.null_value"]


def test_passing_nulls_fixes_the_dtype_by_contract_not_by_batch(contract: Contract) -> None:
    c = edited(
        edited(contract, "n", nullable=True, on_null="pass"),
        "b",
        nullable=True,
        on_null="pass",
    )
    with_null = c.apply([good_record(n=None, b=None)]).frame
    without = c.apply([good_record()]).frame
    for frame in (with_null, without):
        assert frame["n"].dtype == np.float64  # a numpy int column cannot hold NaN
        assert frame["b"].dtype == object  # nor can a numpy bool column
    assert with_null["n"].isna().all() and with_null["b"].isna().all()


def test_extension_dtypes_hold_passed_nulls() -> None:
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "f": pd.array([0.5, None, 1.5], dtype="Float64"),
            "k": pd.array([True, None, False], dtype="boolean"),
        }
    )
    c = infer_contract(frame)
    for f in c.fields:
        f.on_null = "pass"
    result = c.apply([{"i": None, "f": None, "k": None}, {"i": 2, "f": 1.0, "k": True}])
    assert list(result.frame.dtypes) == list(frame.dtypes)
    assert result.frame.isna().sum().tolist() == [1, 1, 1]
    assert_frame_equal(replayed(c, result), result.frame)


@pytest.mark.parametrize(("marker", "null_as"), [(np.nan, "nan"), (None, "none")])
def test_a_passed_null_reaches_an_object_column_as_training_spelled_it(
    marker: Any, null_as: str
) -> None:
    # read_csv spells a missing string NaN, a frame built from records (pandas 2) or from
    # SQL spells it None; a pipeline treats the two differently, so the model gets its own.
    train = pd.DataFrame(
        {
            "k": pd.Series(["a", marker, "b", marker, "a"], dtype=object),
            "v": pd.Series([True, marker, False, True, True], dtype=object),
        }
    )
    c = infer_contract(train)
    assert [(f.kind, f.null_as) for f in c.fields] == [
        ("categorical", null_as),
        ("boolean", null_as),
    ]
    for f in c.fields:
        f.on_null = "pass"
    result = c.apply([{"k": None, "v": math.nan}, {"k": "b"}, {"k": math.nan, "v": False}])
    assert result.problems == [[], [], []]
    for column in ("k", "v"):
        nulls = [v for v in result.frame[column].tolist() if not isinstance(v, str | bool)]
        assert len(nulls) == 2 and all(v is marker or v != v for v in nulls)
        assert all((v is None) == (marker is None) for v in nulls)
    for row, features in enumerate(json.loads(json.dumps(result.features()))):
        alone = c.frame([features])  # replay: the very same marker, row by row
        assert_frame_equal(alone, result.frame.iloc[[row]].reset_index(drop=True))


def test_a_contract_stored_before_null_as_keeps_nan() -> None:
    stored = {
        "format": 1,
        "fields": [
            {"name": "k", "kind": "categorical", "dtype": "object", "required": False,
             "nullable": True, "on_null": "pass", "impute": "a", "minimum": None,
             "maximum": None, "categories": ["a", "b"], "on_unseen": "pass"},
        ],
    }  # fmt: skip
    c = Contract.from_dict(stored)
    assert c.fields[0].null_as == "nan"
    value = c.apply([{"k": None}]).frame["k"][0]
    assert isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize(
    ("changes", "null", "missing"),
    [
        ({}, "reject", "reject"),  # n: required, not nullable, whatever on_null says
        ({"required": False}, "reject", "impute 5"),
        ({"nullable": True}, "impute 5", "impute 5"),
        ({"nullable": True, "on_null": "pass"}, "pass to model", "pass to model"),
        ({"nullable": True, "on_null": "reject"}, "reject", "reject"),
        ({"nullable": True, "impute": None}, "pass to model", "pass to model"),
        ({"required": False, "on_null": "pass"}, "reject", "pass to model"),
    ],
)
def test_null_handling_says_what_a_record_really_gets(
    contract: Contract, changes: dict[str, Any], null: str, missing: str
) -> None:
    c = edited(contract, "n", **changes)
    field = spec(c, "n")
    assert field.null_handling() == {"null": null, "missing": missing}
    absent = good_record()
    del absent["n"]
    for record, said in ((good_record(n=None), null), (absent, missing)):
        result = c.apply([record])
        found = codes(result.problems[0] + result.warnings[0])
        expected = {
            "reject": {"contract.null_value", "contract.missing_field"},
            "impute 5": {"contract.imputed"},
            "pass to model": {"contract.null_passed"},
        }[said]
        assert len(found) == 1 and found[0] in expected, (record, found)


# --- coercions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected", "warned"),
    [
        ("x", 2, 2.0, False),
        ("x", "3.5", 3.5, True),
        ("x", " 3.5 ", 3.5, True),
        ("x", np.float32(1.5), 1.5, False),
        ("n", 3.0, 3, False),
        ("n", "7", 7, True),
        ("n", "7.0", 7, True),
        ("n", np.int64(7), 7, False),
        ("b", 1, True, True),  # a number is not a boolean in JSON: coerced, like "true"
        ("b", 0.0, False, True),
        ("b", np.int64(1), True, True),
        ("b", "true", True, True),
        ("b", "FALSE", False, True),
        ("b", np.bool_(True), True, False),
        ("c", "green", "green", False),
        ("s", "lo", "lo", False),
        ("txt", 12, "12", True),
        ("t", "2020-01-10", "2020-01-10T00:00:00", False),
        ("t", "2020-01-10 06:30", "2020-01-10T06:30:00", False),
        ("t", pd.Timestamp("2020-01-10 06:30"), "2020-01-10T06:30:00", False),
        ("t", "2020-01-10T06:30:00+02:00", "2020-01-10T04:30:00", True),
        ("tz", "2021-01-01T07:00:00+02:00", "2021-01-01T05:00:00+00:00", False),
        ("tz", "2021-01-01T05:00:00", "2021-01-01T05:00:00+00:00", True),
    ],
)
def test_lossless_coercions(
    contract: Contract, name: str, value: Any, expected: Any, warned: bool
) -> None:
    result = contract.apply([good_record(**{name: value})])
    assert result.problems == [[]]
    assert result.features()[0][name] == expected
    assert type(result.features()[0][name]) is type(expected)
    warnings = [w for w in result.warnings[0] if w.field == name]
    assert codes(warnings) == (["contract.coerced"] if warned else [])
    if warned:
        assert warnings[0].message.startswith(f"field {name!r}: converted ")


def test_a_number_for_a_boolean_is_flagged_like_a_string(contract: Contract) -> None:
    # JSON has true and false: 1 is a conversion, as "true" is, and says so.
    result = contract.apply([good_record(b=1), good_record(b="true"), good_record(b=True)])
    flagged = [[(w.code, w.message) for w in ws if w.field == "b"] for ws in result.warnings]
    assert flagged == [
        [("contract.coerced", "field 'b': converted 1 to True")],
        [("contract.coerced", "field 'b': converted 'true' to True")],
        [],
    ]


def test_numbers_for_a_string_category_become_strings() -> None:
    c = infer_contract(pd.DataFrame({"zip": ["75001", "69001", "75001"]}))
    result = c.apply([{"zip": 75001}, {"zip": 1.5}])
    assert codes(result.warnings[0]) == ["contract.coerced"]
    assert codes(result.warnings[1]) == ["contract.coerced", "contract.unseen_category"]
    assert result.frame["zip"].tolist() == ["75001", "1.5"]


def test_numeric_categories_accept_numbers_and_numeric_strings() -> None:
    frame = pd.DataFrame({"grade": pd.Categorical([1, 2, 3, 2])})
    c = infer_contract(frame)
    assert spec(c, "grade").categories == [1, 2, 3]
    result = c.apply([{"grade": 2}, {"grade": "3"}, {"grade": True}, {"grade": "x"}])
    assert codes(result.warnings[1]) == ["contract.coerced"]
    assert [codes(p) for p in result.problems[2:]] == [["contract.wrong_type"]] * 2
    assert result.frame["grade"].tolist() == [2, 3]
    assert result.frame["grade"].dtype == frame["grade"].dtype


# --- warnings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("x", 99.0, "99.0"),
        ("x", -1, "-1.0"),
        ("n", 10, "10"),
        ("t", "2030-01-01T00:00:00", "'2030-01-01T00:00:00'"),
        ("tz", "2020-06-01T00:00:00Z", "'2020-06-01T00:00:00+00:00'"),
    ],
)
def test_out_of_range_is_served_with_a_warning(
    contract: Contract, name: str, value: Any, shown: str
) -> None:
    result = contract.apply([good_record(**{name: value})])
    assert result.valid.tolist() == [0]
    warning = only(result.warnings[0], "contract.out_of_range")
    assert warning.field == name
    assert warning.message.startswith(f"field {name!r} = {shown} is outside the training range")


def test_range_is_checked_on_the_slow_path_too(contract: Contract) -> None:
    result = contract.apply([good_record(x="99"), good_record(x=None)])
    assert codes(result.warnings[0]) == ["contract.coerced", "contract.out_of_range"]
    assert codes(result.warnings[1]) == ["contract.imputed"]  # the median is in range


def test_unseen_category_pass(contract: Contract) -> None:
    result = contract.apply([good_record(s="mid")])
    warning = only(result.warnings[0], "contract.unseen_category")
    assert warning.message == (
        "field 's' got 'mid', a category not seen in training; passed to the model as it is"
    )
    assert warning.hint == "send one of 'hi', 'lo'"
    assert result.frame["s"].tolist() == ["mid"]


def test_unseen_category_in_a_category_column_is_nan_for_the_model(contract: Contract) -> None:
    result = contract.apply([good_record(c="purple"), good_record(c="red")])
    assert codes(result.warnings[0]) == ["contract.unseen_category"]
    column = result.frame["c"]
    assert list(column.cat.categories) == ["blue", "green", "red"]  # codes stay put
    assert pd.isna(column[0]) and column[1] == "red"
    assert result.features()[0]["c"] == "purple"  # logged as sent; replays to NaN
    assert_frame_equal(replayed(contract, result), result.frame)


def test_unseen_category_impute(contract: Contract) -> None:
    c = edited(contract, "s", on_unseen="impute")
    result = c.apply([good_record(s="mid")])
    warning = only(result.warnings[0], "contract.unseen_category")
    assert warning.message.endswith("replaced by the most common category 'hi'")
    assert result.frame["s"].tolist() == ["hi"]


def test_unseen_category_reject(contract: Contract) -> None:
    c = edited(contract, "c", on_unseen="reject")
    result = c.apply([good_record(c="purple")])
    problem = only(result.problems[0], "contract.unseen_category")
    assert problem.hint == "send one of 'blue', 'green', 'red'"
    assert result.warnings == [[]]


def test_extra_fields_are_ignored_with_one_warning_each(contract: Contract) -> None:
    result = contract.apply([good_record(extra=1, **{"also": None})])
    warnings = result.warnings[0]
    assert [(w.code, w.field) for w in warnings] == [
        ("contract.extra_field", "extra"),
        ("contract.extra_field", "also"),
    ]
    assert list(result.frame.columns) == contract.feature_names


def test_extra_field_warnings_are_capped_per_record(contract: Contract) -> None:
    record = good_record(**{f"k{i}": i for i in range(25)})
    warnings = contract.apply([record]).warnings[0]
    assert len(warnings) == MAX_EXTRA_WARNINGS + 1
    assert warnings[-1].message == "15 more fields not in the contract were ignored"


def test_extra_fields_with_missing_ones(contract: Contract) -> None:
    record = good_record(other=1)
    del record["n"]
    result = contract.apply([record])
    assert codes(result.problems[0]) == ["contract.missing_field"]
    assert [w.field for w in result.warnings[0]] == ["other"]


def test_every_finding_explains_itself(contract: Contract) -> None:
    records: list[Any] = [
        good_record(x="abc", n=None, b="yes", c="purple", s=None, extra=1),
        good_record(x=99.0, t="2030-01-01", tz=3, txt=5),
        7,
    ]
    result = contract.apply(records)
    for findings in result.problems + result.warnings:
        for finding in findings:
            assert finding.code.startswith("contract.")
            assert finding.message and finding.hint


# --- the frame and exact replay ----------------------------------------------------------


def test_frame_has_training_dtypes_and_a_fresh_index(
    contract: Contract, train: pd.DataFrame
) -> None:
    result = contract.apply(["bad", good_record(), good_record(x="abc"), good_record(n=5)])
    assert result.valid.tolist() == [1, 3]
    assert list(result.frame.columns) == list(train.columns)
    assert list(result.frame.dtypes) == list(train.dtypes)
    assert result.frame.index.equals(pd.RangeIndex(2))
    assert result.frame["n"].tolist() == [4, 5]


def test_an_object_column_of_strings_stays_object() -> None:
    # pandas 3 infers str for strings in an object array unless told not to; the model
    # was trained on object, and a batch of nulls alone would stay object anyway.
    train = pd.DataFrame({"k": pd.Series(["a", None, "b"], dtype=object), "x": [1.0, 2.0, 3.0]})
    c = infer_contract(train)
    for batch in ([{"k": "a", "x": 1.0}], [{"k": None, "x": 1.0}], [{"k": "b", "x": 2.0}] * 3):
        assert list(c.apply(batch).frame.dtypes) == list(train.dtypes)


def test_an_empty_batch_gives_an_empty_frame_of_the_right_shape(
    contract: Contract, train: pd.DataFrame
) -> None:
    for records in ([], ["bad"]):
        result = contract.apply(records)
        assert len(result.frame) == 0
        assert list(result.frame.dtypes) == list(train.dtypes)
        assert result.features() == []


def test_an_empty_contract_accepts_objects() -> None:
    c = Contract([])
    result = c.apply([{}, {"a": 1}])
    assert result.valid.tolist() == [0, 1]
    assert result.features() == [{}, {}]
    assert codes(result.warnings[1]) == ["contract.extra_field"]
    assert_frame_equal(c.frame(result.features()), result.frame)


def test_replay_rebuilds_an_identical_frame(contract: Contract) -> None:
    records = [
        good_record(),
        good_record(x=None, s=None, t=None),  # imputed
        good_record(x="2.25", b="false", n=7.0, txt=42),  # coerced
        good_record(c="purple", s="mid", x=1e6, t="1999-12-31T23:59:59.123456"),
        good_record(tz="2021-01-01T07:00:00+02:00"),
        good_record(x="bad"),  # invalid: not in the frame
    ]
    result = contract.apply(records)
    assert result.valid.tolist() == [0, 1, 2, 3, 4]
    assert_frame_equal(replayed(contract, result), result.frame)


def test_replay_of_nulls_passed_through(contract: Contract) -> None:
    c = edited(edited(contract, "x", on_null="pass"), "t", on_null="pass")
    result = c.apply([good_record(x=None, t=None), good_record()])
    assert result.features()[0]["x"] is None and result.features()[0]["t"] is None
    assert_frame_equal(replayed(c, result), result.frame)


def test_replay_of_one_record_matches_its_row_in_the_batch(contract: Contract) -> None:
    records = [good_record(c="purple"), good_record(x=None), good_record(t="2020-01-10 06:30")]
    result = contract.apply(records)
    for row, features in enumerate(result.features()):
        alone = contract.frame([json.loads(json.dumps(features))])
        assert_frame_equal(alone, result.frame.iloc[[row]].reset_index(drop=True))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_datetime_units_survive_replay(unit: str) -> None:
    frame = pd.DataFrame({"at": pd.Series(["2020-01-01T00:00:00"], dtype=f"datetime64[{unit}]")})
    c = infer_contract(frame)
    stamps = ["2020-01-02T03:04:05", "2020-01-02T03:04:05.123", "2020-01-02T03:04:05.123456789"]
    result = c.apply([{"at": s} for s in stamps])
    assert result.frame["at"].dtype == frame["at"].dtype
    assert_frame_equal(replayed(c, result), result.frame)


def test_datetime_out_of_the_units_range_is_a_wrong_type() -> None:
    c = infer_contract(pd.DataFrame({"at": pd.Series(["2020-01-01"], dtype="datetime64[ns]")}))
    result = c.apply([{"at": "3000-01-01"}, {"at": "2020-01-01"}])
    assert codes(result.problems[0]) == ["contract.wrong_type"]
    assert "representable" in result.problems[0][0].message
    assert result.valid.tolist() == [1]


def test_a_bad_value_elsewhere_in_the_batch_changes_nothing_for_the_others(
    contract: Contract,
) -> None:
    # a column with one odd value takes the value-by-value path; its good values must come
    # out exactly as on the vectorised path
    good = [good_record(x=0.1 * i, n=i, t=f"2020-01-{i + 10:02d}T01:02:03.5") for i in range(5)]
    clean = contract.apply(good).frame
    mixed = contract.apply([*good, good_record(x="bad", n="bad", t="bad")]).frame
    assert_frame_equal(mixed, clean)


def test_features_are_json_ready(contract: Contract) -> None:
    result = contract.apply([good_record(x=None), good_record(c="purple", n=np.int64(3))])
    features = result.features()
    assert json.loads(json.dumps(features, allow_nan=False)) == features
    assert features[1]["n"] == 3 and type(features[1]["n"]) is int


def test_records_may_be_any_sequence(contract: Contract) -> None:
    result = contract.apply((good_record(), good_record()))
    assert result.valid.tolist() == [0, 1]


def test_mappings_that_are_not_dicts_are_records(contract: Contract) -> None:
    from collections import OrderedDict, defaultdict

    ordered = OrderedDict(good_record())
    default: defaultdict[str, Any] = defaultdict(lambda: 1.0, good_record())
    del default["x"]
    result = contract.apply([ordered, default])
    assert result.problems == [[], []]
    assert codes(result.warnings[1]) == ["contract.imputed"]  # no __missing__ default
    assert "x" not in default


# --- properties --------------------------------------------------------------------------

PROPERTY_CONTRACT = infer_contract(training_frame())
NAMES = PROPERTY_CONTRACT.feature_names
# The same fields when registration found that the model handles missing values itself:
# every nullable field passes nulls, and two more fields (an int, a bool) become nullable.
PASSING_CONTRACT = Contract.from_dict(
    {
        "fields": [
            {**f, "on_null": "pass", "nullable": f["nullable"] or f["name"] in ("n", "b")}
            for f in PROPERTY_CONTRACT.to_dict()["fields"]
        ]
    }
)
PROPERTY_CONTRACTS = [
    pytest.param(c, c.apply([good_record()]).frame.dtypes, id=name)
    for name, c in (("imputing", PROPERTY_CONTRACT), ("passing", PASSING_CONTRACT))
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(2**64), 2**63, 2**63 - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
plausible = st.sampled_from(
    [
        1.5,
        0,
        7,
        "3.5",
        "NaN",
        "inf",
        "true",
        "0",
        True,
        "red",
        "purple",
        "hi",
        "2020-01-10",
        "2020-01-10T06:30:00+02:00",
        "2021-01-01T05:00:00",
        "note number 3",
        "\ud800 lone surrogate",
        2**63,
    ]
)
# Values each field accepts (some with repairs), so that many generated records are valid.
acceptable: dict[str, list[Any]] = {
    "x": [1.5, 0.2, 99.0, "3.5", 2, None, math.nan, np.float64(0.5)],
    "n": [4, 9, 3.0, "7", 100, -(2**40)],
    "b": [True, False, 1, "true", np.bool_(False)],
    "c": ["red", "blue", "purple", 3],
    "s": ["hi", "lo", None, "mid", "ünï"],
    "t": ["2020-01-10", "2020-01-10T06:30:00+02:00", None, "2020-02-01T00:00:00.5"],
    "tz": ["2021-01-01T05:00:00", "2021-01-01T05:00:00Z", "2021-01-01 07:00:00+02:00"],
    "txt": ["note", "", 5, "\x00 nul", "ünïcode ✓"],
}


def field_value(name: str) -> st.SearchStrategy[Any]:
    """Nine times in ten a value the field accepts, else anything JSON-like."""
    return st.integers(0, 9).flatmap(
        lambda k: json_values | plausible if k == 0 else st.sampled_from(acceptable[name])
    )


shaped = st.fixed_dictionaries(
    {name: field_value(name) for name in NAMES if name != "x"},
    optional={"x": field_value("x"), "extra": json_values},  # x is nullable
)
records = st.one_of(
    shaped,
    shaped,
    shaped,
    st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=4), plausible | json_values),
    json_values,
)
batches = st.lists(records, max_size=8)
PROPERTY_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(("contract", "dtypes"), PROPERTY_CONTRACTS)
@PROPERTY_SETTINGS
@given(batch=batches)
def test_apply_never_raises_and_partitions_the_records(
    contract: Contract, dtypes: pd.Series, batch: list[Any]
) -> None:
    result = contract.apply(batch)
    assert len(result.problems) == len(result.warnings) == len(batch)
    valid = set(result.valid.tolist())
    for i, problems in enumerate(result.problems):
        assert (i in valid) == (not problems)
        assert all(p.record == i for p in problems)
        assert all(w.record == i for w in result.warnings[i])
    assert list(result.frame.columns) == NAMES
    assert result.frame.dtypes.equals(dtypes)
    assert len(result.frame) == len(valid)
    assert result.frame.index.equals(pd.RangeIndex(len(valid)))


@PROPERTY_SETTINGS
@given(batches)
def test_validate_or_raise_raises_exactly_when_a_record_is_invalid(batch: list[Any]) -> None:
    invalid = len(PROPERTY_CONTRACT.apply(batch).valid) < len(batch)
    try:
        PROPERTY_CONTRACT.validate_or_raise(batch)
    except ContractError as error:
        assert invalid
        assert error.code == "contract.invalid"
        assert error.problems
    else:
        assert not invalid


@pytest.mark.parametrize(("contract", "dtypes"), PROPERTY_CONTRACTS)
@PROPERTY_SETTINGS
@given(batch=batches)
def test_replay_is_exact_for_any_batch(
    contract: Contract, dtypes: pd.Series, batch: list[Any]
) -> None:
    result = contract.apply(batch)
    features = result.features()
    assert_frame_equal(contract.frame(json.loads(json.dumps(features))), result.frame)
    for row, one in enumerate(features):  # and each row alone, as replay does it
        alone = contract.frame([one])
        assert_frame_equal(alone, result.frame.iloc[[row]].reset_index(drop=True))


def test_field_specs_are_plain_dataclasses() -> None:
    f = FieldSpec("a", "numeric", "float64")
    assert dataclasses.replace(f, minimum=1.0).minimum == 1.0


def test_all_numeric_contract_replays_nulls_and_numbers() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [0.5, 0.25, 0.125]})
    c = infer_contract(frame)
    spec(c, "a").on_null = "pass"
    result = c.apply([{"a": None, "b": 0.5}, {"a": 2.0, "b": 1e-300}])
    assert result.features() == [{"a": None, "b": 0.5}, {"a": 2.0, "b": 1e-300}]
    assert_frame_equal(replayed(c, result), result.frame)


def test_mixed_type_categories_match_values_exactly() -> None:
    c = infer_contract(pd.DataFrame({"m": pd.Series(["a", 1, 2.5, "a"], dtype=object)}))
    assert spec(c, "m").categories == [1, 2.5, "a"]
    result = c.apply([{"m": 1}, {"m": "a"}, {"m": "1"}, {"m": True}, {"m": [1]}])
    assert [codes(w) for w in result.warnings[:3]] == [[], [], ["contract.unseen_category"]]
    assert [codes(p) for p in result.problems[3:]] == [["contract.wrong_type"]] * 2
    assert_frame_equal(replayed(c, result), result.frame)


def test_python_dates_and_datetimes_are_accepted(contract: Contract) -> None:
    from datetime import date, datetime

    result = contract.apply(
        [
            good_record(t=date(2020, 1, 10)),
            good_record(t=datetime(2020, 1, 10, 6, 30), tz=datetime(2021, 1, 1, tzinfo=UTC)),
            good_record(t=np.datetime64("2020-01-10T06:30")),
        ]
    )
    assert result.problems == [[], [], []]
    assert [f["t"] for f in result.features()] == [
        "2020-01-10T00:00:00",
        "2020-01-10T06:30:00",
        "2020-01-10T06:30:00",
    ]


def test_messages_survive_values_python_cannot_print(contract: Contract) -> None:
    problem = only(contract.apply([good_record(x=10**5000)]).problems[0], "contract.non_finite")
    assert problem.message == "field 'x' got <int>, which is too large to be a finite number"


def test_long_category_lists_are_shortened_in_hints() -> None:
    c = infer_contract(pd.DataFrame({"k": [f"k{i:02d}" for i in range(12)]}))
    hint = only(c.apply([{"k": None}]).problems[0], "contract.null_value").hint
    assert hint.endswith("'k09' (and 2 more)")


# --- the all-numbers fast path -------------------------------------------------------------

_NUMBERS = infer_contract(
    pd.DataFrame({"a": [0.5, 1.5, 2.5, 3.5], "b": [-10.0, 0.0, 5.0, 10.0], "c": [1e-3, 2e-3, 0, 1]})
)

_VALUE = st.one_of(
    st.floats(-20, 20, allow_nan=False),
    st.integers(-30, 30),
    st.sampled_from([math.nan, math.inf, None, "1.5", True, 10**400]),
)


# ... and the same numbers with every null policy: a null never takes the fast path, but the
# fast path must still agree with the general one on everything it does take.
_NUMBERS_CONTRACTS = [
    pytest.param(_NUMBERS, id="required"),
    pytest.param(
        edited(
            edited(
                edited(_NUMBERS, "a", nullable=True, required=False, on_null="pass"),
                "b",
                nullable=True,
                required=False,
            ),
            "c",
            required=False,
        ),
        id="pass-impute-optional",
    ),
    pytest.param(edited(_NUMBERS, "a", nullable=True, on_null="reject"), id="reject"),
]


@pytest.mark.parametrize("numbers", _NUMBERS_CONTRACTS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(
        st.one_of(
            st.fixed_dictionaries({"a": _VALUE, "b": _VALUE, "c": _VALUE}),
            st.fixed_dictionaries(
                {"a": st.floats(0, 4), "b": st.integers(-12, 12), "c": st.floats(-1, 2)}
            ),
            st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _VALUE, max_size=4),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_fast_path_answers_exactly_as_the_general_one(
    numbers: Contract, records: list[dict[str, Any]]
) -> None:
    fast = numbers.apply(records)
    general = numbers._apply_general(records)
    assert_frame_equal(fast.frame, general.frame, check_exact=True)
    assert fast.valid.tolist() == general.valid.tolist()
    assert fast.problems == general.problems and fast.warnings == general.warnings
    assert fast.features() == general.features()


def test_the_fast_path_is_taken_for_plain_numbers_and_only_then() -> None:
    plain = [{"a": 1.0, "b": 2, "c": 0.5}, {"a": 9.0, "b": -3, "c": 0.25}]
    taken = _NUMBERS.apply(plain)
    assert taken.block is not None and len(taken.valid) == 2
    assert [w.code for w in taken.warnings[1]] == ["contract.out_of_range"]
    for odd in ({"a": None, "b": 1, "c": 0.1}, {"a": 1, "b": 1}, {"a": 1, "b": 1, "c": 1, "x": 2}):
        assert _NUMBERS.apply([*plain, odd]).block is None
