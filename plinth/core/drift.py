"""Has live traffic moved away from training? Distances and tests on binned counts.

Every statistic here takes two count vectors over the same bins (reference, current), so it
runs on merged interval profiles and never on raw rows. Binning is an approximation, and each
function says which way it errs; ``docs/monitoring.md`` has the formulas and the defaults.

Small samples are judged by a test (is the difference more than chance?), large samples by a
distance (is the difference big enough to matter?) that its test must confirm, because with
enough rows every test rejects and with few rows every distance is noise; below a minimum
sample nothing is judged. A bin the reference left empty never dominates a test: sparse bins
are pooled, and values the reference never had are judged as a share, with a tolerance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import special, stats

from plinth.core.drift_config import MIN_EXPECTED, PSI_EPSILON, Detector, DriftConfig
from plinth.core.profile import FeatureBins, Profile
from plinth.errors import (
    DriftShapeMismatchError,
    EmptyCountsError,
    IncompatibleProfileError,
)


def _shares(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise DriftShapeMismatchError(
            f"Count vectors must share one shape, got {ref.shape} and {cur.shape}."
        )
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise EmptyCountsError("A count vector is empty; there is nothing to compare.")
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
        raise DriftShapeMismatchError(
            f"{p.size} bins but {mids.size} midpoints from {len(edges)} edges.",
            hint="Pass the edges of the bins the counts were taken on.",
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


def pool_sparse(table: Any, min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """A 2 x K table with its sparse columns merged, so that no expected count is tiny.

    Columns whose smaller expected count (row total x column total / grand total) is below
    ``min_expected`` are merged into one, together with the next smallest columns until the
    merged column reaches ``min_expected`` too; the merged column goes last, and at least two
    columns are always kept. Empty columns are dropped first. This is Cochran's rule for the
    chi-square approximation, and it is what keeps a bin that is empty on one side (a value
    the reference never had) from dominating the statistic with a term of about N / n.

    >>> pool_sparse([[400, 300, 200, 10, 0], [40, 30, 20, 1, 1]]).tolist()
    [[400, 300, 210], [40, 30, 22]]
    """
    counts = np.asarray(table, dtype=np.int64)
    filled: np.ndarray = counts[:, counts.sum(axis=0) > 0]
    k = filled.shape[1]
    if k <= 2:
        return filled
    totals = filled.sum(axis=0)
    order = np.argsort(totals, kind="stable")
    expected = totals[order] * filled.sum(axis=1).min() / totals.sum()
    merge = int(np.count_nonzero(expected < min_expected))
    if merge == 0:
        return filled
    # Take the next smallest column until the merged one is not sparse either.
    reached = np.flatnonzero(np.cumsum(expected) >= min_expected)
    merge = min(max(merge, int(reached[0]) + 1 if reached.size else k), k - 1)
    pooled = np.zeros(k, dtype=bool)
    pooled[order[:merge]] = True
    merged: np.ndarray = np.hstack(
        [filled[:, ~pooled], filled[:, pooled].sum(axis=1, keepdims=True)]
    )
    return merged


def chi_square(
    reference: Any, current: Any, *, min_expected: float = MIN_EXPECTED
) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x K table of counts: (statistic, p-value).

    Sparse bins are pooled first (``pool_sparse``), so a bin empty in the reference cannot
    dominate the test. The statistic is Pearson's, without continuity correction; when two
    bins are left and one is still sparse, the p-value is Fisher's exact test's.

    >>> stat, p = chi_square([500, 300, 200, 0], [45, 30, 15, 10])
    >>> round(stat, 2), round(p, 4)
    (1.57, 0.4562)
    >>> stat, p = chi_square([500, 300, 200], [25, 30, 45])
    >>> round(stat, 2), f"{p:.1e}"
    (37.41, '7.5e-09')
    """
    _shares(reference, current)
    table = pool_sparse(np.vstack([np.asarray(reference), np.asarray(current)]), min_expected)
    bins = table.shape[1]
    if bins < 2:
        return 0.0, 1.0
    # Pearson's statistic by hand: chi2_contingency costs ~40x more, and this runs per feature.
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    if bins == 2 and expected.min() < min_expected:  # exact where the approximation is not
        return statistic, float(stats.fisher_exact(table).pvalue)
    return statistic, float(special.chdtrc(bins - 1, statistic))


