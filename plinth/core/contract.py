"""The input data contract: what a model was trained on, checked and repaired per batch.

A :class:`Contract` is inferred from the training features (:func:`infer_contract`), stored
as JSON with the model version, edited by people, and applied to every request batch.
``apply`` never raises: each record either becomes one row of the model frame or comes back
with every problem listed, and every repair is reported as a warning. Checks run column by
column: a column of clean numbers costs one ``np.fromiter`` and two comparisons, and only an
odd column falls back to parsing value by value.

>>> import pandas as pd
>>> contract = infer_contract(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
>>> result = contract.apply([{"x": "2.5", "c": "a"}, {"x": [1], "c": "z"}])
>>> result.features()
[{'x': 2.5, 'c': 'a'}]
>>> [p.code for p in result.problems[1]], [w.code for w in result.warnings[0]]
(['contract.wrong_type'], ['contract.coerced'])
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from itertools import chain
from operator import itemgetter
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
    pandas_dtype,
)

from plinth.errors import ContractError, Problem

FieldKind = Literal["numeric", "integer", "boolean", "categorical", "datetime", "text"]
NullPolicy = Literal["impute", "pass", "reject"]
UnseenPolicy = Literal["pass", "impute", "reject"]

# Stable codes: callers and dashboards match on them.
NOT_AN_OBJECT = "contract.not_an_object"
MISSING_FIELD = "contract.missing_field"
NULL_VALUE = "contract.null_value"
WRONG_TYPE = "contract.wrong_type"
NON_FINITE = "contract.non_finite"
UNSEEN_CATEGORY = "contract.unseen_category"
IMPUTED = "contract.imputed"
COERCED = "contract.coerced"
OUT_OF_RANGE = "contract.out_of_range"
EXTRA_FIELD = "contract.extra_field"
INVALID = "contract.invalid"
INVALID_SPEC = "contract.invalid_spec"
INVALID_TRAINING_DATA = "contract.invalid_training_data"

# A string column is categorical when it has at most 50 distinct values, or when its
# distinct values are at most 5 % of its non-null rows (capped at 1000, so a stored
# contract stays small); otherwise it is free text.
CATEGORICAL_MAX_DISTINCT = 50
CATEGORICAL_MAX_SHARE = 0.05
CATEGORICAL_HARD_CAP = 1000
# Extra keys are reported one warning per key, at most this many per record.
MAX_EXTRA_WARNINGS = 10

_KINDS = get_args(FieldKind)
_NULL_POLICIES = get_args(NullPolicy)
_UNSEEN_POLICIES = get_args(UnseenPolicy)
_ISO_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}")  # keeps "now"/"today" out of the parser
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_FLOATISH = frozenset({float, int, np.float64, np.float32, np.int64, np.int32})
_INTISH = frozenset({int, np.int64, np.int32})
_NAT = np.iinfo(np.int64).min
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 40
_SHOW.maxlist = _SHOW.maxdict = _SHOW.maxtuple = 4
_SHOW.maxlevel = 2


@dataclass
class FieldSpec:
    """What one feature looked like in training, and what to do when a request differs.

    Editable: a :class:`Contract` notices a changed field and recompiles it on the next
    ``apply`` (changing a ``categories`` list in place is not noticed; assign a new list).
    """

    name: str
    kind: FieldKind
    dtype: str  # pandas dtype name seen in training, used to rebuild an identical frame
    required: bool = True  # the key must be present (unless nullable)
    nullable: bool = False  # null / missing allowed -> repaired per on_null
    on_null: NullPolicy = "impute"  # impute = training median (numbers) / mode (others)
    impute: Any = None  # JSON-ready value used for imputation
    minimum: float | str | None = None  # observed range (datetime: ISO string)
    maximum: float | str | None = None
    categories: list[Any] | None = None  # observed category set (categorical only)
    on_unseen: UnseenPolicy = "pass"  # pass through, replace by the mode, or reject

    def __post_init__(self) -> None:
        bad = []
        if not isinstance(self.name, str) or not self.name:
            bad.append(f"name must be a non-empty string, not {_show(self.name)}")
        if self.kind not in _KINDS:
            bad.append(f"kind must be one of {', '.join(_KINDS)}, not {_show(self.kind)}")
        if self.on_null not in _NULL_POLICIES:
            bad.append(f"on_null must be one of {', '.join(_NULL_POLICIES)}")
        if self.on_unseen not in _UNSEEN_POLICIES:
            bad.append(f"on_unseen must be one of {', '.join(_UNSEEN_POLICIES)}")
        if self.categories is not None and not isinstance(self.categories, list):
            bad.append("categories must be a list or null")
        if bad:
            raise _spec_error(self.name, "; ".join(bad))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back unchanged."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldSpec:
        """Read a (possibly hand-edited) field; unknown keys are an error, not a silent typo."""
        if not isinstance(d, Mapping):
            raise _spec_error(None, f"a field must be an object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise _spec_error(d.get("name"), f"unknown keys {unknown}; allowed: {sorted(known)}")
        missing = [k for k in ("name", "kind", "dtype") if k not in d]
        if missing:
            raise _spec_error(d.get("name"), f"missing keys {missing}")
        categories = d.get("categories")
        copied = list(categories) if isinstance(categories, list) else categories
        return cls(**{**d, "categories": copied})


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


@dataclass
class Contract:
    """The input contract of one model version: an ordered list of fields."""

    fields: list[FieldSpec]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _spec_error(dupes[0], f"field names must be unique; repeated: {dupes}")
        self._plans: list[_Plan] = []
        self._plan_key: list[tuple[Any, ...]] = []
        self._columns = pd.Index([])
        # Range bounds when every field is a float64 number (the fast path), else None.
        self._numbers_lo: np.ndarray | None = None
        self._numbers_hi = np.array([])
        self._compiled()  # a bad field fails here, when the contract is loaded

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Contract:
        if not isinstance(d, Mapping) or not isinstance(d.get("fields"), list):
            raise _spec_error(None, "a contract must be an object with a 'fields' list")
        return cls([FieldSpec.from_dict(f) for f in d["fields"]])

    def probe_records(self, n: int = 64) -> list[dict[str, Any]]:
        """``n`` valid records spread over each field's training range (categories in turn).

        Not a sample of the data: a spread of legal values, for checking that two ways of
        calling a model agree before the cheaper one is trusted with traffic.
        """
        columns: dict[str, list[Any]] = {}
        for k, f in enumerate(self.fields):
            spread: list[Any]
            if (
                f.kind in ("numeric", "integer")
                and isinstance(f.minimum, int | float)
                and (isinstance(f.maximum, int | float))
            ):
                values = np.linspace(float(f.minimum), float(f.maximum), n)
                spread = [round(float(v)) if f.kind == "integer" else float(v) for v in values]
            elif f.kind == "boolean":
                spread = [i % 2 == 0 for i in range(n)]
            elif f.kind == "categorical" and f.categories:
                spread = [f.categories[i % len(f.categories)] for i in range(n)]
            else:
                spread = [f.impute] * n
            # Shuffle each column its own way (seeded): a diagonal would be a narrow probe.
            order = np.random.default_rng(k).permutation(n)
            columns[f.name] = [spread[i] for i in order]
        return [{name: col[i] for name, col in columns.items()} for i in range(n)]

    def apply(self, records: Sequence[Any]) -> ContractResult:
        """Check and repair one batch; never raises, whatever the records hold."""
        rows = records if isinstance(records, list) else list(records)
        return self._apply_numbers(rows) or self._apply_general(rows)

    def _apply_numbers(self, rows: list[Any]) -> ContractResult | None:
        """The common request in a handful of C-level calls, or None for the general path.

        Taken when every field is a float64 number and every record is a plain dict with
        exactly the contract's keys, all holding finite ints or floats. It gives the same
        result as the general path (tests compare the two on generated batches); anything
        else — a null, a string, an extra key, NaN — goes the general way.
        """
        plans = self._compiled()
        if self._numbers_lo is None or not rows or set(map(type, rows)) != {dict}:
            return None
        names = self.feature_names
        if set(map(len, rows)) != {len(names)}:  # a key missing or one too many
            return None
        try:
            values = list(map(itemgetter(*names), rows))
        except KeyError:
            return None
        flat = chain.from_iterable(values) if len(names) > 1 else values
        if not set(map(type, flat)) <= _FLOATISH:
            return None
        try:
            block = np.array(values, dtype=np.float64).reshape(len(rows), len(names))
        except (OverflowError, TypeError, ValueError):
            return None
        if not np.isfinite(block).all():
            return None
        batch = _Batch(len(rows), list(range(len(rows))))
        out = (block < self._numbers_lo) | (block > self._numbers_hi)
        if out.any():
            for i, c in np.argwhere(out).tolist():
                _warn_range(plans[c], i, float(block[i, c]), batch)
        frame = pd.DataFrame(block, columns=self._columns, copy=False)
        valid = np.arange(len(rows), dtype=np.int64)
        return ContractResult(frame, valid, batch.problems, batch.warnings, block=block)

    def _apply_general(self, rows: list[Any]) -> ContractResult:
        plans = self._compiled()
        pos = [i for i, r in enumerate(rows) if type(r) is dict or isinstance(r, Mapping)]
        dicts: list[Mapping[Any, Any]] = [rows[i] for i in pos]
        batch = _Batch(len(rows), pos)
        if len(pos) < len(rows):
            for i, r in enumerate(rows):
                if isinstance(r, Mapping):
                    continue
                batch.add(
                    i,
                    True,
                    NOT_AN_OBJECT,
                    None,
                    f"record {i} is {_a(type(r).__name__)}, not a JSON object",
                    "send each record as an object that maps field names to values",
                )
        columns = _extract(plans, dicts)
        parsed: list[_Column | None] = [None] * len(plans)
        clean: dict[int, np.ndarray] = {}  # numeric fields whose values are all plain numbers
        for j, (plan, vals) in enumerate(zip(plans, columns, strict=True)):
            if plan.spec.kind == "numeric":
                floats = _plain_floats(vals)
                if floats is not None:
                    clean[j] = floats
                    continue
            parsed[j] = _PARSERS[plan.spec.kind](plan, vals, batch)
        if clean:
            # Finiteness and range of every clean numeric column in a handful of 2-D calls.
            for j, column in _check_clean(plans, clean, batch).items():
                parsed[j] = column
            for j in set(clean).difference(i for i, c in enumerate(parsed) if c is not None):
                parsed[j] = _parse_numeric(plans[j], columns[j], batch)
        done = [c for c in parsed if c is not None]
        self._flag_extra_keys(dicts, done, batch)

        pos_arr = np.asarray(pos, dtype=np.int64)
        keep = np.flatnonzero(~batch.bad[pos_arr])
        names = self.feature_names
        built = [_build(plan, col, keep) for plan, col in zip(plans, done, strict=True)]
        raw = dict(zip(names, built, strict=True))
        for plan, col in zip(plans, done, strict=True):
            if isinstance(plan.dtype, pd.CategoricalDtype):
                raw[plan.spec.name] = col.values[keep]
        frame = _assemble(self._columns, built, len(keep))
        return ContractResult(frame, pos_arr[keep], batch.problems, batch.warnings, raw)

    def validate_or_raise(self, records: Sequence[Any]) -> ContractResult:
        """``apply``, but any invalid record raises one ContractError listing every problem."""
        result = self.apply(records)
        if result.n_invalid:
            n = len(result.problems)
            raise ContractError(
                f"{result.n_invalid} of {n} record{'s' if n != 1 else ''} broke the input contract",
                code=INVALID,
                hint="fix the listed problems (each names its record and field) and resend",
                status=422,
                problems=result.all_problems(),
            )
        return result

    def frame(self, features: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Rebuild the model frame from logged ``ContractResult.features()``, for exact replay.

        Logged features are already repaired, so they pass the contract unchanged and yield
        a frame identical to the one the model saw.
        """
        return self.validate_or_raise(features).frame

    def _compiled(self) -> list[_Plan]:
        # Compiling costs far more than this fingerprint, so fields stay freely editable.
        key = [
            (
                id(f),
                f.name,
                f.kind,
                f.dtype,
                f.required,
                f.nullable,
                f.on_null,
                f.on_unseen,
                f.impute,
                f.minimum,
                f.maximum,
                id(f.categories),
                len(f.categories or ()),
            )
            for f in self.fields
        ]
        if key != self._plan_key:
            self._plans = [_Plan.compile(f) for f in self.fields]
            self._columns = pd.Index(self.feature_names)  # built once: ~50 us per frame saved
            numbers = all(
                p.spec.kind == "numeric" and p.dtype == np.dtype(np.float64) for p in self._plans
            )
            self._numbers_lo = (
                np.array([-np.inf if p.lo is None else p.lo for p in self._plans], dtype=float)
                if numbers and self._plans
                else None
            )
            self._numbers_hi = np.array(
                [np.inf if p.hi is None else p.hi for p in self._plans], dtype=float
            )
            self._plan_key = key
        return self._plans

    def _flag_extra_keys(
        self, dicts: list[Mapping[Any, Any]], parsed: list[_Column], batch: _Batch
    ) -> None:
        if not dicts:
            return
        present = np.full(len(dicts), len(self.fields), dtype=np.int64)
        for column in parsed:
            if column.missing is not None:
                present -= column.missing
        sizes = np.fromiter(map(len, dicts), dtype=np.int64, count=len(dicts))
        names = set(self.feature_names)
        for i in np.flatnonzero(sizes > present).tolist():
            extra = [k for k in dicts[i] if k not in names]
            for k in extra[:MAX_EXTRA_WARNINGS]:
                batch.add(
                    batch.pos[i],
                    False,
                    EXTRA_FIELD,
                    _show_key(k),
                    f"field {_show_key(k)!r} is not in the contract and was ignored",
                    "remove it, or register a model version whose contract includes it",
                )
            if len(extra) > MAX_EXTRA_WARNINGS:
                batch.add(
                    batch.pos[i],
                    False,
                    EXTRA_FIELD,
                    None,
                    f"{len(extra) - MAX_EXTRA_WARNINGS} more fields not in the contract were "
                    "ignored",
                    "send only the fields the contract names",
                )


