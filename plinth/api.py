"""The Python entry points: ``plinth.register`` and ``plinth.open_registry``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from plinth.config.settings import Settings
from plinth.runtime import Runtime
from plinth.services.datasets import file_sha256, read_table
from plinth.services.registry.versions import Registry
from plinth.store import VersionRecord


@contextmanager
def open_registry(settings: Settings | None = None) -> Iterator[Registry]:
    """A registry over the configured store, closed on exit."""
    with Runtime.open(settings) as runtime:
        yield runtime.registry


def register(
    model: Any,
    *,
    name: str,
    train: pd.DataFrame | str | Path,
    target: str,
    holdout: pd.DataFrame | str | Path | None = None,
    task: str | None = None,
    trust_pickle: bool = False,
    trust_types: list[str] | None = None,
    tags: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> VersionRecord:
    """Register a fitted model (object or file path) as the next version of ``name``.

    ``train`` is the table the model was trained on, target column included: it sets the
    input contract and the reference profile. ``holdout`` (optional) gives the metrics.
    """
    train_sha = None
    if not isinstance(train, pd.DataFrame):
        train_sha = file_sha256(Path(train))
        train = read_table(Path(train))
    if holdout is not None and not isinstance(holdout, pd.DataFrame):
        holdout = read_table(Path(holdout))
    with open_registry(settings) as registry:
        return registry.register(
            model,
            name=name,
            train=train,
            target=target,
            holdout=holdout,
            task=task,
            trust_pickle=trust_pickle,
            trust_types=trust_types,
            tags=tags,
            train_sha256=train_sha,
        )
