"""Inferring a contract from the training features: kinds, ranges, categories, imputes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
)

from plinth.core.contract.application import _is_object
from plinth.core.contract.contract import Contract
from plinth.core.contract.spec import (
    CATEGORICAL_HARD_CAP,
    CATEGORICAL_MAX_DISTINCT,
    CATEGORICAL_MAX_SHARE,
    FieldSpec,
    _iso,
    _jsonable,
    _sort_key,
)
from plinth.errors import InvalidTrainingDataError


def infer_contract(frame: pd.DataFrame) -> Contract:
    """Infer a contract from the training features (the caller drops the target)."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidTrainingDataError(
            f"training features must be a pandas DataFrame, not {type(frame).__name__}"
        )
    bad = [c for c in frame.columns if not isinstance(c, str) or not c]
    if bad or frame.columns.has_duplicates:
        raise InvalidTrainingDataError(
            "training columns must have unique, non-empty string names",
            hint="rename the columns, e.g. frame.columns = [f'x{i}' for i in ...]",
        )
    return Contract([_infer_field(str(name), frame[name]) for name in frame.columns])


# --- inference ---------------------------------------------------------------------------


def _infer_field(name: str, s: pd.Series) -> FieldSpec:
    dtype = s.dtype
    nullable = bool(s.isna().any())
    nonnull = s.dropna()
    common: dict[str, Any] = {
        "name": name,
        "dtype": str(dtype),
        "nullable": nullable,
        "required": not nullable,
    }
    if nullable and _is_object(dtype):
        common["null_as"] = _null_marker(s[s.isna()])
    if is_bool_dtype(dtype):
        return _infer_boolean(common, nonnull)
    if is_integer_dtype(dtype):
        return _infer_integer(common, nonnull)
    if is_float_dtype(dtype):
        return _infer_numeric(common, nonnull)
    if is_datetime64_any_dtype(dtype):
        times = pd.Series(nonnull)
        return FieldSpec(
            kind="datetime",
            # median, not mode: timestamps are nearly all distinct, so a mode is arbitrary
            impute=_iso(times.median()) if len(times) else None,
            minimum=_iso(times.min()) if len(times) else None,
            maximum=_iso(times.max()) if len(times) else None,
            **common,
        )
    if isinstance(dtype, pd.CategoricalDtype):
        cats = [_jsonable(c) for c in dtype.categories]
        return FieldSpec(kind="categorical", categories=cats, impute=_mode(nonnull), **common)
    if _is_object(dtype) or isinstance(dtype, pd.StringDtype):
        inferred = infer_dtype(nonnull, skipna=True)
        if _is_object(dtype) and inferred == "boolean":
            return _infer_boolean(common, nonnull)
        if _is_object(dtype) and inferred == "integer":
            return _infer_integer(common, nonnull.astype(np.int64))
        if _is_object(dtype) and inferred in ("floating", "mixed-integer-float"):
            return _infer_numeric(common, nonnull.astype(np.float64))
        values = nonnull.tolist()
        if inferred in ("string", "empty", "mixed", "mixed-integer") and all(
            isinstance(v, (str, int, float, bool)) for v in values
        ):
            distinct = sorted({_jsonable(v) for v in values}, key=_sort_key)
            few = len(distinct) <= CATEGORICAL_MAX_DISTINCT or (
                len(distinct) <= CATEGORICAL_HARD_CAP
                and len(distinct) <= CATEGORICAL_MAX_SHARE * len(values)
            )
            if distinct and few:
                return FieldSpec(
                    kind="categorical", categories=distinct, impute=_mode(nonnull), **common
                )
            return FieldSpec(kind="text", impute=_mode(nonnull), **common)
    raise InvalidTrainingDataError(
        f"column {name!r} has dtype {dtype}, which a contract cannot describe",
        hint="convert it to numbers, booleans, strings or datetime64 "
        "(e.g. pd.to_datetime, .astype(str)) before registering",
    )


def _infer_boolean(common: dict[str, Any], nonnull: pd.Series) -> FieldSpec:
    return FieldSpec(kind="boolean", impute=_mode(nonnull), **common)


def _infer_integer(common: dict[str, Any], nonnull: pd.Series) -> FieldSpec:
    if not len(nonnull):
        return FieldSpec(kind="integer", **common)
    return FieldSpec(
        kind="integer",
        impute=int(np.round(float(nonnull.median()))),
        minimum=int(nonnull.min()),
        maximum=int(nonnull.max()),
        **common,
    )


def _infer_numeric(common: dict[str, Any], nonnull: pd.Series) -> FieldSpec:
    values = nonnull.to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]  # keep the stored range JSON-ready
    if not len(values):
        return FieldSpec(kind="numeric", **common)
    return FieldSpec(
        kind="numeric",
        impute=float(np.median(values)),
        minimum=float(values.min()),
        maximum=float(values.max()),
        **common,
    )


def _null_marker(nulls: pd.Series) -> str:
    """How the training table spelled "missing" in an object column: None, or NaN (and any
    other marker pandas reads as missing), whichever is more common."""
    none = sum(v is None for v in nulls.tolist())
    return "none" if none > len(nulls) - none else "nan"


def _mode(nonnull: pd.Series) -> Any:
    if not len(nonnull):
        return None
    counts = nonnull.value_counts(sort=False)
    top = counts[counts == counts.max()].index.tolist()
    return min((_jsonable(v) for v in top), key=_sort_key)  # ties: the smallest, stable
