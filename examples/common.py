"""What both examples share: write the split and the model once, register from the files."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as sio

import plinth
from plinth.store import VersionRecord

ExampleFiles = tuple[Path, Path, Path]


def build_once(
    workdir: Path, stem: str, make: Callable[[], tuple[Any, pd.DataFrame, pd.DataFrame]]
) -> ExampleFiles:
    """Write ``<stem>.skops`` and its train/holdout CSVs unless they already exist.

    Reusing the files keeps the artifact bytes identical, so a second ``make demo``
    finds the same versions instead of registering new ones.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    files = (
        workdir / f"{stem}.skops",
        workdir / f"{stem}_train.csv",
        workdir / f"{stem}_holdout.csv",
    )
    if all(path.exists() for path in files):
        return files
    model, train, holdout = make()
    train.to_csv(files[1], index=False)
    holdout.to_csv(files[2], index=False)
    sio.dump(model, files[0])
    return files


def register(files: ExampleFiles, name: str, target: str) -> VersionRecord:
    model_path, train_path, holdout_path = files
    return plinth.register(
        model_path,
        name=name,
        train=train_path,
        holdout=holdout_path,
        target=target,
        tags={"example": name},
    )


def main(doc: str | None, build: Callable[[Path], ExampleFiles], name: str, target: str) -> None:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--workdir", type=Path, default=Path(".plinth/examples"))
    args = parser.parse_args()
    record = register(build(args.workdir), name, target)
    metrics = ", ".join(
        f"{k}={v:.3g}" for k, v in record.metadata["metrics"].items() if isinstance(v, float)
    )
    print(f"registered {record.ref} ({metrics})")
