"""The contract of one model version: its fields, serialised with the version, applied per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.contract.application import (
    _PARSERS,
    ContractResult,
    _assemble,
    _Batch,
    _build,
    _check_clean,
    _Column,
    _extract,
    _parse_numeric,
    _plain_floats,
    _Plan,
    _warn_range,
)
from plinth.core.contract.spec import (
    _FLOATISH,
    MAX_EXTRA_WARNINGS,
    FieldSpec,
    _a,
    _show_key,
)
from plinth.errors import ContractViolationError, InvalidContractSpecError
from plinth.errors.contract import EXTRA_FIELD, NOT_AN_OBJECT


@dataclass
class Contract:
    """The input contract of one model version: an ordered list of fields."""

    fields: list[FieldSpec]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidContractSpecError(
                dupes[0], f"field names must be unique; repeated: {dupes}"
            )
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
            raise InvalidContractSpecError(
                None, "a contract must be an object with a 'fields' list"
            )
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
        """``apply``, but any invalid record raises one error listing every problem."""
        result = self.apply(records)
        if result.n_invalid:
            n = len(result.problems)
            raise ContractViolationError(
                result.all_problems(),
                message=f"{result.n_invalid} of {n} record{'s' if n != 1 else ''} broke the "
                "input contract",
                hint="fix the listed problems (each names its record and field) and resend",
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
                f.null_as,
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
