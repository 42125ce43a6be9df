"""Applying a contract to a batch: compiled field plans, column-by-column parsing, the frame.

``Contract.apply`` never raises: each record either becomes one row of the model frame or
comes back with every problem listed, and every repair is reported as a warning. Checks run
column by column: a column of clean numbers costs one ``np.fromiter`` and two comparisons,
and only an odd column falls back to parsing value by value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any, cast

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
    pandas_dtype,
)

from plinth.core.contract.spec import (
    _FALSE,
    _FLOATISH,
    _INTISH,
    _ISO_PREFIX,
    _NAT,
    _TRUE,
    FieldSpec,
    _jsonable,
    _num,
    _show,
)
from plinth.errors import InvalidContractSpecError, Problem
from plinth.errors.contract import (
    COERCED,
    IMPUTED,
    MISSING_FIELD,
    NON_FINITE,
    NULL_PASSED,
    NULL_VALUE,
    OUT_OF_RANGE,
    UNSEEN_CATEGORY,
    WRONG_TYPE,
)


@dataclass
class ContractResult:
    """One batch after the contract: the model frame of valid records plus every finding."""

    frame: pd.DataFrame  # one row per valid record, contract order, training dtypes
    valid: np.ndarray  # positions (into the input records) of the valid records
    problems: list[list[Problem]]  # per input record; empty when valid
    warnings: list[list[Problem]]  # per input record: repairs and flags
    # Where features() reads each column (the frame when absent): the built arrays, and for a
    # pandas category column the repaired values, since an unseen category is NaN in the
    # frame but is logged as sent (and so replays to the same NaN).
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    # The frame's values as one float64 block, when the all-numbers fast path built it.
    block: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_invalid(self) -> int:
        return len(self.problems) - len(self.valid)

    def all_problems(self) -> list[Problem]:
        """Every problem of every record, in record order."""
        return [p for ps in self.problems for p in ps]

    def features(self) -> list[dict[str, Any]]:
        """JSON-ready repaired features per valid record: what the model saw, for the log.

        ``Contract.frame`` turns this list back into an identical frame (exact replay).
        """
        names = [str(c) for c in self.frame.columns]
        if not names:
            return [{} for _ in range(len(self.frame))]
        if self.block is not None:  # finite numbers only: no NaN to turn into null
            return [dict(zip(names, row, strict=True)) for row in self.block.tolist()]
        sources = [self.raw[name] if name in self.raw else self.frame[name] for name in names]
        if all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in sources):
            block = np.column_stack(sources)  # all numbers: one tolist() for the batch
            rows = block.tolist()
            for i, j in np.argwhere(np.isnan(block)).tolist():
                rows[i][j] = None
            return [dict(zip(names, row, strict=True)) for row in rows]
        columns = [_column_to_json(c) for c in sources]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


# --- compiled fields ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A FieldSpec turned into what the hot path needs: parsed bounds, sets, dtypes, hints."""

    spec: FieldSpec
    dtype: Any
    on_null: str  # "impute" falls back to "pass" when training gave no value to impute
    impute: Any
    lo: Any
    hi: Any
    catset: frozenset[Any] | None
    cat_mode: str  # categorical values normalise to: "str", "num" or "any"
    unit: str
    tz: Any
    int_bounds: tuple[int, int]
    passes_nulls: bool  # can a null reach the frame? then its dtype must hold one
    null: Any  # what a passed null is in an object column: NaN or None (FieldSpec.null_as)
    expects: str
    hint: str

    @classmethod
    def compile(cls, spec: FieldSpec) -> _Plan:
        try:
            dtype = pandas_dtype(spec.dtype)
            if isinstance(dtype, pd.CategoricalDtype):
                # exactly the training categories, in their order: the codes a model learned
                dtype = pd.CategoricalDtype(pd.Index(spec.categories or []), dtype.ordered)
        except (TypeError, ValueError) as exc:
            raise InvalidContractSpecError(
                spec.name, f"unknown dtype {spec.dtype!r}: {exc}"
            ) from exc
        kind = spec.kind
        if not _DTYPE_OK[kind](dtype):
            raise InvalidContractSpecError(
                spec.name, f"dtype {spec.dtype} cannot hold a {kind} field"
            )
        unit, tz = "ns", None
        int_bounds = (int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max))
        if kind == "integer" and not _is_object(dtype):
            info = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
            int_bounds = (max(int(info.min), int_bounds[0]), min(int(info.max), int_bounds[1]))
        if isinstance(dtype, pd.DatetimeTZDtype):
            unit, tz = str(dtype.unit), dtype.tz
        elif kind == "datetime":
            unit = str(np.datetime_data(dtype)[0])
        convert = _SPEC_VALUE[kind]
        try:
            impute = None if spec.impute is None else convert(spec.impute, unit, tz)
            lo = None if spec.minimum is None else convert(spec.minimum, unit, tz)
            hi = None if spec.maximum is None else convert(spec.maximum, unit, tz)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidContractSpecError(
                spec.name, f"impute/minimum/maximum do not fit: {exc}"
            ) from exc
        cats = spec.categories if kind == "categorical" else None
        catset = frozenset(cats) if cats is not None else None
        if cats is None or all(isinstance(c, str) for c in cats):
            cat_mode = "str"
        elif all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cats):
            cat_mode = "num"
        else:
            cat_mode = "any"
        expects, hint = _describe(spec, cats)
        on_null = spec.null_policy
        return cls(
            spec=spec,
            dtype=dtype,
            on_null=on_null,
            impute=impute,
            lo=lo,
            hi=hi,
            catset=catset,
            cat_mode=cat_mode,
            unit=unit,
            tz=tz,
            int_bounds=int_bounds,
            passes_nulls=on_null == "pass" and (spec.nullable or not spec.required),
            null=None if spec.null_as == "none" else np.nan,
            expects=expects,
            hint=hint,
        )


