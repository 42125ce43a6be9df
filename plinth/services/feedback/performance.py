"""Live performance: realised metrics from labels, and estimated metrics before labels come.

Windows are by *prediction* time: a label that arrives three days late still counts for the
window in which the model made the prediction, which is the window whose performance it
measures. Windows are aligned to multiples of their length since the Unix epoch (daily
windows are UTC days), so a report asked twice gives the same windows.

Per window and version: label coverage (labelled / logged predictions), label delay
(median and 90th percentile of label time minus prediction time), realised metrics
(``plinth.core.metrics``), the holdout metrics recorded at registration with the
difference, and for classifiers the estimated metrics with their band
(``plinth.core.estimation``), computed from the probabilities of every prediction in the
window, labelled or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from prometheus_client import Gauge

from plinth.core.estimation import PerformanceEstimator
from plinth.core.metrics import classification_metrics, regression_metrics
from plinth.core.output import OutputContract
from plinth.errors import InvalidWindowError, PlinthError
from plinth.services.feedback.labels import now_utc
from plinth.store import Store, VersionRecord
from plinth.store.feedback import FeedbackStore, LabelRow

MAX_WINDOWS = 366
#: Predictions read per window and version for the estimate (a uniform enough sample).
ESTIMATE_ROWS = 50_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

REALISED = Gauge(
    "plinth_performance",
    "Realised metric from labels, for the latest performance window.",
    ["model", "version", "metric"],
    multiprocess_mode="mostrecent",
)
ESTIMATED = Gauge(
    "plinth_performance_estimated",
    "Estimated metric from predicted probabilities, for the latest performance window.",
    ["model", "version", "metric"],
    multiprocess_mode="mostrecent",
)
COVERAGE = Gauge(
    "plinth_label_coverage",
    "Share of the latest window's predictions that have a label.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
DELAY = Gauge(
    "plinth_label_delay_seconds",
    "Median delay from prediction to label in the latest window.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)


def align(moment: datetime, window: timedelta) -> datetime:
    """The end of the window containing ``moment`` (windows are epoch-aligned)."""
    span = window.total_seconds()
    elapsed = (moment - _EPOCH).total_seconds()
    count = int(np.ceil(elapsed / span - 1e-9))
    return _EPOCH + timedelta(seconds=count * span)


@dataclass
class _Version:
    record: VersionRecord
    output: OutputContract
    estimator: PerformanceEstimator | None


class Performance:
    """Builds performance reports for one model from labels and the prediction log."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = now_utc) -> None:
        self.store = store
        self.sql = FeedbackStore(store)
        self.clock = clock
        self._versions: dict[tuple[str, int], _Version] = {}

    def _version(self, name: str, number: int) -> _Version:
        key = (name, number)
        if key not in self._versions:
            record = self.store.get_version(name, number)
            document = record.metadata.get("estimator")
            estimator = None
            if document and "error" not in document:
                estimator = PerformanceEstimator.from_dict(document)
            output = OutputContract.from_dict(record.metadata["output_contract"])
            self._versions[key] = _Version(record, output, estimator)
        return self._versions[key]

    def report(
        self,
        name: str,
        *,
        window: timedelta = timedelta(days=1),
        windows: int = 7,
        end: datetime | None = None,
        version: int | None = None,
        estimate: bool = True,
        trailing: bool = False,
    ) -> dict[str, Any]:
        """Realised and estimated performance of ``name`` for the last ``windows`` windows.

        Windows are epoch-aligned so that reports taken at different times line up; with
        ``trailing`` the last window ends at ``end`` instead (``plinth monitor``'s "the last
        hour"), so a report taken just after a boundary is not of an empty window."""
        if window <= timedelta(0) or not 1 <= windows <= MAX_WINDOWS:
            raise InvalidWindowError(
                f"window={window} and windows={windows} do not make a report",
                hint=f"Use a positive window (1h, 1d, 7d) and 1 to {MAX_WINDOWS} windows.",
            )
        versions = self.store.list_versions(name)
        if not versions:
            self.store.get_version(name)  # raises the not-found error with a listing
        stop = (end or self.clock()) if trailing else align(end or self.clock(), window)
        first = stop - window * windows
        labels = self.sql.read_labels(name, first, stop, version)
        buckets: dict[int, dict[int, list[LabelRow]]] = {}
        for row in labels:
            slot = int((row.prediction_ts - first) / window)
            buckets.setdefault(slot, {}).setdefault(row.version, []).append(row)
        report_windows = []
        for slot in range(windows):
            start = first + window * slot
            counts = self.sql.prediction_counts(name, start, start + window, version)
            labelled = buckets.get(slot, {})
            entries = [
                self._entry(
                    name, number, start, start + window, counts.get(number, 0),
                    labelled.get(number, []), estimate,
                )
                for number in sorted(set(counts) | set(labelled))
            ]  # fmt: skip
            report_windows.append(
                {
                    "start": start.isoformat(),
                    "end": (start + window).isoformat(),
                    "versions": entries,
                }
            )
        return {
            "model": name,
            "task": versions[-1].task,
            "window_seconds": window.total_seconds(),
            "windows": report_windows,
            "holdout": {str(v.version): v.metadata.get("metrics", {}) for v in versions},
        }

    def _entry(
        self,
        name: str,
        number: int,
        start: datetime,
        stop: datetime,
        predicted: int,
        rows: Sequence[LabelRow],
        estimate: bool,
    ) -> dict[str, Any]:
        info = self._version(name, number)
        labelled = len(rows)
        entry: dict[str, Any] = {
            "version": number,
            "predictions": predicted,
            "labelled": labelled,
            # Labels outlive pruned predictions, so coverage is capped at 1.
            "coverage": None if predicted == 0 else min(1.0, labelled / predicted),
            "label_delay_s": _delay(rows),
            "sources": _sources(rows),
            "realised": _realised(info.output, rows) if rows else None,
        }
        holdout = {
            k: v for k, v in info.record.metadata.get("metrics", {}).items() if k not in ("split",)
        }
        entry["holdout"] = holdout
        if entry["realised"]:
            entry["vs_holdout"] = {
                k: entry["realised"][k] - holdout[k]
                for k in entry["realised"]
                if isinstance(holdout.get(k), int | float) and k != "rows"
            }
        if estimate and info.estimator is not None and predicted > 0:
            p = _probabilities(
                info.output, self.sql.prediction_outputs(name, start, stop, number, ESTIMATE_ROWS)
            )
            estimated = _estimate(info, p)
            if estimated:
                realised = entry["realised"] or {}
                entry["estimated"] = {
                    k: {
                        **e.to_dict(),
                        "realised_inside": (e.contains(realised[k]) if k in realised else None),
                    }
                    for k, e in estimated.items()
                }
                entry["estimated_from"] = len(p)
        return entry

    def publish(self, name: str, window: timedelta) -> None:
        """Set the /metrics gauges from the latest window of ``name``."""
        report = self.report(name, window=window, windows=1)
        for entry in report["windows"][-1]["versions"]:
            version = str(entry["version"])
            if entry["coverage"] is not None:
                COVERAGE.labels(name, version).set(entry["coverage"])
            if entry["label_delay_s"]:
                DELAY.labels(name, version).set(entry["label_delay_s"]["median"])
            for metric, value in (entry["realised"] or {}).items():
                if metric != "rows":
                    REALISED.labels(name, version, metric).set(value)
            for metric, band in entry.get("estimated", {}).items():
                ESTIMATED.labels(name, version, metric).set(band["value"])