def rate_test(
    hits_reference: int,
    n_reference: int,
    hits_current: int,
    n_current: int,
    *,
    min_change: float = 0.0,
) -> tuple[float, float]:
    """Change in a rate (current minus reference), and the p-value that it is real and
    larger than ``min_change``.

    Two exact tests must both reject (an intersection-union test, so the p-value is the
    larger of the two): Fisher's exact test that the rates differ at all, which allows for
    chance in both samples; and a binomial test of the current count against the reference
    rate moved by ``min_change`` towards it (two-sided), which tolerates changes up to
    ``min_change``. Exact at any size: one stray value in a small window is not a change of
    one in twenty, and a rate that is zero in the reference by construction (a category
    training never had) does not make every later value significant.

    >>> change, p = rate_test(0, 43000, 1, 246, min_change=0.01)  # one stray value
    >>> round(change, 4), round(p, 4)
    (0.0041, 1.0)
    >>> change, p = rate_test(0, 43000, 49, 246, min_change=0.01)  # a new 20 % category
    >>> round(change, 4), f"{p:.1e}"
    (0.1992, '4.0e-47')
    """
    if n_reference <= 0 or n_current <= 0:
        raise EmptyCountsError(
            "A proportion needs at least one row on each side.",
            hint="Skip features with no rows in the interval.",
        )
    rate = hits_reference / n_reference
    change = hits_current / n_current - rate
    if change == 0 or hits_reference + hits_current in (0, n_reference + n_current):
        return change, 1.0  # nothing moved: the common case of a clean column, decided cheaply
    # Binomial tails by scipy.special: the same values as stats.binom, 100x cheaper.
    if change > 0:
        bound = rate + min_change
        beyond = float(special.bdtrc(hits_current - 1, n_current, bound)) if bound < 1 else 1.0
    else:
        bound = rate - min_change
        beyond = float(special.bdtr(hits_current, n_current, bound)) if bound > 0 else 1.0
    beyond = min(2 * beyond, 1.0)
    if beyond == 1.0:
        return change, 1.0  # within the tolerance: Fisher's test (ms on large counts) is moot
    table = [[hits_reference, n_reference - hits_reference],
             [hits_current, n_current - hits_current]]  # fmt: skip
    return change, max(float(stats.fisher_exact(table).pvalue), beyond)


def two_proportion_z(
    hits_reference: int, n_reference: int, hits_current: int, n_current: int
) -> tuple[float, float]:
    """Pooled two-proportion z test: (z, two-sided p-value); z > 0 when the rate rose.

    A normal approximation, poor for rare events in small samples; the drift rules use the
    exact ``rate_test``.

    >>> z, p = two_proportion_z(10, 1000, 12, 200)
    >>> round(z, 3), f"{p:.1e}"
    (4.812, '1.5e-06')
    """
    if n_reference <= 0 or n_current <= 0:
        raise EmptyCountsError(
            "A proportion needs at least one row on each side.",
            hint="Skip features with no rows in the interval.",
        )
    pooled = (hits_reference + hits_current) / (n_reference + n_current)
    if pooled in (0.0, 1.0):
        return 0.0, 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_reference + 1 / n_current))
    z = (hits_current / n_current - hits_reference / n_reference) / se
    return z, float(2 * stats.norm.sf(abs(z)))


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class DriftResult:
    """One verdict on one feature by one method.

    ``p_value`` is the test's; for a distance it is the chance test's (chi-square) that the
    distance also needs. ``insufficient``: too few values to judge, so neither drifted nor
    stable (``verdict`` says which of the three).
    """

    feature: str
    method: str
    score: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    insufficient: bool = False
    #: The level ``p_value`` was held to; Holm's correction may hold it to a stricter one.
    alpha: float | None = None

    @property
    def verdict(self) -> str:
        """``drifted``, ``stable`` or ``insufficient`` (too few values to judge)."""
        return "insufficient" if self.insufficient else "drifted" if self.drifted else "stable"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["insufficient"]
        data["verdict"] = self.verdict
        return data


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


