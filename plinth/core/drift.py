"""Has live traffic moved away from training? Distances and tests on binned counts.

Every statistic here takes two count vectors over the same bins (reference, current), so it
runs on merged interval profiles and never on raw rows. Binning is an approximation, and each
function says which way it errs; ``docs/monitoring.md`` has the formulas and the defaults.

Small samples are judged by a test (is the difference more than chance?), large samples by a
distance (is the difference big enough to matter?), because with enough rows every test
rejects and with few rows every distance is noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from plinth.core.profile import FeatureBins, Profile
from plinth.errors import ConfigError, PlinthError

#: Floor for an empty bin's share in PSI, so that ln(q/p) stays finite. With 1e-4 a bin that
#: is empty on one side and holds share s on the other adds about s * ln(s / 1e-4) (0.46 for
#: s = 0.05): a new mode is loud but one stray value in a big sample is not.
PSI_EPSILON = 1e-4


def _shares(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise PlinthError(
            f"Count vectors must share one shape, got {ref.shape} and {cur.shape}.",
            code="drift.shape_mismatch",
            hint="Compare counts over the same bins (an interval profile from empty_like()).",
            status=500,
        )
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise PlinthError(
            "A count vector is empty; there is nothing to compare.",
            code="drift.empty_counts",
            hint="Skip features with no values in the interval.",
            status=500,
        )
    return ref / ref.sum(), cur / cur.sum()


def psi(reference: Any, current: Any, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index: sum of (q - p) ln(q / p), shares floored at ``epsilon``.

    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a significant shift.

    >>> rng = np.random.default_rng(0)
    >>> ref = np.bincount(rng.integers(0, 5, 1000), minlength=5)
    >>> cur = np.bincount(rng.integers(0, 4, 500), minlength=5)
    >>> round(psi(ref, cur), 4)
    1.6756
    """
    p, q = _shares(reference, current)
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: Any, current: Any) -> float:
    """Jensen-Shannon distance, base 2: the square root of the JS divergence, in [0, 1].

    Symmetric and finite even when one side has empty bins, so it needs no epsilon.

    >>> round(js_distance([50, 30, 20, 0], [40, 30, 20, 10]), 4)
    0.2324
    """
    p, q = _shares(reference, current)
    m = (p + q) / 2
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2 / math.log(2)
    return float(math.sqrt(min(max(divergence, 0.0), 1.0)))


def bin_midpoints(edges: list[float], minimum: float, maximum: float) -> np.ndarray:
    """A representative value per bin; the two open outer bins are closed at the training
    minimum and maximum (a value beyond them is treated as if it were at them)."""
    bounds = np.concatenate([[minimum], np.asarray(edges, dtype=np.float64), [maximum]])
    # Quantile edges can sit on the minimum or maximum; never let a bound cross its neighbour.
    bounds = np.maximum.accumulate(bounds)
    mids: np.ndarray = (bounds[:-1] + bounds[1:]) / 2
    return mids


def wasserstein_binned(
    reference: Any, current: Any, edges: list[float], minimum: float, maximum: float
) -> float:
    """Earth mover's distance (W1) with each bin's mass placed at its midpoint.

    Mass inside a bin moving within that bin is invisible, so this approximates the exact
    W1 to within about one bin width, and underestimates shifts beyond the training range.

    >>> round(wasserstein_binned([10, 10, 0], [0, 10, 10], [1.0, 2.0], 0.0, 3.0), 4)
    1.0
    """
    p, q = _shares(reference, current)
    mids = bin_midpoints(edges, minimum, maximum)
    if mids.size != p.size:
        raise PlinthError(
            f"{p.size} bins but {mids.size} midpoints from {len(edges)} edges.",
            code="drift.shape_mismatch",
            hint="Pass the edges of the bins the counts were taken on.",
            status=500,
        )
    # W1 in one dimension is the area between the two CDFs.
    gap = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    return float(np.sum(gap * np.diff(mids)))


