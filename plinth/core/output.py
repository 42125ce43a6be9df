"""The output contract: what a model must return before its answer reaches a caller.

A model that returns NaN, the wrong number of rows, a label it was never trained on, or
probabilities that do not sum to one has failed, even though it did not raise. ``check``
judges each row on its own, so one bad row does not fail its neighbours in the batch; only
a wrong overall shape, which leaves no row trustworthy, marks them all.

>>> contract = OutputContract("classification", classes=["no", "yes"])
>>> proba = np.array([[0.2, 0.8], [np.nan, 0.5], [0.6, 0.6]])
>>> [p and p.message for p in contract.check(np.array(["yes", "no", "no"]), proba, 3)]
[None, 'probabilities are not all finite', 'probabilities sum to 1.2, not 1']
>>> confidence(proba[[0]]).tolist(), margin(proba[[0]]).round(6).tolist()
([0.8], [0.6])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from plinth.errors import InvalidOutputContractError, Problem
from plinth.errors.serving import BAD_OUTPUT

Task = Literal["classification", "regression"]

_TASKS = get_args(Task)
_HINT = (
    "the model, not the request, is at fault: check the artifact with "
    "`plinth show`, roll back with `plinth rollback`, or retrain"
)


@dataclass
class OutputContract:
    """What a version's predictions must look like; stored as JSON with the version."""

    task: Task
    classes: list[Any] | None = None  # JSON-ready class labels, classification only
    tolerance: float = 1e-6  # allowed |sum(probabilities) - 1|

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise InvalidOutputContractError(
                f"output contract task must be one of {', '.join(_TASKS)}, not {self.task!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "classes": self.classes, "tolerance": self.tolerance}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputContract:
        classes = d.get("classes")
        return cls(
            task=d.get("task"),  # type: ignore[arg-type]  # checked in __post_init__
            classes=list(classes) if classes is not None else None,
            tolerance=float(d.get("tolerance", 1e-6)),
        )

    def check(
        self, predictions: np.ndarray, probabilities: np.ndarray | None, n_rows: int
    ) -> list[Problem | None]:
        """Per row: None when the output is fine, else a ``model.bad_output`` Problem."""
        reasons: list[list[str]] = [[] for _ in range(n_rows)]
        shape = self._shape_problem(predictions, probabilities, n_rows)
        if shape is not None:
            return [_problem(i, shape) for i in range(n_rows)]
        predictions = np.asarray(predictions).reshape(n_rows)
        if self.task == "regression":
            self._check_numbers(predictions, reasons)
        elif self.classes is not None:
            allowed = set(self.classes)
            for i, label in enumerate(predictions.tolist()):
                try:
                    known = label in allowed
                except TypeError:  # an unhashable label
                    known = False
                if not known:
                    reasons[i].append(f"predicted {label!r}, which is not one of the classes")
        if probabilities is not None:
            self._check_probabilities(np.asarray(probabilities), reasons)
        return [_problem(i, "; ".join(r)) if r else None for i, r in enumerate(reasons)]

    def _shape_problem(
        self, predictions: np.ndarray, probabilities: np.ndarray | None, n_rows: int
    ) -> str | None:
        predictions = np.asarray(predictions)
        if predictions.ndim == 0 or predictions.size != n_rows or predictions.shape[0] != n_rows:
            return f"the model returned predictions of shape {predictions.shape} for {n_rows} rows"
        if probabilities is None:
            return None
        probabilities = np.asarray(probabilities)
        width = len(self.classes) if self.classes is not None else None
        if (
            probabilities.ndim != 2
            or probabilities.shape[0] != n_rows
            or (width is not None and probabilities.shape[1] != width)
        ):
            expected = f"({n_rows}, {width if width is not None else 'n_classes'})"
            return (
                f"the model returned probabilities of shape {probabilities.shape}, not {expected}"
            )
        return None

    @staticmethod
    def _check_numbers(predictions: np.ndarray, reasons: list[list[str]]) -> None:
        try:
            values = predictions.astype(np.float64)
        except (TypeError, ValueError):
            values = np.array([_to_float(v) for v in predictions.tolist()], dtype=np.float64)
        shown = predictions.tolist()  # plain Python values read better than numpy reprs
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            reasons[i].append(f"prediction {shown[i]!r} is not a finite number")

    def _check_probabilities(self, probabilities: np.ndarray, reasons: list[list[str]]) -> None:
        try:
            p = probabilities.astype(np.float64)
        except (TypeError, ValueError):
            for r in reasons:
                r.append("probabilities are not numbers")
            return
        finite = np.asarray(np.isfinite(p).all(axis=1))
        inside = np.asarray(((p >= 0.0) & (p <= 1.0)).all(axis=1))
        with np.errstate(invalid="ignore"):
            sums = p.sum(axis=1)
        adds_up = np.abs(sums - 1.0) <= self.tolerance
        for i in np.flatnonzero(~(finite & inside & adds_up)).tolist():
            if not finite[i]:
                reasons[i].append("probabilities are not all finite")
            elif not inside[i]:
                reasons[i].append("probabilities are not all within [0, 1]")
            else:
                reasons[i].append(f"probabilities sum to {sums[i]:.6g}, not 1")


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """The top probability of each row: how sure the model is of its answer."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        return np.full(p.shape[0] if p.ndim else 0, np.nan)
    return np.asarray(p.max(axis=1))


def margin(probabilities: np.ndarray) -> np.ndarray:
    """Top minus second probability per row (1.0 with one class): near 0 means a coin toss."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        return np.full(p.shape[0] if p.ndim else 0, np.nan)
    if p.shape[1] == 1:
        return np.where(np.isnan(p[:, 0]), np.nan, 1.0)
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def _to_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def _problem(row: int, reason: str) -> Problem:
    return Problem(code=BAD_OUTPUT, message=reason, hint=_HINT, record=row)
