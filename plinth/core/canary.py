"""Is the canary at least as good as the champion? Decision rules on two arms' evidence.

The evidence is what monitoring already keeps per version: request and error counts, a
latency histogram in the fixed buckets of ``plinth.core.interval``, output counts over shared
bins and, when labels exist, one loss per labelled prediction. Each check asks one question
with a one-sided test, so a noisy handful of requests never rolls a canary back, and a
difference too small to matter never does either (every limit has a tolerance):

- ``error_rate`` / ``fallback_rate``: is the canary's rate above the champion's plus a margin?
  Agresti-Caffo adjusted two-proportion z test (add one success and one failure per arm), which
  stays sensible when an arm has no errors at all.
- ``p95_latency``: is the canary's p95 above ``max(champion p95 x (1 + increase), champion p95
  + slack)``? A binomial test on the share of canary requests slower than that limit: if the
  canary's p95 were at the limit, at most 5 % of its requests would be slower.
- ``output_distance``: Jensen-Shannon distance between the arms' output distributions, failing
  only when it is above the limit *and* a chi-square test of homogeneity says it is not chance.
- ``performance`` (labels): is the canary's mean loss (0/1 for classes, absolute error for
  values, or 1 - a user ``scorer``'s score) above the champion's x (1 + increase)?
  One-sided Welch z test; skipped below ``min_labels`` labels per arm.

The verdict: ``wait`` until both arms have ``min_requests``; then ``rollback`` as soon as a
check fails (stopping harm does not wait for the minimum duration); ``promote`` once every
evaluated check passes and ``min_duration_s`` has passed; otherwise ``wait``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from plinth.core.canary_policy import CanaryPolicy
from plinth.core.drift import chi_square, js_distance
from plinth.core.interval import LATENCY_BOUNDS, histogram_quantile
from plinth.core.profile import FeatureBins

Decision = Literal["promote", "rollback", "wait"]
#: The quantile the latency check judges.
LATENCY_QUANTILE = 0.95


@dataclass(frozen=True)
class ArmEvidence:
    """One arm (canary or champion) over the canary's lifetime.

    ``requests`` excludes the caller's mistakes (contract errors); ``errors`` are the model's
    failures; ``fallbacks`` are requests the fallback chain had to answer (failures plus
    answers slower than the deadline). ``latency`` holds counts in ``LATENCY_BOUNDS`` buckets;
    ``p95_s`` stands in when only a quantile is known. ``outputs`` are counts over bins
    shared by both arms; ``losses`` one value per labelled prediction.
    """

    requests: int
    errors: int = 0
    fallbacks: int = 0
    latency: np.ndarray | None = None
    p95_s: float | None = None
    outputs: np.ndarray | None = None
    losses: np.ndarray | None = None

    def p95(self) -> float | None:
        if self.latency is not None and int(np.sum(self.latency)) > 0:
            return histogram_quantile(np.asarray(self.latency), LATENCY_QUANTILE)
        return self.p95_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "error_rate": _rate(self.errors, self.requests),
            "fallback_rate": _rate(self.fallbacks, self.requests),
            "p95_ms": None if (p := self.p95()) is None else round(p * 1000.0, 3),
            "outputs": None if self.outputs is None else [float(x) for x in self.outputs],
            "labelled": None if self.losses is None else len(self.losses),
            "mean_loss": None
            if self.losses is None or len(self.losses) == 0
            else float(np.mean(self.losses)),
        }


@dataclass(frozen=True)
class Check:
    """One check's outcome; ``passed`` is None when it could not be evaluated (see ``note``)."""

    name: str
    canary: float | None
    champion: float | None
    limit: float | None
    passed: bool | None
    p_value: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "canary": self.canary,
            "champion": self.champion,
            "limit": self.limit,
            "passed": self.passed,
            "p_value": self.p_value,
            "note": self.note,
        }

    def describe(self) -> str:
        if self.passed is None:
            return f"{self.name} skipped ({self.note})"
        verdict = "ok" if self.passed else "FAIL"
        shown = "n/a" if self.canary is None else f"{self.canary:.4g}"
        limit = "n/a" if self.limit is None else f"{self.limit:.4g}"
        p = "" if self.p_value is None else f", p={self.p_value:.2g}"
        return f"{self.name} {shown} vs limit {limit}{p}: {verdict}"


@dataclass(frozen=True)
class CanaryVerdict:
    """What the rules say, every check with its numbers, and why."""

    decision: Decision
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return f"{self.decision}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "summary": self.summary,
            "checks": [c.to_dict() for c in self.checks],
            "reasons": list(self.reasons),
        }


def _rate(part: float, whole: float) -> float | None:
    return None if whole <= 0 else part / whole


# ---------------------------------------------------------------------- the checks


