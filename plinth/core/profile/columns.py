"""How a profile reads a column: which contract kinds it bins, and each value as a float.

Numeric kinds (booleans as 0/1, datetimes as epoch seconds) become float64 with anything
unreadable as NaN, so junk in live traffic counts as null instead of failing a request.
Categories are kept as JSON-native values so a profile round-trips through JSON exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from plinth.errors import InvalidProfileOutputsError

#: Column kinds a profile understands (the contract's field types); ``text`` is skipped.
NUMERIC_KINDS = frozenset({"numeric", "integer", "boolean", "datetime"})
CATEGORICAL_KINDS = frozenset({"categorical"})
SKIPPED_KINDS = frozenset({"text"})


def json_scalar(value: Any) -> Any:
    """A category as a JSON-native value, so profiles round-trip through JSON exactly."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def datetime_seconds(series: pd.Series) -> np.ndarray:
    """Epoch seconds (UTC); unparseable values and NaT become NaN."""
    if not (
        isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series)
    ):
        series = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps: np.ndarray = series.to_numpy(dtype="datetime64[us]")
    seconds = stamps.astype(np.int64) / 1e6
    seconds[np.isnat(stamps)] = np.nan
    return seconds


def numeric_column(series: pd.Series, source_kind: str) -> np.ndarray:
    """A column as float64 (booleans 0/1, datetimes epoch seconds); junk becomes NaN."""
    if source_kind == "datetime":
        return datetime_seconds(series)
    try:
        values: np.ndarray = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values
    except (TypeError, ValueError):
        coerced = pd.to_numeric(series.astype(object), errors="coerce")
        return np.asarray(coerced, dtype=np.float64)


def object_column_as_float(column: np.ndarray) -> np.ndarray:
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError):
        return numeric_column(pd.Series(column, dtype=object), "numeric")


def one_dimensional(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidProfileOutputsError(
            f"{what} must be one value per row, got an array of shape {array.shape}."
        )
    return array


def frame_blocks(frame: pd.DataFrame) -> list[tuple[Any, np.ndarray]]:
    """The frame's storage blocks: (values, column positions), without copying.

    A block holds one or more columns of one dtype (2-D, one row per column) or a single
    extension array. Reading blocks costs a microsecond; pulling 30 columns out as Series
    costs ~100 times that, more than the arithmetic on a small batch. Falls back to plain
    column access should pandas ever change its internals.
    """
    try:
        return [(b.values, b.mgr_locs.as_array) for b in frame._mgr.blocks]
    except AttributeError:  # pragma: no cover - pandas internals changed
        return [(frame.iloc[:, i].array, np.asarray([i])) for i in range(frame.shape[1])]