def infer_contract(frame: pd.DataFrame) -> Contract:
    """Infer a contract from the training features (the caller drops the target)."""
    if not isinstance(frame, pd.DataFrame):
        raise ContractError(
            f"training features must be a pandas DataFrame, not {type(frame).__name__}",
            code=INVALID_TRAINING_DATA,
            hint="pass the training table as a DataFrame with one named column per feature",
            status=400,
        )
    bad = [c for c in frame.columns if not isinstance(c, str) or not c]
    if bad or frame.columns.has_duplicates:
        raise ContractError(
            "training columns must have unique, non-empty string names",
            code=INVALID_TRAINING_DATA,
            hint="rename the columns, e.g. frame.columns = [f'x{i}' for i in ...]",
            status=400,
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
    raise ContractError(
        f"column {name!r} has dtype {dtype}, which a contract cannot describe",
        code=INVALID_TRAINING_DATA,
        hint="convert it to numbers, booleans, strings or datetime64 "
        "(e.g. pd.to_datetime, .astype(str)) before registering",
        status=400,
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


def _mode(nonnull: pd.Series) -> Any:
    if not len(nonnull):
        return None
    counts = nonnull.value_counts(sort=False)
    top = counts[counts == counts.max()].index.tolist()
    return min((_jsonable(v) for v in top), key=_sort_key)  # ties: the smallest, stable


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
            raise _spec_error(spec.name, f"unknown dtype {spec.dtype!r}: {exc}") from exc
        kind = spec.kind
        if not _DTYPE_OK[kind](dtype):
            raise _spec_error(spec.name, f"dtype {spec.dtype} cannot hold a {kind} field")
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
            raise _spec_error(spec.name, f"impute/minimum/maximum do not fit: {exc}") from exc
        cats = spec.categories if kind == "categorical" else None
        catset = frozenset(cats) if cats is not None else None
        if cats is None or all(isinstance(c, str) for c in cats):
            cat_mode = "str"
        elif all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cats):
            cat_mode = "num"
        else:
            cat_mode = "any"
        expects, hint = _describe(spec, cats)
        on_null = "pass" if spec.on_null == "impute" and impute is None else spec.on_null
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
        return _OK, bool(v)
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
                values[null] = np.nan
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
            objects[null] = np.nan
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
        # on the request hot path; the public path below stays as the fallback
        return cast(pd.DataFrame, _FROM_ARRAYS(columns, columns=names, index=pd.RangeIndex(rows)))
    return pd.DataFrame(dict(zip(names, columns, strict=True)), copy=False)


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


# --- small helpers -----------------------------------------------------------------------


def _jsonable(v: Any, plan: _Plan | None = None) -> Any:
    """A numpy / pandas scalar as the plain JSON value a caller would send."""
    if plan is not None and plan.spec.kind == "datetime" and isinstance(v, (int, np.integer)):
        if int(v) == _NAT:
            return None
        ts = pd.Timestamp(int(v), unit=plan.unit)
        return _iso(ts.tz_localize("UTC").tz_convert(plan.tz) if plan.tz is not None else ts)
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (pd.Timestamp, datetime)):
        return _iso(v)
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else _iso(pd.Timestamp(v))
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _iso(ts: Any) -> str:
    return str(pd.Timestamp(ts).isoformat())


def _sort_key(v: Any) -> tuple[str, Any]:
    # numbers sort together (ints and floats compare), then bools, then strings
    group = "0" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
    return group, v


def _show(v: Any) -> str:
    """A short, safe rendering of any value for a message (never raises)."""
    try:
        return _SHOW.repr(v)
    except Exception:  # e.g. an int with more digits than Python will print
        return f"<{type(v).__name__}>"


def _show_key(k: Any) -> str:
    return k if isinstance(k, str) else _show(k)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _spec_error(name: Any, reason: str) -> ContractError:
    where = f"field {name!r}: " if name else ""
    return ContractError(
        f"invalid contract: {where}{reason}",
        code=INVALID_SPEC,
        hint="fix the contract JSON (see docs/contract.md) and load it again",
        status=400,
    )
