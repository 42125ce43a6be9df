"""Reading back: the monitoring report of one model over a window.

``Monitor`` builds the report from interval rows only (never the prediction log): the rows of
a window are stacked into one matrix and summed, so 30 days cost about 720 hour rows plus
the last hours' minute rows and a few numpy reductions, whatever the traffic was.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from plinth.core.charting import ewma_series
from plinth.core.drift import dataset_drift
from plinth.core.drift_config import DriftConfig
from plinth.core.interval import (
    FLOAT_DTYPE,
    LatencyHistogram,
    ProfileLayout,
    Section,
    Usage,
    decode_counts_many,
    histogram_quantile,
    histogram_quantiles,
)
from plinth.core.profile import Profile
from plinth.errors import (
    NoBaselineTrafficError,
    NoReferenceProfileError,
    UnknownBaselineError,
)
from plinth.services.rollout.deployments import Deployments
from plinth.store import Store
from plinth.store.monitoring import ROLLUP_SECONDS, IntervalRow, MonitoringStore
from plinth.store.records import VersionRecord
from plinth.store.spend import SpendStore

log = logging.getLogger("plinth.monitoring")

Baseline = Literal["reference", "previous"]


# ---------------------------------------------------------------------- reading back


@dataclass
class WindowData:
    """Every interval of one version in a window, merged across workers, as arrays."""

    starts: list[datetime]
    requests: np.ndarray
    records: np.ndarray
    errors: dict[str, int]
    validation_failures: np.ndarray
    problems: dict[str, int]
    latency: np.ndarray  # intervals x buckets
    ints: np.ndarray  # intervals x layout.int_size, possibly a narrow unsigned type
    floats: np.ndarray
    profile_rows: np.ndarray  # rows folded into the profile, per interval
    resolution_s: float | None = None  # seconds per point (None: no rows)
    error_counts: np.ndarray | None = None  # every error code added up, per interval

    @property
    def empty(self) -> bool:
        return not self.starts

    def profile(self, layout: ProfileLayout) -> Profile:
        return layout.inflate(
            self.ints.sum(axis=0, dtype=np.int64),
            self.floats.sum(axis=0),
            int(self.profile_rows.sum()),
        )


def merge_rows(
    rows: Sequence[IntervalRow], layout: ProfileLayout, bucket_s: float | None = None
) -> WindowData:
    """Stack rows and add those of the same interval (workers, replicas) together.

    With ``bucket_s`` rows are added up per bucket of that many seconds instead (the
    report uses hours once a window reaches into rolled-up hours).
    """
    # Rows come ordered by start, so rows of one interval are adjacent: reduceat adds them.
    starts: list[datetime] = []
    at = np.empty(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        start = r.start if bucket_s is None else _floor(r.start, bucket_s)
        if not starts or start != starts[-1]:
            starts.append(start)
        at[i] = len(starts) - 1
    n = len(starts)
    # Where each interval's last row sits: cumulative sums differenced there add up the
    # rows of one interval exactly (integers) in one pass over the matrix.
    lasts = np.flatnonzero(np.diff(at, append=n)) if rows else np.zeros(0, np.int64)

    def add_up(matrix: np.ndarray) -> np.ndarray:
        if matrix.shape[0] == n:
            return matrix  # one row per interval: nothing to add
        total = np.cumsum(matrix, axis=0, dtype=np.int64)[lasts]
        total[1:] -= total[:-1].copy()
        return total

    ints = np.zeros((n, layout.int_size), dtype=np.int64)
    floats = np.zeros((n, layout.float_size), dtype=np.float64)
    size = LatencyHistogram().counts.size
    latency = add_up(decode_counts_many([r.latency for r in rows], size))
    profiled = [r for r in rows if r.counts is not None and r.sums is not None]
    if profiled:
        stacked = decode_counts_many([r.counts for r in profiled], layout.int_size)  # type: ignore[misc]
        summed = np.frombuffer(b"".join(r.sums for r in profiled), dtype=FLOAT_DTYPE)  # type: ignore[misc]
        summed = summed.reshape(len(profiled), -1).astype(np.float64)
        layout._check(stacked, summed)
        if len(profiled) == len(rows):
            ints = add_up(stacked)
            floats = (
                summed
                if summed.shape[0] == n
                else np.add.reduceat(summed, np.flatnonzero(np.diff(at, prepend=-1)))
            )
        else:
            where = np.asarray([at[i] for i, r in enumerate(rows) if r.counts is not None])
            np.add.at(ints, where, stacked)
            np.add.at(floats, where, summed)
    requests = np.bincount(at, [r.requests for r in rows], minlength=n).astype(np.int64)
    records = np.bincount(at, [r.records for r in rows], minlength=n).astype(np.int64)
    failures = np.bincount(at, [r.validation_failures for r in rows], minlength=n)
    error_counts = np.bincount(at, [sum(r.errors.values()) for r in rows], minlength=n)
    errors: dict[str, int] = {}
    problems: dict[str, int] = {}
    for r in rows:
        for code, k in r.errors.items():
            errors[code] = errors.get(code, 0) + int(k)
        for name, k in r.problems.items():
            problems[name] = problems.get(name, 0) + int(k)
    # Rows folded into the profile: any section's rows (all sections see every answered row).
    first = layout.sections[0] if layout.sections else None
    profile_rows = (
        ints[:, first.counts].sum(axis=1, dtype=np.int64) + ints[:, first.nulls]
        if first is not None
        else np.zeros(n, dtype=np.int64)
    )
    resolution = bucket_s if bucket_s is not None else max((r.seconds for r in rows), default=None)
    return WindowData(
        starts, requests, records, errors, failures.astype(np.int64), problems, latency,
        ints, floats, profile_rows, resolution, error_counts.astype(np.int64),
    )  # fmt: skip


def _floor(at: datetime, seconds: float) -> datetime:
    if seconds == ROLLUP_SECONDS:
        return at.replace(minute=0, second=0, microsecond=0)
    return datetime.fromtimestamp(math.floor(at.timestamp() / seconds) * seconds, UTC)


def _rate(part: float, whole: float) -> float | None:
    return None if whole <= 0 else part / whole


def _edge(value: float) -> str:
    """A bin edge to four significant digits, never an exponent: 32,270 or 0.0001234."""
    text = f"{value:.4g}"
    if "e" not in text:
        return text
    if abs(value) >= 1:
        return f"{value:,.0f}"
    return f"{float(text):.12f}".rstrip("0")


def bin_labels(section: Section) -> list[str]:
    """Human labels of a section's bins, for tables and histograms."""
    bins = section.bins
    if bins.kind == "categorical":
        return [str(c) for c in bins.categories or []] + ["(other)"]
    edges = [_edge(e) for e in bins.edges or []]
    if not edges:
        return ["all"]
    return (
        [f"≤ {edges[0]}"]
        + [f"{a} to {b}" for a, b in itertools.pairwise(edges)]
        + [f"> {edges[-1]}"]
    )