def _delay(rows: Sequence[LabelRow]) -> dict[str, float] | None:
    if not rows:
        return None
    seconds = np.array([(r.labelled_at - r.prediction_ts).total_seconds() for r in rows])
    return {
        "median": float(np.median(seconds)),
        "p90": float(np.percentile(seconds, 90)),
        "max": float(seconds.max()),
    }


def _sources(rows: Sequence[LabelRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.source] = counts.get(r.source, 0) + 1
    return counts


def _probabilities(output: OutputContract, outputs: Iterable[dict[str, Any]]) -> np.ndarray:
    """Class probabilities per logged output (one-hot where the model gave none), filled
    as the outputs stream in: a window's outputs are never all held as dicts at once."""
    keys = [str(c) for c in output.classes or []]
    slot = {k: i for i, k in enumerate(keys)}
    one_hot = np.eye(len(keys)).tolist()
    nothing = [0.0] * len(keys)

    def values() -> Iterator[float]:
        for o in outputs:
            probs = o.get("probabilities")
            if probs:
                yield from (float(probs.get(k, 0.0)) for k in keys)
            else:
                hit = slot.get(str(o.get("prediction")))
                yield from (nothing if hit is None else one_hot[hit])

    if not keys:
        return np.zeros((sum(1 for _ in outputs), 0))
    return np.fromiter(values(), dtype=np.float64).reshape(-1, len(keys))


def _realised(output: OutputContract, rows: Sequence[LabelRow]) -> dict[str, float] | None:
    try:
        if output.task == "classification":
            p = _probabilities(output, [r.output for r in rows])
            metrics = classification_metrics([r.label for r in rows], p, output.classes or [])
        else:
            metrics = regression_metrics(
                [float(r.label) for r in rows], [float(r.output["prediction"]) for r in rows]
            )
    except PlinthError:
        return None
    return {"rows": float(len(rows)), **metrics}


def _estimate(info: _Version, p: np.ndarray) -> dict[str, Any]:
    assert info.estimator is not None
    if not len(p):
        return {}
    keep = p.sum(axis=1) > 0
    if not keep.any():
        return {}
    try:
        return dict(info.estimator.estimate(p[keep]))
    except PlinthError:
        return {}