def rate_increase_test(
    canary_hits: int, canary_n: int, champion_hits: int, champion_n: int, margin: float
) -> float:
    """One-sided p-value for "the canary's rate exceeds the champion's by more than margin".

    Agresti-Caffo: each arm's rate is (hits + 1) / (n + 2), so an arm with no hits still has
    a variance and the test never divides by zero.

    >>> round(rate_increase_test(40, 200, 10, 1000, 0.01), 6)
    0.0
    >>> round(rate_increase_test(2, 200, 10, 1000, 0.01), 3)
    0.749
    """
    pc = (canary_hits + 1) / (canary_n + 2)
    ph = (champion_hits + 1) / (champion_n + 2)
    se = math.sqrt(pc * (1 - pc) / (canary_n + 2) + ph * (1 - ph) / (champion_n + 2))
    return float(stats.norm.sf((pc - ph - margin) / se))


def _rate_check(
    name: str, canary: int, n_canary: int, champion: int, n_champion: int, margin: float, a: float
) -> Check:
    p = rate_increase_test(canary, n_canary, champion, n_champion, margin)
    champion_rate = champion / n_champion
    return Check(
        name, canary / n_canary, champion_rate, champion_rate + margin, p >= a, p,
        f"tolerated increase {margin:g}",
    )  # fmt: skip


def slower_than(latency: np.ndarray, limit_s: float) -> float:
    """How many observations of a bucketed histogram exceed ``limit_s`` (geometric interpolation
    inside the bucket holding the limit, as ``histogram_quantile`` does)."""
    counts = np.asarray(latency, dtype=np.float64)
    bucket = int(np.searchsorted(LATENCY_BOUNDS, limit_s, side="left"))
    if bucket >= LATENCY_BOUNDS.size:
        return float(counts[-1])
    above = float(counts[bucket + 1 :].sum())
    upper = float(LATENCY_BOUNDS[bucket])
    lower = float(LATENCY_BOUNDS[bucket - 1]) if bucket > 0 else upper / 10 ** (1 / 16)
    inside = min(max(math.log(upper / limit_s) / math.log(upper / lower), 0.0), 1.0)
    return above + inside * float(counts[bucket])


def _latency_check(canary: ArmEvidence, champion: ArmEvidence, policy: CanaryPolicy) -> Check:
    pc, ph = canary.p95(), champion.p95()
    if pc is None or ph is None:
        return Check("p95_latency", pc, ph, None, None, note="no latency observed")
    limit = max(ph * (1 + policy.max_p95_increase), ph + policy.p95_slack_ms / 1000.0)
    ms = 1000.0
    if canary.latency is None or int(np.sum(canary.latency)) == 0:
        return Check("p95_latency", pc * ms, ph * ms, limit * ms, pc <= limit, note="p95 only")
    n = int(np.sum(canary.latency))
    slower = math.floor(slower_than(canary.latency, limit))  # floor: err towards passing
    # If the canary's p95 were at the limit, at most 5 % of its requests would be slower.
    p = float(stats.binom.sf(slower - 1, n, 1 - LATENCY_QUANTILE)) if slower > 0 else 1.0
    return Check(
        "p95_latency", pc * ms, ph * ms, limit * ms, p >= policy.alpha, p,
        f"{slower} of {n} canary answers slower than the limit (ms)",
    )  # fmt: skip


def _output_check(canary: ArmEvidence, champion: ArmEvidence, policy: CanaryPolicy) -> Check:
    if canary.outputs is None or champion.outputs is None:
        return Check("output_distance", None, None, None, None, note="no output profile")
    c, h = np.asarray(canary.outputs, float), np.asarray(champion.outputs, float)
    if c.shape != h.shape or c.sum() <= 0 or h.sum() <= 0:
        return Check("output_distance", None, None, None, None, note="no comparable outputs")
    distance = js_distance(h, c)
    _, p = chi_square(h, c)
    failed = distance > policy.max_output_distance and p < policy.alpha
    return Check(
        "output_distance", distance, 0.0, policy.max_output_distance, not failed, p,
        "Jensen-Shannon distance from the champion's outputs",
    )  # fmt: skip


def _performance_check(canary: ArmEvidence, champion: ArmEvidence, policy: CanaryPolicy) -> Check:
    lc, lh = canary.losses, champion.losses
    if lc is None or lh is None:
        return Check("performance", None, None, None, None, note="no labels")
    if len(lc) < policy.min_labels or len(lh) < policy.min_labels:
        return Check(
            "performance", None, None, None, None,
            note=f"{len(lc)} and {len(lh)} labels; {policy.min_labels} per arm needed",
        )  # fmt: skip
    mc, mh = float(np.mean(lc)), float(np.mean(lh))
    limit = mh * (1 + policy.max_loss_increase)
    se = math.sqrt(float(np.var(lc, ddof=1)) / len(lc) + float(np.var(lh, ddof=1)) / len(lh))
    p = (0.0 if mc > limit else 1.0) if se == 0 else float(stats.norm.sf((mc - limit) / se))
    return Check(
        "performance", mc, mh, limit, p >= policy.alpha, p, "mean loss on labelled predictions"
    )


