"""Evaluation before rollout: run a version over labelled examples and say how it did.

Built for remote models (a new prompt is a new version: does it answer better, within the
schema, at what cost?) and usable for any version. Each example is scored on its own, as
serving scores one request, at most ``concurrency`` at a time: the input contract first,
then the model (a remote model's retries, schema validation and re-ask included). Nothing
is written to the prediction log: an evaluation is not traffic.

The score of a row is exact match of the prediction with the label, or a user's scorer
``module:function`` called as ``scorer(predicted, expected)`` returning a number in [0, 1]
(e.g. partial credit for a near class, a tolerance for a regressor).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from plinth.errors import ExamplesError, PlinthError, Problem
from plinth.errors.registry import MISSING_FEATURE
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.scoring import answer_rows, contract_error
from plinth.store import Store

Scorer = Callable[[Any, Any], float]


@dataclass
class Evaluation:
    """How one version did on a labelled dataset."""

    name: str
    version: int
    rows: int
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error code -> rows
    score: float | None = None  # mean score over the answered rows
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p95, max
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    reasks: int = 0
    predictions: list[Any] = field(default_factory=list)  # per row; None when it failed

    @property
    def valid_share(self) -> float:
        """Share of rows answered within the output schema and contract."""
        return self.answered / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "rows": self.rows,
            "answered": self.answered,
            "valid_share": self.valid_share,
            "errors": dict(self.errors),
            "score": self.score,
            "latency_ms": dict(self.latency_ms),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "reasks": self.reasks,
        }


def load_scorer(reference: str) -> Scorer:
    """``module:function`` → the function; the current directory is importable, as it is for
    ``python -m``, so a scorer can live beside the data it judges."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ExamplesError(
            f"--scorer {reference!r} is not module:function.",
            hint="e.g. --scorer my_scorers:partial_credit, with my_scorers.py importable.",
        )
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ExamplesError(f"Cannot load the scorer {reference!r}: {exc}.") from exc
    if not callable(found):
        raise ExamplesError(f"The scorer {reference!r} is not a function.")
    scorer: Scorer = found
    return scorer


def evaluate(
    store: Store,
    registry: Registry,
    name: str,
    version: int,
    dataset: pd.DataFrame,
    *,
    label: str = "label",
    scorer: Scorer | None = None,
    concurrency: int = 8,
) -> Evaluation:
    """Run ``name:version`` over ``dataset`` (input fields plus the ``label`` column)."""
    if label not in dataset.columns:
        raise ExamplesError(
            f"The dataset has no label column {label!r}.",
            problems=[Problem(MISSING_FEATURE, f"column {label!r} is missing", field=label)],
            hint=f"Pass --label with one of: {', '.join(map(str, dataset.columns[:20]))}.",
        )
    model = registry.load(store.get_version(name, version))
    try:
        records = [
            {k: _plain(v) for k, v in row.items() if k != label}
            for row in dataset.astype(object).to_dict(orient="records")
        ]
        expected = [_plain(v) for v in dataset[label].astype(object).tolist()]
        with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="plinth-eval") as pool:
            outcomes = list(pool.map(lambda r: _one(model, r), records))
    finally:
        model.flavor.close()
    return _summarise(name, version, outcomes, expected, scorer or _exact)


@dataclass
class _Outcome:
    prediction: Any = None
    error: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] | None = None


def _one(model: ServedModel, record: dict[str, Any]) -> _Outcome:
    started = time.perf_counter()
    checked = model.contract.apply([record])
    problems = checked.all_problems()
    if problems:
        return _Outcome(error=contract_error(problems).code)
    try:
        predictions, _, details = answer_rows(model, checked.frame)
    except PlinthError as exc:  # a remote reply off its schema was still paid for
        details = getattr(exc, "details", None)
        return _Outcome(None, exc.code, time.perf_counter() - started, details)
    except Exception:
        return _Outcome(error="model.error", seconds=time.perf_counter() - started)
    prediction = _plain(predictions[0])
    verdicts = model.output.check(np.asarray([prediction], dtype=object), None, 1)
    if verdicts[0] is not None:
        return _Outcome(error=verdicts[0].code, seconds=time.perf_counter() - started)
    return _Outcome(
        prediction, None, time.perf_counter() - started, None if details is None else details[0]
    )


def _summarise(
    name: str, version: int, outcomes: Sequence[_Outcome], expected: list[Any], scorer: Scorer
) -> Evaluation:
    result = Evaluation(name, version, len(outcomes))
    errors: Counter[str] = Counter()
    scores: list[float] = []
    seconds: list[float] = []
    for outcome, truth in zip(outcomes, expected, strict=True):
        result.predictions.append(outcome.prediction if outcome.error is None else None)
        if outcome.details is not None:
            usage = outcome.details.get("usage") or {}
            result.prompt_tokens += int(usage.get("prompt_tokens", 0))
            result.completion_tokens += int(usage.get("completion_tokens", 0))
            result.cost += float(outcome.details.get("cost") or 0.0)
            result.reasks += int(outcome.details.get("reasks") or 0)
        if outcome.error is not None:
            errors[outcome.error] += 1
            continue
        result.answered += 1
        seconds.append(outcome.seconds)
        scores.append(float(scorer(outcome.prediction, truth)))
    result.errors = dict(errors.most_common())
    result.score = float(np.mean(scores)) if scores else None
    if seconds:
        ms = np.asarray(seconds) * 1000.0
        result.latency_ms = {
            "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)),
            "max": float(ms.max()),
        }
    return result


def _exact(predicted: Any, expected: Any) -> float:
    return 1.0 if predicted == expected else 0.0


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
