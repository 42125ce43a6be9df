"""Reading the tables users hand us (CSV or Parquet) with errors that say what to fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from plinth.errors import (
    DataFileNotFoundError,
    ExamplesError,
    UnreadableDataError,
    UnsupportedDataFormatError,
)

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: Path) -> pd.DataFrame:
    """Load a CSV or Parquet file into a DataFrame."""
    if not path.is_file():
        raise DataFileNotFoundError(f"Data file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:
        raise UnreadableDataError(
            f"Could not read {path.name}: {type(exc).__name__}: {exc}"
        ) from exc
    raise UnsupportedDataFormatError(
        f"Unsupported data file type {suffix or '(none)'} for {path.name}.",
        hint=f"Use one of: {', '.join(SUPPORTED_SUFFIXES)}.",
    )


def read_examples(path: Path) -> pd.DataFrame:
    """Example inputs: JSON Lines (one object per line) or a CSV / Parquet table."""
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return read_table(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"Data file {path} does not exist.")
    rows: list[dict[str, object]] = []
    bad: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (
            f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        )
        raise ExamplesError(f"{path.name}: line(s) {shown} are not JSON objects.")
    if not rows:
        raise ExamplesError(f"{path.name} holds no examples.")
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as CSV or Parquet, chosen by the file suffix."""
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a DataFrame (values, column names and dtypes) for lineage."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