def _is_object(dtype: Any) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind == "O"


def _is_extension(dtype: Any) -> bool:
    return isinstance(dtype, pd.api.extensions.ExtensionDtype)


_DTYPE_OK: dict[str, Callable[[Any], bool]] = {
    "numeric": lambda d: _is_object(d) or is_float_dtype(d),
    "integer": lambda d: _is_object(d) or (is_integer_dtype(d) and not is_bool_dtype(d)),
    "boolean": lambda d: _is_object(d) or is_bool_dtype(d),
    "datetime": lambda d: is_datetime64_any_dtype(d),
    "categorical": lambda d: _is_object(d) or isinstance(d, (pd.StringDtype, pd.CategoricalDtype)),
    "text": lambda d: _is_object(d) or isinstance(d, (pd.StringDtype, pd.CategoricalDtype)),
}


def _spec_datetime(v: Any, unit: str, tz: Any) -> int:
    ts = pd.Timestamp(v)
    if tz is None and ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    elif tz is not None:
        ts = ts.tz_localize(tz) if ts.tz is None else ts.tz_convert(tz)
    return int(ts.as_unit(unit).asm8.view(np.int64))


_SPEC_VALUE: dict[str, Callable[[Any, str, Any], Any]] = {
    "numeric": lambda v, u, t: float(v),
    "integer": lambda v, u, t: int(v),
    "boolean": lambda v, u, t: bool(v),
    "datetime": _spec_datetime,
    "categorical": lambda v, u, t: v,
    "text": lambda v, u, t: v,
}