def ks_binned(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov D from the binned CDFs, with its asymptotic p-value.

    D is only evaluated at the bin edges, so it is a lower bound of the exact KS D and the
    p-value an upper bound: the test errs towards fewer alarms, never more. The p-value is
    the Kolmogorov limit P(K > D * sqrt(n m / (n + m))).

    >>> rng = np.random.default_rng(0)
    >>> edges = np.linspace(-2, 2, 9)
    >>> ref = np.bincount(np.searchsorted(edges, rng.normal(0, 1, 2000)), minlength=10)
    >>> cur = np.bincount(np.searchsorted(edges, rng.normal(0.3, 1, 300)), minlength=10)
    >>> d, p = ks_binned(ref, cur)
    >>> round(d, 4), round(p, 4)
    (0.095, 0.018)
    """
    p, q = _shares(reference, current)
    n, m = float(np.sum(reference)), float(np.sum(current))
    d = float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
    effective = math.sqrt(n * m / (n + m))
    return d, float(stats.kstwobign.sf(d * effective))


def chi_square(reference: Any, current: Any) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x K table of counts: (statistic, p-value).

    Bins empty on both sides are dropped (they carry no information and would divide by
    zero); with two bins left scipy applies Yates' continuity correction.

    >>> stat, p = chi_square([500, 300, 200, 0], [45, 30, 15, 10])
    >>> round(stat, 2), round(p, 8)
    (101.62, 0.0)
    """
    _shares(reference, current)
    table = np.vstack([np.asarray(reference), np.asarray(current)]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def two_proportion_z(
    hits_reference: int, n_reference: int, hits_current: int, n_current: int
) -> tuple[float, float]:
    """Pooled two-proportion z test: (z, two-sided p-value); z > 0 when the rate rose.

    >>> z, p = two_proportion_z(10, 1000, 12, 200)
    >>> round(z, 3), f"{p:.1e}"
    (4.812, '1.5e-06')
    """
    if n_reference <= 0 or n_current <= 0:
        raise PlinthError(
            "A proportion needs at least one row on each side.",
            code="drift.empty_counts",
            hint="Skip features with no rows in the interval.",
            status=500,
        )
    pooled = (hits_reference + hits_current) / (n_reference + n_current)
    if pooled in (0.0, 1.0):
        return 0.0, 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_reference + 1 / n_current))
    z = (hits_current / n_current - hits_reference / n_reference) / se
    return z, float(2 * stats.norm.sf(abs(z)))


# ---------------------------------------------------------------------- configuration

#: Methods whose score is a p-value: drift when p < threshold.
TESTS = frozenset({"ks", "chi_square"})
#: Methods whose score is a distance: drift when score > threshold.
DISTANCES = frozenset({"psi", "jensen_shannon", "wasserstein"})
_KINDS = {
    "ks": {"numeric"},
    "chi_square": {"numeric", "categorical"},
    "psi": {"numeric", "categorical"},
    "jensen_shannon": {"numeric", "categorical"},
    "wasserstein": {"numeric"},
}


@dataclass(frozen=True)
class Detector:
    """A method and its threshold (a p-value level for tests, a distance otherwise)."""

    method: str
    threshold: float

    def __post_init__(self) -> None:
        if self.method not in _KINDS:
            raise ConfigError(
                f"Unknown drift method {self.method!r}.",
                code="config.drift_method",
                hint=f"Use one of {sorted(_KINDS)}.",
            )


@dataclass(frozen=True)
class DriftConfig:
    """Which detector judges which feature, and when a whole dataset counts as drifted.

    Below ``small_sample`` current values a feature is judged by a test, at or above it by
    a distance. ``overrides`` pins one feature to a detector whatever the sample size.
    Null and unseen rates are judged by a two-proportion z test: drift needs both
    p < ``rate_alpha`` and a change of at least ``rate_min_change`` (one percentage point),
    so one stray value in a clean column, or a tiny change in a huge sample, is not an alarm.
    """

    small_sample: int = 1000
    numeric_small: Detector = Detector("ks", 0.05)
    numeric_large: Detector = Detector("psi", 0.2)
    categorical_small: Detector = Detector("chi_square", 0.05)
    categorical_large: Detector = Detector("jensen_shannon", 0.1)
    rate_alpha: float = 0.01
    rate_min_change: float = 0.01
    dataset_share: float = 0.5
    psi_epsilon: float = PSI_EPSILON
    overrides: Mapping[str, Detector] = field(default_factory=dict)

    def detector_for(self, bins: FeatureBins, n_current: int) -> Detector:
        chosen = self.overrides.get(bins.name)
        if chosen is None:
            small = n_current < self.small_sample
            if bins.kind == "numeric":
                chosen = self.numeric_small if small else self.numeric_large
            else:
                chosen = self.categorical_small if small else self.categorical_large
        if bins.kind not in _KINDS[chosen.method]:
            raise ConfigError(
                f"Drift method {chosen.method!r} does not apply to {bins.kind} feature "
                f"{bins.name!r}.",
                code="config.drift_method",
                hint=f"{chosen.method} works on {sorted(_KINDS[chosen.method])} features.",
            )
        return chosen


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class DriftResult:
    """One verdict on one feature by one method; ``p_value`` is None for distances."""

    feature: str
    method: str
    score: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetDrift:
    """Per-feature results, the share of input features that drifted, and the verdict.

    ``output`` holds the prediction and confidence results; they are reported but do not
    count towards the share, which is about the inputs.
    """

    share_drifted: float
    drifted: bool
    results: list[DriftResult]
    output: list[DriftResult] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        seen = dict.fromkeys(r.feature for r in self.results if r.drifted)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "share_drifted": self.share_drifted,
            "drifted": self.drifted,
            "drifted_features": self.drifted_features,
            "results": [r.to_dict() for r in self.results],
            "output": [r.to_dict() for r in self.output],
        }