@dataclass(frozen=True)
class ChartSpec:
    """EWMA parameters for the report's control charts."""

    lam: float = 0.2
    L: float = 3.0
    warmup: int = 10  # intervals used to calibrate statistics that have no reference


class Monitor:
    """Builds monitoring reports from interval rows and a version's reference profile."""

    def __init__(
        self,
        store: Store,
        *,
        drift: DriftConfig | None = None,
        charts: ChartSpec | None = None,
    ) -> None:
        self.store = store
        self.rows = MonitoringStore(store)
        self.drift = drift or DriftConfig()
        self.charts = charts or ChartSpec()

    def resolve_version(self, name: str, start: datetime, end: datetime) -> VersionRecord:
        """What serves ``name`` now: the live deployment's champion (the newest version when
        it was never deployed). Not the newest with traffic: a shadow or a canary registered
        later would hide the version that takes the traffic."""
        spec, _ = Deployments(self.store).effective(name)
        return self.store.get_version(name, spec.champion)

    def roles(self, name: str) -> dict[str, Any]:
        """Champion, canary and shadows of the live deployment, for the report's header."""
        spec, revision = Deployments(self.store).effective(name)
        return {
            "champion": spec.champion,
            "canary": None if spec.canary is None else spec.canary.to_dict(),
            "shadows": list(spec.shadows),
            "revision": None if revision is None else revision.revision,
        }

    def window(
        self, record: VersionRecord, layout: ProfileLayout, start: datetime, end: datetime
    ) -> WindowData:
        """Rows whose interval starts in [start, end), added up per interval.

        A window that reaches into rolled-up hours is added up per hour throughout (the
        recent minute rows into their hours too), so its control charts have one resolution.
        """
        rows = self.rows.read_intervals(record.name, record.version, start, end)
        hourly = any(r.seconds >= ROLLUP_SECONDS for r in rows)
        return merge_rows(rows, layout, ROLLUP_SECONDS if hourly else None)

    def report(
        self,
        name: str,
        *,
        window: timedelta,
        baseline: Baseline = "reference",
        version: int | None = None,
        now: datetime | None = None,
        drift: DriftConfig | None = None,
        label: str | None = None,
        detail: bool = False,
    ) -> dict[str, Any]:
        """The JSON report: traffic, latency, drift, control charts and alerts.

        ``detail`` (the console's model page, the HTML report, ``?detail=true``) adds every
        interval's numbers as ``series``, every control chart's points as its ``series``,
        and the output's histogram beside the features'.
        """
        if baseline not in ("reference", "previous"):
            raise UnknownBaselineError(baseline)
        end = now or datetime.now(UTC)
        start = end - window
        record = (
            self.store.get_version(name, version)
            if version is not None
            else self.resolve_version(name, start, end)
        )
        document = record.metadata.get("reference_profile")
        if document is None:
            raise NoReferenceProfileError(f"{record.ref} has no reference profile.")
        reference = Profile.from_dict(document)
        layout = ProfileLayout(reference)
        data = self.window(record, layout, start, end)
        body: dict[str, Any] = {
            "model": name,
            "version": record.version,
            "deployment": self.roles(name),
            "window": {
                "label": label or _label(window),
                "start": start.isoformat(),
                "end": end.isoformat(),
                "seconds": window.total_seconds(),
                "intervals": len(data.starts),
                "resolution_s": data.resolution_s,
            },
            "baseline": baseline,
            **self._traffic(data),
        }
        body["drift"], body["histograms"] = self._drift(
            data, layout, reference, record, baseline, start, window, drift or self.drift, detail
        )
        if detail:
            body["series"] = series(data)
        body["control"] = self._control(data, layout, reference, record, detail)
        body["cost"] = self.cost(record, start, end)
        body["alerts"] = [a.to_dict() for a in self.rows.list_alerts(name, start)]
        return body

    def cost(self, record: VersionRecord, start: datetime, end: datetime) -> dict[str, Any] | None:
        """A remote model's calls, tokens and cost per version over the window (from the
        interval rows) and today's spend against the daily budget of ``record``'s spec
        (from the shared ledger); None for a model that is not remote."""
        usage = self.rows.usage_by_version(record.name, start, end)
        spec = record.metadata.get("remote")
        if not usage and record.flavor != "remote":
            return None
        versions = [{"version": v, **u.to_dict()} for v, u in usage.items()]
        total = sum(usage.values(), Usage()).to_dict()
        body: dict[str, Any] = {"versions": versions, "total": total, "budget": None}
        cost = spec.get("cost") if isinstance(spec, dict) else None
        if isinstance(cost, dict) and cost.get("budget_per_day") is not None:
            budget = float(cost["budget_per_day"])
            today = end.astimezone(UTC).date()
            spent = SpendStore(self.store).spent(record.name, today)
            body["budget"] = {
                "day": today.isoformat(),
                "per_day": budget,
                "spent": spent,
                "share": _rate(spent, budget),
                "alert_at": float(cost.get("alert_at", 0.8)),
                "on_budget": cost.get("on_budget"),
                "version": record.version,
            }
        return body

    # -- sections of the report -----------------------------------------------------------

    def _traffic(self, data: WindowData) -> dict[str, Any]:
        requests = int(data.requests.sum())
        failures = int(data.validation_failures.sum())
        errors = sum(data.errors.values())
        merged = data.latency.sum(axis=0)
        quantiles = {f"p{int(q * 100)}": histogram_quantile(merged, q) for q in (0.5, 0.95, 0.99)}
        return {
            "traffic": {
                "requests": requests,
                "records": int(data.records.sum()),
                "errors": dict(sorted(data.errors.items())),
                "error_rate": _rate(errors - failures, requests),
                "validation_failures": failures,
                "validation_rate": _rate(failures, requests),
                "validation_problems": dict(sorted(data.problems.items())),
            },
            "latency": {"count": int(merged.sum()), **quantiles},
        }

    def _drift(
        self,
        data: WindowData,
        layout: ProfileLayout,
        reference: Profile,
        record: VersionRecord,
        baseline: Baseline,
        start: datetime,
        window: timedelta,
        config: DriftConfig,
        every: bool = False,
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        if data.empty or int(data.profile_rows.sum()) == 0:
            return None, {}
        current = data.profile(layout)
        if baseline == "reference":
            base = reference
        else:
            before = self.window(record, layout, start - window, start)
            if before.empty or int(before.profile_rows.sum()) == 0:
                raise NoBaselineTrafficError("The previous window has no traffic to compare with.")
            base = before.profile(layout)
        result = dataset_drift(base, current, config)
        features: dict[str, dict[str, Any]] = {}
        for r in result.results:
            entry = features.setdefault(
                r.feature,
                {"feature": r.feature, "kind": base.features_[r.feature].source_kind,
                 "drifted": False, "results": []},
            )  # fmt: skip
            entry["results"].append(r.to_dict())
            entry["drifted"] = entry["drifted"] or r.drifted
        histograms: dict[str, Any] = {}
        # Every feature, drifted ones first: a stable histogram is evidence too.
        drifted = set(result.drifted_features)
        for name in [*result.drifted_features, *(f for f in base.features_ if f not in drifted)]:
            section = layout.feature(name)
            ref_bins, cur_bins = base.features_[name], current.features_[name]
            histograms[name] = {
                "drifted": name in drifted,
                "labels": [*bin_labels(section), "(null)"],
                "reference": [*ref_bins.counts.tolist(), ref_bins.nulls],
                "current": [*cur_bins.counts.tolist(), cur_bins.nulls],
            }
        if every and base.output_ is not None and current.output_ is not None:
            section = layout.by_key["output"]
            histograms["(output)"] = {
                "labels": [*bin_labels(section), "(null)"],
                "reference": [*base.output_.counts.tolist(), base.output_.nulls],
                "current": [*current.output_.counts.tolist(), current.output_.nulls],
            }
        body = {
            "share_drifted": result.share_drifted,
            "drifted": result.drifted,
            "drifted_features": result.drifted_features,
            "features": list(features.values()),
            "output": [r.to_dict() for r in result.output],
            "rows": {"reference": base.n_rows_, "current": current.n_rows_},
        }
        return body, histograms

    def _control(
        self,
        data: WindowData,
        layout: ProfileLayout,
        reference: Profile,
        record: VersionRecord,
        every: bool = False,
    ) -> list[dict[str, Any]]:
        """EWMA charts of per-interval statistics, each standardised to unit variance.

        ``every`` adds each chart's points as ``series`` (for drawing the chart)."""
        charts: list[dict[str, Any]] = []
        if data.empty:
            return charts
        spec = self.charts
        ints, floats = data.ints, data.floats
        iso = [s.isoformat() for s in data.starts] if every else []
        summary = layout.summarise(ints)

        def add(statistic: str, section: str, z: np.ndarray, raw: np.ndarray) -> None:
            keep = np.isfinite(z)
            if not keep.any():
                return
            series = ewma_series(z[keep], 0.0, 1.0, lam=spec.lam, L=spec.L)
            kept = np.flatnonzero(keep)
            breaches = np.flatnonzero(series.breach)
            charts.append(
                {
                    "statistic": statistic,
                    "section": section,
                    "chart": "ewma",
                    "points": int(keep.sum()),
                    "breaches": int(breaches.size),
                    "first_breach": (
                        data.starts[int(kept[breaches[0]])].isoformat() if breaches.size else None
                    ),
                    "breach": bool(series.breach[-1]),
                    "last": {
                        "value": float(raw[keep][-1]),
                        "z": float(z[keep][-1]),
                        "ewma": float(series.ewma[-1]),
                        "lower": float(series.lower[-1]),
                        "upper": float(series.upper[-1]),
                    },
                }
            )
            if every:
                charts[-1]["series"] = {
                    "starts": [iso[i] for i in kept.tolist()],
                    "value": raw[keep].tolist(),
                    "z": z[keep].tolist(),
                    "ewma": series.ewma.tolist(),
                    "lower": series.lower.tolist(),
                    "upper": series.upper.tolist(),
                    "breach": series.breach.tolist(),
                }

        for section in layout.sections:
            bins = section.bins
            name = "prediction" if section.key == "output" else section.key.removeprefix("feature:")
            if bins.kind == "numeric" and section.sum is not None:
                mu, sd = bins.mean(), bins.std()
                if mu is not None and sd:
                    n = layout.totals(summary, section.key).astype(np.float64)
                    means = layout.means(summary, floats, section.key)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        z = (means - mu) / (sd / np.sqrt(n))
                    add("mean", name, z, means)
            if section.key.startswith("feature:") and bins.rows > 0:
                # Floor the reference null rate: a never-null column is still chartable.
                p0 = min(max(bins.nulls / bins.rows, 0.5 / bins.rows), 1 - 0.5 / bins.rows)
                rates, rows = layout.null_rates(summary, section.key)
                with np.errstate(invalid="ignore", divide="ignore"):
                    z = (rates - p0) / np.sqrt(p0 * (1 - p0) / rows)
                add("null_rate", name, z, rates)
            if section.key == "output" and bins.kind == "categorical" and bins.total > 0:
                classes = record.metadata.get("output_contract", {}).get("classes") or []
                cats = [str(c) for c in bins.categories or []]
                watched = [str(classes[1])] if len(classes) == 2 else cats
                for label in watched:
                    if label not in cats:
                        continue
                    slot = section.counts.start + cats.index(label)
                    p0 = float(bins.counts[cats.index(label)]) / bins.total
                    if not 0 < p0 < 1:
                        continue
                    n = layout.totals(summary, section.key).astype(np.float64)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        share = ints[:, slot] / n
                        z = (share - p0) / np.sqrt(p0 * (1 - p0) / n)
                    add(f"rate[{label}]", "prediction", z, share)
        p95 = histogram_quantiles(data.latency, 0.95)
        good = np.flatnonzero(np.isfinite(p95) & (p95 > 0))
        if good.size >= spec.warmup + 2:
            logs = np.full(p95.shape, np.nan)
            logs[good] = np.log(p95[good])
            warm = logs[good[: spec.warmup]]
            sd = float(warm.std(ddof=1))
            if sd > 0:
                z = (logs - float(warm.mean())) / sd
                add("p95_latency", "latency", z, p95)
        return charts


def series(data: WindowData) -> dict[str, Any]:
    """Every interval's traffic, errors, contract failures and latency percentiles (seconds),
    for charts: one list per statistic, aligned with ``starts``."""
    requests = data.requests.tolist()
    errors = data.error_counts if data.error_counts is not None else np.zeros(len(requests))
    out: dict[str, Any] = {
        "starts": [s.isoformat() for s in data.starts],
        "resolution_s": data.resolution_s,
        "requests": requests,
        "records": data.records.tolist(),
        "errors": (errors - data.validation_failures).tolist(),
        "validation_failures": data.validation_failures.tolist(),
    }
    for q in (0.5, 0.95, 0.99):
        values = histogram_quantiles(data.latency, q) if len(requests) else np.zeros(0)
        out[f"p{int(q * 100)}"] = [None if not math.isfinite(v) else float(v) for v in values]
    return out


def _label(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def describe_roles(version: int, deployment: dict[str, Any]) -> str:
    """'champion 1; canary 3 at 10%; shadows 2', saying which of them the report is about."""
    parts = [f"champion {deployment['champion']}"]
    canary = deployment.get("canary")
    if canary:
        parts.append(f"canary {canary['version']} at {canary['weight']:g}%")
    if deployment.get("shadows"):
        parts.append("shadows " + ", ".join(map(str, deployment["shadows"])))
    shown = "" if version == deployment["champion"] else f"; this report is about {version}"
    return "serving: " + "; ".join(parts) + shown