def _describe(spec: FieldSpec, cats: list[Any] | None) -> tuple[str, str]:
    """What the field expects, and a hint saying exactly what to send."""
    lo, hi = spec.minimum, spec.maximum
    between = f" between {_num(lo)} and {_num(hi)}" if lo is not None and hi is not None else ""
    if spec.kind == "numeric":
        return "a number", f"send a number{between}"
    if spec.kind == "integer":
        return "a whole number", f"send a whole number{between}"
    if spec.kind == "boolean":
        return "true or false", "send true or false"
    if spec.kind == "datetime":
        example = "such as 2024-01-31T12:00:00"
        return "an ISO 8601 date-time", f"send an ISO 8601 date-time {example}{between}"
    if spec.kind == "categorical" and cats:
        shown = ", ".join(repr(c) for c in cats[:10])
        more = f" (and {len(cats) - 10} more)" if len(cats) > 10 else ""
        return "a category", f"send one of {shown}{more}"
    if spec.kind == "categorical":
        return "a category", "send a category as a string"
    return "a string", "send a string"


# --- parsing, column by column -----------------------------------------------------------


class _Missing:
    """Stands for a key the record does not have; distinct from an explicit null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
_EMPTY = np.zeros(0, dtype=np.int64)


class _Batch:
    """Per-record problem and warning lists for one call of ``apply``."""

    __slots__ = ("bad", "pos", "problems", "warnings")

    def __init__(self, n: int, pos: list[int]) -> None:
        self.problems: list[list[Problem]] = [[] for _ in range(n)]
        self.warnings: list[list[Problem]] = [[] for _ in range(n)]
        self.bad = np.zeros(n, dtype=bool)
        self.pos = pos  # index among the mapping records -> index among all records

    def add(
        self, record: int, problem: bool, code: str, name: str | None, message: str, hint: str
    ) -> None:
        finding = Problem(code=code, message=message, hint=hint, field=name, record=record)
        if problem:
            self.problems[record].append(finding)
            self.bad[record] = True
        else:
            self.warnings[record].append(finding)

    def field(self, plan: _Plan, i: int, code: str, message: str, hint: str = "") -> None:
        """A finding about one field of the i-th mapping record; problems by code."""
        problem = code in (MISSING_FIELD, NULL_VALUE, WRONG_TYPE, NON_FINITE) or (
            code == UNSEEN_CATEGORY and plan.spec.on_unseen == "reject"
        )
        self.add(self.pos[i], problem, code, plan.spec.name, message, hint or plan.hint)


@dataclass
class _Column:
    """Parsed values of one field over the mapping records, before valid rows are taken."""

    values: np.ndarray  # float64 / int64 / bool / object / int64 epoch in the field's unit
    null: np.ndarray | None  # True where a null was passed through (None: no such rows)
    missing: np.ndarray | None = None  # True where the key was absent (None: never)


# A scalar parser returns (flag, value): _OK, _COERCED (warn), or a problem code with a reason.
_OK, _COERCE = 0, 1
_Parsed = tuple[int | str, Any]


def _is_null(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float):
        return v != v  # a float NaN is how pandas spells "missing"
    return isinstance(v, np.datetime64) and bool(np.isnat(v))


def _slow(
    plan: _Plan,
    vals: Sequence[Any],
    batch: _Batch,
    parse: Callable[[_Plan, Any], _Parsed],
    placeholder: Any,
    dtype: Any,
) -> tuple[_Column, np.ndarray]:
    """Value-by-value parsing for a column that failed its fast path.

    Returns the column and a mask of caller-given (not imputed, not bad) values, which the
    range and category checks look at.
    """
    m = len(vals)
    out = [placeholder] * m
    null = np.zeros(m, dtype=bool)
    given = np.zeros(m, dtype=bool)
    missing = np.zeros(m, dtype=bool)
    spec = plan.spec
    for i, v in enumerate(vals):
        absent = v is _MISSING
        if absent or _is_null(v):
            missing[i] = absent
            what = "missing" if absent else "null"
            if not spec.nullable and (not absent or spec.required):
                code = MISSING_FIELD if absent else NULL_VALUE
                batch.field(plan, i, code, f"field {spec.name!r} is {what} but is required")
            elif plan.on_null == "reject":
                code = MISSING_FIELD if absent else NULL_VALUE
                batch.field(plan, i, code, f"field {spec.name!r} is {what}; nulls are rejected")
            elif plan.on_null == "pass":
                null[i] = True
                batch.field(
                    plan,
                    i,
                    NULL_PASSED,
                    f"field {spec.name!r} was {what}; passed to the model as a missing value",
                    f"send {spec.name!r} if it is known; {plan.hint}",
                )
            else:
                out[i] = plan.impute
                batch.field(
                    plan,
                    i,
                    IMPUTED,
                    f"field {spec.name!r} was {what}; imputed the training value "
                    f"{_show(spec.impute)}",
                    f"send {spec.name!r} to avoid imputation; {plan.hint}",
                )
            continue
        flag, x = parse(plan, v)
        if flag in (_OK, _COERCE):
            out[i] = x
            given[i] = True
            if flag == _COERCE:
                batch.field(
                    plan,
                    i,
                    COERCED,
                    f"field {spec.name!r}: converted {_show(v)} to {_show(_jsonable(x, plan))}",
                    f"send {plan.expects} to skip the conversion",
                )
        elif flag == NON_FINITE:
            batch.field(plan, i, NON_FINITE, f"field {spec.name!r} got {_show(v)}, {x}")
        else:
            batch.field(
                plan,
                i,
                WRONG_TYPE,
                f"field {spec.name!r} expects {plan.expects}, got {_show(v)}{x}",
            )
    if dtype is object:
        values = np.empty(m, dtype=object)
        values[:] = out
    else:
        values = np.array(out, dtype=dtype)
    column = _Column(values, null if null.any() else None, missing if missing.any() else None)
    return column, given


def _check_range(plan: _Plan, column: _Column, given: np.ndarray | None, batch: _Batch) -> None:
    """Warn (never reject) on values outside what training saw."""
    values = column.values
    out = np.zeros(len(values), dtype=bool)
    if plan.lo is not None:
        out |= values < plan.lo
    if plan.hi is not None:
        out |= values > plan.hi
    if given is not None:
        out &= given
    for i in np.flatnonzero(out).tolist():
        _warn_range(plan, i, values[i].item(), batch)


def _warn_range(plan: _Plan, i: int, value: Any, batch: _Batch) -> None:
    spec = plan.spec
    batch.field(
        plan,
        i,
        OUT_OF_RANGE,
        f"field {spec.name!r} = {_show(_jsonable(value, plan))} is outside the training range "
        f"[{_num(spec.minimum)}, {_num(spec.maximum)}]; the model was served anyway",
        "the model never saw such values, so treat the answer with care; "
        "check the input, or retrain on data that covers it",
    )


def _parse_numeric_value(plan: _Plan, v: Any) -> _Parsed:
    if isinstance(v, (bool, np.bool_)):
        return WRONG_TYPE, ""
    if isinstance(v, (int, np.integer)):
        try:
            return _OK, float(v)
        except OverflowError:
            return NON_FINITE, "which is too large to be a finite number"
    if isinstance(v, (float, np.floating)):
        return (_OK, float(v)) if math.isfinite(v) else (NON_FINITE, "which is not finite")
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return WRONG_TYPE, ""
        return (_COERCE, x) if math.isfinite(x) else (NON_FINITE, "which is not finite")
    return WRONG_TYPE, ""


def _parse_numeric(plan: _Plan, vals: Sequence[Any], batch: _Batch) -> _Column:
    column, given = _slow(plan, vals, batch, _parse_numeric_value, math.nan, np.float64)
    _check_range(plan, column, given, batch)
    return column


def _parse_integer_value(plan: _Plan, v: Any) -> _Parsed:
    flag: int | str = _OK
    if isinstance(v, (bool, np.bool_)):
        return WRONG_TYPE, ""
    if isinstance(v, str):
        try:
            v = int(v)
        except ValueError:
            try:
                v = float(v)
            except ValueError:
                return WRONG_TYPE, ""
        flag = _COERCE
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return NON_FINITE, "which is not finite"
        if not float(v).is_integer():
            return WRONG_TYPE, " (not a whole number)"
        v = int(v)
    if not isinstance(v, (int, np.integer)):
        return WRONG_TYPE, ""
    lo, hi = plan.int_bounds
    if not lo <= int(v) <= hi:
        return WRONG_TYPE, f" (outside what {plan.spec.dtype} can hold)"
    return flag, int(v)


def _parse_integer(plan: _Plan, vals: Sequence[Any], batch: _Batch) -> _Column:
    given: np.ndarray | None = None
    column = None
    if set(map(type, vals)) <= _INTISH:
        try:
            values = np.fromiter(vals, dtype=np.int64, count=len(vals))
        except (OverflowError, TypeError, ValueError):
            pass
        else:
            lo, hi = plan.int_bounds
            if not len(values) or (values.min() >= lo and values.max() <= hi):
                column = _Column(values, None)
    if column is None:
        column, given = _slow(plan, vals, batch, _parse_integer_value, 0, np.int64)
    _check_range(plan, column, given, batch)
    return column


def _parse_boolean_value(plan: _Plan, v: Any) -> _Parsed:
    if isinstance(v, (bool, np.bool_)):
        return _OK, bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
        return _COERCE, bool(v)  # 1 is not true in JSON: say so, as for "true"
    if isinstance(v, str):
        low = v.strip().lower()
        if low in _TRUE or low in _FALSE:
            return _COERCE, low in _TRUE
    return WRONG_TYPE, ""


def _parse_boolean(plan: _Plan, vals: Sequence[Any], batch: _Batch) -> _Column:
    if set(map(type, vals)) <= {bool}:
        return _Column(np.fromiter(vals, dtype=bool, count=len(vals)), None)
    return _slow(plan, vals, batch, _parse_boolean_value, False, bool)[0]


def _valid_text(s: str) -> bool:
    """Lone surrogates cannot be stored as UTF-8 (pandas' string dtype would raise)."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_text_value(plan: _Plan, v: Any) -> _Parsed:
    if isinstance(v, str):
        return (_OK, v) if _valid_text(v) else (WRONG_TYPE, " (not valid Unicode)")
    if isinstance(v, (bool, int, float, np.bool_, np.number)):
        try:
            return _COERCE, str(v.item() if isinstance(v, np.generic) else v)
        except ValueError:  # an int too long to print
            return WRONG_TYPE, ""
    return WRONG_TYPE, ""


def _parse_category_value(plan: _Plan, v: Any) -> _Parsed:
    if plan.cat_mode == "str":
        return _parse_text_value(plan, v)
    if isinstance(v, np.generic):
        v = v.item()
    if plan.cat_mode == "num":
        if isinstance(v, bool):
            return WRONG_TYPE, ""
        if isinstance(v, str):
            flag, x = _parse_numeric_value(plan, v)
            if flag != _COERCE:
                return flag, x
            whole = x.is_integer() and int(x) in (plan.catset or ())
            return _COERCE, int(x) if whole else x
        if isinstance(v, (int, float)):
            return (_OK, v) if math.isfinite(v) else (NON_FINITE, "which is not finite")
        return WRONG_TYPE, ""
    if isinstance(v, str):
        return _parse_text_value(plan, v)
    if isinstance(v, bool):  # True == 1 in Python; match a bool only to a bool category
        bools = any(isinstance(c, bool) for c in plan.spec.categories or ())
        return (_OK, v) if bools else (WRONG_TYPE, "")
    if isinstance(v, (int, float)):
        return _OK, v
    return WRONG_TYPE, ""


def _parse_text(plan: _Plan, vals: Sequence[Any], batch: _Batch) -> _Column:
    if set(map(type, vals)) <= {str} and all(map(_valid_text, vals)):
        values = np.empty(len(vals), dtype=object)
        values[:] = vals
        return _Column(values, None)
    return _slow(plan, vals, batch, _parse_text_value, None, object)[0]


def _parse_categorical(plan: _Plan, vals: Sequence[Any], batch: _Batch) -> _Column:
    catset = plan.catset
    given: np.ndarray | None = None
    if plan.cat_mode == "str" and set(map(type, vals)) <= {str}:
        values = np.empty(len(vals), dtype=object)
        values[:] = vals
        column = _Column(values, None)
    else:
        column, given = _slow(plan, vals, batch, _parse_category_value, None, object)
    if catset is None:
        return column
    values = column.values
    unseen = [i for i, v in enumerate(values.tolist()) if v not in catset]
    spec = plan.spec
    for i in unseen:
        v = values[i]
        if given is not None and not given[i]:
            continue  # a null, an imputed value or a bad value: reported already
        if plan.cat_mode == "str" and given is None and not _valid_text(v):
            why = f"field {spec.name!r} expects {plan.expects}, got {_show(v)} (not valid Unicode)"
            batch.field(plan, i, WRONG_TYPE, why)
            continue
        seen = f"field {spec.name!r} got {_show(v)}, a category not seen in training"
        if spec.on_unseen == "reject":
            batch.field(plan, i, UNSEEN_CATEGORY, seen)
        elif spec.on_unseen == "impute" and plan.impute is not None:
            values[i] = plan.impute
            batch.field(
                plan,
                i,
                UNSEEN_CATEGORY,
                f"{seen}; replaced by the most common category {_show(plan.impute)}",
            )
        else:
            batch.field(plan, i, UNSEEN_CATEGORY, f"{seen}; passed to the model as it is")
    return column


def _parse_datetime_value(plan: _Plan, v: Any) -> _Parsed:
    flag: int | str = _OK
    if isinstance(v, str):
        if not _ISO_PREFIX.match(v):
            return WRONG_TYPE, ""
        try:
            ts = pd.to_datetime(v, format="ISO8601")
        except (ValueError, OverflowError):
            return WRONG_TYPE, ""
    elif isinstance(v, (datetime, date, np.datetime64)):
        try:
            ts = pd.Timestamp(v)
        except (ValueError, OverflowError):
            return WRONG_TYPE, " (outside the representable range)"
    else:
        return WRONG_TYPE, ""
    if plan.tz is None and ts.tz is not None:
        ts, flag = ts.tz_convert("UTC").tz_localize(None), _COERCE
    elif plan.tz is not None and ts.tz is None:
        ts, flag = ts.tz_localize(plan.tz), _COERCE
    elif plan.tz is not None:
        ts = ts.tz_convert(plan.tz)
    try:
        return flag, int(ts.as_unit(plan.unit).asm8.view(np.int64))
    except (ValueError, OverflowError):
        return WRONG_TYPE, " (outside the representable range)"


def _parse_datetime(plan: _Plan, vals: Sequence[Any], batch: _Batch) -> _Column:
    given: np.ndarray | None = None
    types = set(map(type, vals))
    column = _naive_iso(plan, vals) if types == {str} and plan.tz is None else None
    strings = types <= {str} and all(_ISO_PREFIX.match(v) for v in vals)
    if column is None and vals and (strings or types <= {pd.Timestamp, datetime}):
        try:
            array = np.array(vals, dtype=object)
            parsed = pd.to_datetime(array, format="ISO8601" if strings else None, cache=False)
            index = pd.DatetimeIndex(parsed)
            if (index.tz is None) == (plan.tz is None) and not index.hasnans:
                if index.tz is not None:
                    index = index.tz_convert("UTC").tz_localize(None)
                column = _Column(index.as_unit(plan.unit).asi8.copy(), None)
        except (ValueError, OverflowError, TypeError):
            pass  # mixed time zones, out of range, ...: the slow path says which value
    if column is None:
        column, given = _slow(plan, vals, batch, _parse_datetime_value, _NAT, np.int64)
    _check_range(plan, column, given, batch)
    return column


_NAIVE_ISO = {
    unit: re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}}{fraction})?)?")
    for unit, fraction in [
        ("s", ""),
        ("ms", r"(?:\.\d{1,3})?"),
        ("us", r"(?:\.\d{1,6})?"),
        ("ns", r"(?:\.\d{1,9})?"),
    ]
}


