"""A whole series through an EWMA chart at once, for reports over thousands of intervals.

``EWMAChart.update`` judges one interval as it arrives (what the alert evaluator does);
a report over 30 days of one-minute intervals charts 43,200 points per statistic, so here the
recursion runs as one linear filter and the exact time-varying limits in closed form. The
result equals feeding the points one by one to ``EWMAChart(lam, L).fit(mean, std)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class EWMASeries:
    """Every point's smoothed value, limits and verdict."""

    values: np.ndarray
    ewma: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    breach: np.ndarray


def ewma_series(
    values: np.ndarray,
    mean: float,
    std: float,
    *,
    lam: float = 0.2,
    L: float = 3.0,  # noqa: N803 (textbook name)
) -> EWMASeries:
    """z_t = lam x_t + (1 - lam) z_{t-1} from z_0 = mean, limits mean +- L sigma_t.

    >>> s = ewma_series(np.array([0.0, 3.0, 3.0]), 0.0, 1.0)
    >>> s.ewma.round(3).tolist(), s.breach.tolist()
    ([0.0, 0.6, 1.08], [False, False, True])
    """
    x = np.asarray(values, dtype=np.float64)
    z, _ = signal.lfilter([lam], [1.0, -(1.0 - lam)], x, zi=[(1.0 - lam) * mean])
    t = np.arange(1, x.size + 1)
    width = L * std * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
    lower, upper = mean - width, mean + width
    breach = (z < lower) | (z > upper)
    return EWMASeries(x, z, lower, upper, breach)