def _distribution(
    ref: FeatureBins, cur: FeatureBins, detector: Detector, config: DriftConfig
) -> DriftResult:
    method, score, p_value = detector.method, 0.0, None
    if method == "ks":
        score, p_value = ks_binned(ref.counts, cur.counts)
    elif method == "chi_square":
        score, p_value = chi_square(ref.counts, cur.counts)
    elif method == "psi":
        score = psi(ref.counts, cur.counts, epsilon=config.psi_epsilon)
    elif method == "jensen_shannon":
        score = js_distance(ref.counts, cur.counts)
    else:  # wasserstein, in reference standard deviations so one threshold fits every unit
        assert ref.edges is not None and ref.minimum is not None and ref.maximum is not None
        raw = wasserstein_binned(ref.counts, cur.counts, ref.edges, ref.minimum, ref.maximum)
        spread = ref.std() or 0.0
        score = raw / spread if spread > 0 else raw
    # A test drifts on a small p-value, a distance on a large score.
    drifted = p_value < detector.threshold if p_value is not None else score > detector.threshold
    return DriftResult(
        ref.name, method, score, p_value, detector.threshold, drifted, ref.total, cur.total
    )


def _rate(
    name: str, method: str, hits: tuple[int, int], sizes: tuple[int, int], config: DriftConfig
) -> DriftResult:
    _, p_value = two_proportion_z(hits[0], sizes[0], hits[1], sizes[1])
    change = hits[1] / sizes[1] - hits[0] / sizes[0]
    drifted = p_value < config.rate_alpha and abs(change) >= config.rate_min_change
    return DriftResult(name, method, change, p_value, config.rate_alpha, drifted, *sizes)


def feature_drift(
    reference: FeatureBins, current: FeatureBins, config: DriftConfig | None = None
) -> list[DriftResult]:
    """Distribution drift (by the configured detector), null-rate and unseen-rate change.

    The distribution result is left out when either side has no values; the null-rate
    result then still says why. ``score`` of a rate result is the change in rate.

    >>> rng = np.random.default_rng(0)
    >>> import pandas as pd
    >>> train = pd.DataFrame({"x": rng.normal(0, 1, 2000)})
    >>> reference = Profile.fit(train, {"x": "numeric"})
    >>> live = reference.empty_like()
    >>> live.update(pd.DataFrame({"x": rng.normal(0.5, 1, 300)}))
    >>> for r in feature_drift(reference.features_["x"], live.features_["x"]):
    ...     print(r.method, round(r.score, 4), f"{r.p_value:.1e}", r.drifted)
    ks 0.1667 1.0e-06 True
    null_rate 0.0 1.0e+00 False
    """
    config = config or DriftConfig()
    reference.check_compatible(current)
    results: list[DriftResult] = []
    if reference.total > 0 and current.total > 0:
        detector = config.detector_for(reference, current.total)
        results.append(_distribution(reference, current, detector, config))
    if reference.rows > 0 and current.rows > 0:
        sizes = (reference.rows, current.rows)
        results.append(_rate(reference.name, "null_rate", (reference.nulls, current.nulls),
                             sizes, config))  # fmt: skip
    if reference.kind == "categorical" and reference.total > 0 and current.total > 0:
        unseen = (int(reference.counts[-1]), int(current.counts[-1]))
        results.append(
            _rate(reference.name, "unseen_rate", unseen, (reference.total, current.total), config)
        )
    return results


def dataset_drift(
    reference: Profile, current: Profile, config: DriftConfig | None = None
) -> DatasetDrift:
    """Every input feature judged, and the dataset drifted when at least
    ``config.dataset_share`` of them did (a feature drifts if any of its results does).

    >>> rng = np.random.default_rng(0)
    >>> import pandas as pd
    >>> def frame(n, shift):
    ...     return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n)})
    >>> kinds = {"a": "numeric", "b": "numeric"}
    >>> reference = Profile.fit(frame(2000, 0.0), kinds)
    >>> live = reference.empty_like()
    >>> live.update(frame(500, 1.0))
    >>> report = dataset_drift(reference, live)
    >>> report.share_drifted, report.drifted, report.drifted_features
    (0.5, True, ['a'])
    """
    config = config or DriftConfig()
    reference._check_fitted()
    current._check_fitted()
    if list(reference.features_) != list(current.features_):
        raise PlinthError(
            "The profiles have different features.",
            code="profile.incompatible",
            hint="Compare an interval profile built with reference.empty_like().",
            status=500,
        )
    results: list[DriftResult] = []
    judged = drifted = 0
    for name, ref in reference.features_.items():
        found = feature_drift(ref, current.features_[name], config)
        results.extend(found)
        if found:
            judged += 1
            drifted += any(r.drifted for r in found)
    output: list[DriftResult] = []
    for ref_section, cur_section in (
        (reference.output_, current.output_),
        (reference.confidence_, current.confidence_),
    ):
        if ref_section is not None and cur_section is not None:
            output.extend(feature_drift(ref_section, cur_section, config))
    share = drifted / judged if judged else 0.0
    return DatasetDrift(share, judged > 0 and share >= config.dataset_share, results, output)
