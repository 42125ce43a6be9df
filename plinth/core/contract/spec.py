"""What a contract says about one field: kind, dtype, nullability, range, categories, policies.

The stable problem and warning codes a contract reports live with its errors, in
``plinth.errors.contract``: callers and dashboards match on them.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from plinth.errors import InvalidContractSpecError

if TYPE_CHECKING:
    from plinth.core.contract.application import _Plan


FieldKind = Literal["numeric", "integer", "boolean", "categorical", "datetime", "text"]
NullPolicy = Literal["impute", "pass", "reject"]
UnseenPolicy = Literal["pass", "impute", "reject"]
NullMarker = Literal["nan", "none"]

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
_NULL_MARKERS = get_args(NullMarker)
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
    # impute = training median (numbers) / mode (others); pass = the model handles it
    # (registration probes the model and picks pass when it does); reject = invalid record
    on_null: NullPolicy = "impute"
    impute: Any = None  # JSON-ready value used for imputation
    minimum: float | str | None = None  # observed range (datetime: ISO string)
    maximum: float | str | None = None
    categories: list[Any] | None = None  # observed category set (categorical only)
    on_unseen: UnseenPolicy = "pass"  # pass through, replace by the mode, or reject
    # How a passed null reaches the model in an ``object`` column: as NaN (pandas' marker,
    # what read_csv gives) or as None, whichever the training table held. A pipeline treats
    # the two differently (its imputer sees NaN; an encoder may have learned None as a
    # category), so the model gets the one it was trained with.
    null_as: NullMarker = "nan"

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
        if self.null_as not in _NULL_MARKERS:
            bad.append(f"null_as must be one of {', '.join(_NULL_MARKERS)}")
        if self.categories is not None and not isinstance(self.categories, list):
            bad.append("categories must be a list or null")
        if bad:
            raise InvalidContractSpecError(self.name, "; ".join(bad))

    @property
    def null_policy(self) -> NullPolicy:
        """``on_null`` as applied: ``impute`` with no training value to impute passes."""
        return "pass" if self.on_null == "impute" and self.impute is None else self.on_null

    def null_handling(self) -> dict[str, str]:
        """What a null value and an absent key really get, in words: ``reject``,
        ``impute <value>`` or ``pass to model``.

        A field that is not nullable rejects nulls (and, if required, absent keys)
        whatever ``on_null`` says; this is what ``plinth show`` prints.
        """
        policy = self.null_policy
        accepted = (
            f"impute {_show(self.impute)}"
            if policy == "impute"
            else "pass to model"
            if policy == "pass"
            else "reject"
        )
        return {
            "null": accepted if self.nullable else "reject",
            "missing": accepted if self.nullable or not self.required else "reject",
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back unchanged."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldSpec:
        """Read a (possibly hand-edited) field; unknown keys are an error, not a silent typo."""
        if not isinstance(d, Mapping):
            raise InvalidContractSpecError(
                None, f"a field must be an object, not {type(d).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise InvalidContractSpecError(
                d.get("name"), f"unknown keys {unknown}; allowed: {sorted(known)}"
            )
        missing = [k for k in ("name", "kind", "dtype") if k not in d]
        if missing:
            raise InvalidContractSpecError(d.get("name"), f"missing keys {missing}")
        categories = d.get("categories")
        copied = list(categories) if isinstance(categories, list) else categories
        return cls(**{**d, "categories": copied})


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