def evaluate(
    canary: ArmEvidence,
    champion: ArmEvidence,
    policy: CanaryPolicy,
    *,
    duration_s: float,
) -> CanaryVerdict:
    """Promote, roll back or wait, with every check's numbers.

    >>> rng = np.random.default_rng(7)
    >>> policy = CanaryPolicy(("error_rate", "fallback_rate"), min_requests=200, min_duration_s=60)
    >>> champion = ArmEvidence(2000, errors=int(rng.binomial(2000, 0.01)))
    >>> bad = ArmEvidence(300, errors=int(rng.binomial(300, 0.2)))
    >>> verdict = evaluate(bad, champion, policy, duration_s=30)
    >>> verdict.decision, [(c.name, c.passed) for c in verdict.checks]
    ('rollback', [('error_rate', False), ('fallback_rate', True)])
    >>> verdict.reasons
    ['error_rate 0.2067 vs limit 0.0205, p=7e-16: FAIL']
    >>> good = ArmEvidence(300, errors=int(rng.binomial(300, 0.01)))
    >>> evaluate(good, champion, policy, duration_s=30).decision
    'wait'
    >>> evaluate(good, champion, policy, duration_s=90).summary
    'promote: every check passed after 90 s'
    """
    checks: list[Check] = []
    if "error_rate" in policy.checks and canary.requests > 0 and champion.requests > 0:
        checks.append(
            _rate_check(
                "error_rate",
                canary.errors,
                canary.requests,
                champion.errors,
                champion.requests,
                policy.max_error_rate_increase,
                policy.alpha,
            )
        )
    if "fallback_rate" in policy.checks and canary.requests > 0 and champion.requests > 0:
        checks.append(
            _rate_check(
                "fallback_rate",
                canary.fallbacks,
                canary.requests,
                champion.fallbacks,
                champion.requests,
                policy.max_fallback_rate_increase,
                policy.alpha,
            )
        )
    if "p95_latency" in policy.checks:
        checks.append(_latency_check(canary, champion, policy))
    if "output_distance" in policy.checks:
        checks.append(_output_check(canary, champion, policy))
    if "performance" in policy.checks:
        checks.append(_performance_check(canary, champion, policy))

    short = [
        f"{arm} has {n} of {policy.min_requests} requests"
        for arm, n in (("canary", canary.requests), ("champion", champion.requests))
        if n < policy.min_requests
    ]
    if short:
        return CanaryVerdict("wait", checks, short)
    failed = [c for c in checks if c.passed is False]
    if failed:
        return CanaryVerdict("rollback", checks, [c.describe() for c in failed])
    if duration_s < policy.min_duration_s:
        return CanaryVerdict(
            "wait", checks, [f"{duration_s:.0f} of {policy.min_duration_s:g} s observed"]
        )
    skipped = [c.describe() for c in checks if c.passed is None]
    return CanaryVerdict(
        "promote", checks, [f"every check passed after {duration_s:.0f} s", *skipped]
    )


# ---------------------------------------------------------------------- output bins


def shared_output_counts(
    champion: FeatureBins, canary: FeatureBins
) -> tuple[np.ndarray, np.ndarray] | None:
    """Both arms' output counts over the champion's bins, or None when they cannot meet.

    Classes are matched by label (a class one arm never predicts counts zero there). Numeric
    outputs with different bin edges (each version's bins come from its own holdout) are
    re-binned onto the champion's edges by interpolating the canary's binned CDF linearly
    between its edges, with its recorded minimum and maximum as the outer ends — an
    approximation that only matters inside a bin.

    >>> h = FeatureBins("p", "numeric", [0.0, 1.0], None, -1.0, 2.0, [10, 10, 10])
    >>> c = FeatureBins("p", "numeric", [0.5], None, -1.0, 2.0, [20, 20])
    >>> [a.round(2).tolist() for a in shared_output_counts(h, c)]
    [[10.0, 10.0, 10.0], [13.33, 13.33, 13.33]]
    """
    if champion.kind != canary.kind:
        return None
    h = champion.counts.astype(np.float64)
    if champion.kind == "categorical":
        cats = [str(x) for x in champion.categories or []]
        c = np.zeros(len(cats) + 1)
        for category, count in zip(
            [str(x) for x in canary.categories or []], canary.counts[:-1], strict=True
        ):
            c[cats.index(category) if category in cats else len(cats)] += count
        c[len(cats)] += float(canary.counts[-1])
        return h, c
    if champion.edges == canary.edges:
        return h, canary.counts.astype(np.float64)
    edges = list(canary.edges or [])
    total = float(canary.counts.sum())
    if not edges or total <= 0 or not champion.edges:
        return None
    cdf = list(np.cumsum(canary.counts[:-1]) / total)
    xs, ys = list(edges), cdf
    if canary.minimum is not None and canary.minimum < edges[0]:
        xs, ys = [canary.minimum, *xs], [0.0, *ys]
    if canary.maximum is not None and canary.maximum > edges[-1]:
        xs, ys = [*xs, canary.maximum], [*ys, 1.0]
    at = np.interp(np.asarray(champion.edges, float), np.asarray(xs), np.asarray(ys))
    shares = np.diff(np.concatenate([[0.0], at, [1.0]]))
    return h, np.maximum(shares, 0.0) * total