def _naive_iso(plan: _Plan, vals: Sequence[str]) -> _Column | None:
    """Plain ISO strings parsed by numpy: some 30 times faster than pandas.

    Only strings that numpy and pandas read identically qualify (no offset, no more
    digits than the unit holds); anything else is left to the pandas paths.
    """
    pattern = _NAIVE_ISO.get(plan.unit)
    if pattern is None or not all(map(pattern.fullmatch, vals)):
        return None
    try:
        ticks = np.array(vals, dtype=f"M8[{plan.unit}]").view(np.int64)
        seconds = np.array(vals, dtype="M8[s]").view(np.int64)
    except ValueError:  # e.g. day 31 of April
        return None
    per_second = 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}[plan.unit]
    if not np.array_equal(ticks // per_second, seconds):
        return None  # numpy wraps silently past the unit's range; pandas explains it
    return _Column(ticks, None)


def _extract(plans: list[_Plan], dicts: list[Mapping[Any, Any]]) -> list[Sequence[Any]]:
    """Each field's values across the records, ``_MISSING`` where a key is absent."""
    if not plans:
        return []
    names = [p.spec.name for p in plans]
    if dicts and set(map(type, dicts)) == {dict}:
        # One C-level pass when every key is present (a dict subclass might have
        # __missing__, so only plain dicts take it).
        try:
            rows = list(map(itemgetter(*names), dicts))
        except KeyError:
            pass
        else:
            return [rows] if len(names) == 1 else list(zip(*rows, strict=True))
    return [[r.get(name, _MISSING) for r in dicts] for name in names]


def _plain_floats(vals: Sequence[Any]) -> np.ndarray | None:
    """The values as float64 when all are plain numbers, else None (take the slow path)."""
    if not set(map(type, vals)) <= _FLOATISH:
        return None
    try:
        return np.fromiter(vals, dtype=np.float64, count=len(vals))
    except (OverflowError, TypeError, ValueError):
        return None


def _check_clean(
    plans: list[_Plan], clean: dict[int, np.ndarray], batch: _Batch
) -> dict[int, _Column]:
    """Finite clean columns become parsed columns, with out-of-range warnings; the others
    are left for the value-by-value path to explain."""
    order = list(clean)
    block = np.column_stack([clean[j] for j in order])
    finite = np.isfinite(block).all(axis=0)
    lo = np.array([-np.inf if plans[j].lo is None else plans[j].lo for j in order])
    hi = np.array([np.inf if plans[j].hi is None else plans[j].hi for j in order])
    out = ((block < lo) | (block > hi)) & finite
    if out.any():
        for i, c in np.argwhere(out).tolist():
            _warn_range(plans[order[c]], i, float(block[i, c]), batch)
    return {j: _Column(clean[j], None) for c, j in enumerate(order) if finite[c]}


_PARSERS: dict[str, Callable[[_Plan, Sequence[Any], _Batch], _Column]] = {
    "numeric": _parse_numeric,
    "integer": _parse_integer,
    "boolean": _parse_boolean,
    "categorical": _parse_categorical,
    "datetime": _parse_datetime,
    "text": _parse_text,
}


# --- building the model frame ------------------------------------------------------------


def _build(plan: _Plan, column: _Column, keep: np.ndarray) -> Any:
    """The valid rows of one parsed column, in the field's training dtype."""
    whole = len(keep) == len(column.values)  # the usual case: every record valid
    values = column.values if whole else column.values[keep]
    null = None if column.null is None else column.null if whole else column.null[keep]
    if null is not None and not null.any():
        null = None
    kind, dtype = plan.spec.kind, plan.dtype
    if kind == "datetime":
        stamps = values.view(f"M8[{plan.unit}]")  # nulls are NaT already
        if plan.tz is None:
            return stamps
        return pd.DatetimeIndex(stamps).tz_localize("UTC").tz_convert(plan.tz).array
    if kind in ("categorical", "text"):  # nulls are None already
        if isinstance(dtype, pd.CategoricalDtype):
            # Exactly the training categories, so the codes the model learned stay put and a
            # row's frame never depends on its batch; an unseen value becomes NaN here (all a
            # category column can hold) while ContractResult.raw keeps it for the log.
            categories = dtype.categories
            codes = categories.get_indexer(values) if len(categories) else np.full(len(values), -1)
            return pd.Categorical.from_codes(codes, dtype=dtype)
        if _is_object(dtype):
            values = values.copy()
            if null is not None:
                values[null] = plan.null
            return values
        return pd.array(values, dtype=dtype)
    if _is_extension(dtype):
        array = pd.array(values, dtype=dtype)
        if null is not None:
            array[null] = pd.NA
        return array
    if _is_object(dtype) or (plan.passes_nulls and kind == "boolean"):
        # a numpy bool column cannot hold a null: a field that passes nulls is always object
        objects = values.astype(object)
        if null is not None:
            objects[null] = plan.null
        return objects
    if plan.passes_nulls and kind == "integer":
        # likewise a numpy int column: a field that passes nulls is always float64, decided
        # by the contract and never by the batch, so replaying one row gives the same frame
        floats = values.astype(np.float64)
        if null is not None:
            floats[null] = np.nan
        return floats
    return values.astype(dtype, copy=False)  # numeric: NaN already marks passed nulls


def _assemble(names: pd.Index, columns: list[Any], rows: int) -> pd.DataFrame:
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(rows))
    if all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in columns):
        # one 2-D block is several times cheaper than a dict of 1-D columns
        return pd.DataFrame(np.column_stack(columns), columns=names, copy=False)
    if _FROM_ARRAYS is not None:
        # pandas' own constructor for ready-made columns: a quarter of the dict path's cost
        # on the request hot path; the public path below stays as the fallback. Without
        # verify_integrity (every column is already a 1-D array of the right length and
        # dtype), an object column stays object: pandas 3 would infer its strings as str,
        # so the model would see a dtype it was not trained with, and one that depends on
        # the batch (a column of nulls alone stays object).
        frame = _FROM_ARRAYS(
            columns, columns=names, index=pd.RangeIndex(rows), verify_integrity=False
        )
        return cast(pd.DataFrame, frame)
    return pd.DataFrame(
        {
            name: pd.Series(c, dtype=object, copy=False) if _is_object(c.dtype) else c
            for name, c in zip(names, columns, strict=True)
        },
        copy=False,
    )


_FROM_ARRAYS = getattr(pd.DataFrame, "_from_arrays", None)


def _column_to_json(column: Any) -> list[Any]:
    """One frame column as JSON values that parse back to the very same column."""
    values = column.to_numpy() if isinstance(column, pd.Series) else column
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiubM":
        if values.dtype.kind == "M":
            # exact and vectorised; whole seconds print without a fraction
            unit = np.datetime_data(values.dtype)[0]
            ticks = values.view(np.int64)
            per_second = 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}.get(unit, 0)
            whole = (
                unit in ("s", "ms", "us", "ns")
                and not (ticks[~np.isnat(values)] % per_second).any()
            )
            text = np.datetime_as_string(values, unit=cast(Any, "s" if whole else unit))
            return [None if t == "NaT" else t for t in text.tolist()]
        out = values.tolist()
        if values.dtype.kind == "f":
            for i in np.flatnonzero(np.isnan(values)).tolist():
                out[i] = None
        return cast(list[Any], out)
    return [_jsonable(v) for v in np.asarray(values, dtype=object).tolist()]