def _split(ref: FeatureBins, cur: FeatureBins) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The counts a distribution is judged on, and the unseen counts judged apart.

    A categorical feature's distribution is its categories that the reference holds;
    values in the unseen slot or in a category the reference has none of (a class the
    holdout never predicted, a category missing from a ``previous`` window) are "unseen"
    and go to the rate test. A bin empty in the reference would otherwise turn one stray
    value in the window into a term of about N / n in the chi-square.
    """
    if ref.kind != "categorical":
        return ref.counts, cur.counts, 0, 0
    held = ref.counts[:-1] > 0
    unseen = int(cur.counts[-1]) + int(cur.counts[:-1][~held].sum())
    return ref.counts[:-1][held], cur.counts[:-1][held], int(ref.counts[-1]), unseen


def _distribution(
    ref: FeatureBins, cur: FeatureBins, detector: Detector, config: DriftConfig
) -> DriftResult:
    method, score, p_value = detector.method, 0.0, None
    r, c, _, _ = _split(ref, cur)
    n_ref, n_cur = int(r.sum()), int(c.sum())
    if min(n_ref, n_cur) < config.min_values:
        return DriftResult(
            ref.name, method, 0.0, None, detector.threshold, False, n_ref, n_cur, True
        )
    if method == "ks":
        score, p_value = ks_binned(r, c)
    elif method == "chi_square":
        score, p_value = chi_square(r, c, min_expected=config.min_expected)
    elif method == "psi":
        score = psi(r, c, epsilon=config.psi_epsilon)
    elif method == "jensen_shannon":
        score = js_distance(r, c)
    else:  # wasserstein, in reference standard deviations so one threshold fits every unit
        assert ref.edges is not None and ref.minimum is not None and ref.maximum is not None
        raw = wasserstein_binned(r, c, ref.edges, ref.minimum, ref.maximum)
        spread = ref.std() or 0.0
        score = raw / spread if spread > 0 else raw
    if p_value is not None:  # a test drifts on a small p-value
        alpha = detector.threshold
        drifted = p_value < alpha
    else:  # a distance on a large score that is also more than chance
        _, p_value = chi_square(r, c, min_expected=config.min_expected)
        alpha = config.distance_alpha
        drifted = score > detector.threshold and p_value < alpha
    return DriftResult(
        ref.name, method, score, p_value, detector.threshold, drifted, n_ref, n_cur, alpha=alpha
    )


def _rate(
    name: str,
    method: str,
    hits: tuple[int, int],
    sizes: tuple[int, int],
    config: DriftConfig,
    min_change: float,
) -> DriftResult:
    change, p_value = rate_test(hits[0], sizes[0], hits[1], sizes[1], min_change=min_change)
    drifted = p_value < config.rate_alpha
    return DriftResult(
        name, method, change, p_value, config.rate_alpha, drifted, *sizes, alpha=config.rate_alpha
    )


def feature_drift(
    reference: FeatureBins, current: FeatureBins, config: DriftConfig | None = None
) -> list[DriftResult]:
    """Distribution drift (by the configured detector), null-rate and unseen-rate change.

    The distribution result is left out when either side has no values; the null-rate
    result then still says why. It is ``insufficient`` below ``config.min_values`` values.
    For a categorical feature the distribution covers the categories the reference holds,
    and the unseen rate every other value (see ``_split``). ``score`` of a rate result is
    the change in rate.

    >>> rng = np.random.default_rng(0)
    >>> import pandas as pd
    >>> train = pd.DataFrame({"x": rng.normal(0, 1, 2000)})
    >>> reference = Profile.fit(train, {"x": "numeric"})
    >>> live = reference.empty_like()
    >>> live.update(pd.DataFrame({"x": rng.normal(0.5, 1, 300)}))
    >>> for r in feature_drift(reference.features_["x"], live.features_["x"]):
    ...     print(r.method, round(r.score, 4), f"{r.p_value:.1e}", r.verdict)
    ks 0.1667 1.0e-06 drifted
    null_rate 0.0 1.0e+00 stable

    One value of a category the reference never had, among 246 (issue 11): the unseen slot
    is judged on its own, and 0.4 % is below the tolerated change of one point.

    >>> cuts = ["Ideal", "Premium", "Very Good", "Good", "Fair"]
    >>> shares = [0.40, 0.255, 0.224, 0.091, 0.03]
    >>> train = pd.DataFrame({"cut": rng.choice(cuts, 43000, p=shares)})
    >>> reference = Profile.fit(train, {"cut": "categorical"})
    >>> live = reference.empty_like()
    >>> live.update(pd.DataFrame({"cut": [*rng.choice(cuts, 245, p=shares), "Perfect"]}))
    >>> for r in feature_drift(reference.features_["cut"], live.features_["cut"]):
    ...     print(r.method, round(r.score, 4), f"{r.p_value:.1e}", r.verdict)
    chi_square 4.5918 3.3e-01 stable
    null_rate 0.0 1.0e+00 stable
    unseen_rate 0.0041 1.0e+00 stable
    """
    config = config or DriftConfig()
    reference.check_compatible(current)
    results: list[DriftResult] = []
    if reference.total > 0 and current.total > 0:
        _, compared, _, _ = _split(reference, current)
        detector = config.detector_for(reference, int(compared.sum()))
        results.append(_distribution(reference, current, detector, config))
    if reference.rows > 0 and current.rows > 0:
        sizes = (reference.rows, current.rows)
        results.append(_rate(reference.name, "null_rate", (reference.nulls, current.nulls),
                             sizes, config, config.rate_min_change))  # fmt: skip
    if reference.kind == "categorical" and reference.total > 0 and current.total > 0:
        *_, unseen_reference, unseen_current = _split(reference, current)
        unseen = (unseen_reference, unseen_current)
        sizes = (reference.total, current.total)
        results.append(_rate(reference.name, "unseen_rate", unseen, sizes, config,
                             config.unseen_min_change))  # fmt: skip
    return results


def holm(results: list[DriftResult], family_alpha: float | None) -> list[DriftResult]:
    """``results`` with ``drifted`` kept only where Holm's step-down procedure at
    ``family_alpha`` also rejects (every judged result with a p-value is one hypothesis).

    >>> def r(p):
    ...     return DriftResult("f", "ks", 0.1, p, 0.05, p < 0.05, 100, 100, alpha=0.05)
    >>> [x.drifted for x in holm([r(0.0002), r(0.0004), r(0.03)], 0.001)]
    [True, True, False]
    """
    if family_alpha is None:
        return results
    tested = [
        i
        for i, result in enumerate(results)
        if result.p_value is not None and not result.insufficient
    ]
    order = sorted(tested, key=lambda i: results[i].p_value or 0.0)
    passed: set[int] = set()
    for rank, i in enumerate(order):
        if (results[i].p_value or 0.0) > family_alpha / (len(order) - rank):
            break
        passed.add(i)
    return [
        result if not result.drifted or i in passed else replace(result, drifted=False)
        for i, result in enumerate(results)
    ]


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
        raise IncompatibleProfileError(
            "The profiles have different features.",
            hint="Compare an interval profile built with reference.empty_like().",
        )
    results: list[DriftResult] = []
    for name, ref in reference.features_.items():
        results.extend(feature_drift(ref, current.features_[name], config))
    results = holm(results, config.family_alpha)
    judged = len({r.feature for r in results})
    drifted = len({r.feature for r in results if r.drifted})
    output: list[DriftResult] = []
    for ref_section, cur_section in (
        (reference.output_, current.output_),
        (reference.confidence_, current.confidence_),
    ):
        if ref_section is not None and cur_section is not None:
            output.extend(feature_drift(ref_section, cur_section, config))
    output = holm(output, config.family_alpha)
    share = drifted / judged if judged else 0.0
    return DatasetDrift(share, judged > 0 and share >= config.dataset_share, results, output)
