"""Control charts: catching a small, sustained change in a per-interval statistic.

A drift test compares one interval with training; a control chart watches the sequence of
intervals (a feature's mean per minute, the mean confidence, the error rate) and accumulates
evidence, so it catches a shift too small to show in any single interval. Charts are fitted
on reference values, then fed one interval statistic at a time.

Detection delay of the default EWMA chart (lam=0.2, L=3), from 2000 simulated runs: a
sustained shift of 0.5 standard deviations of the charted statistic is caught after 33
intervals at the median and within 130 intervals in 95 % of runs; a ramp that reaches 0.5
sigma over 20 intervals, after 44 (median) and 145 (95 %). In control, the average run to a
false alarm is about 520 intervals. ``tests/core/test_control.py`` checks these bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

from plinth.errors import InvalidChartInputError, NotFittedError, PlinthError


def _not_fitted(chart: str) -> PlinthError:
    return NotFittedError(
        f"This {chart} has no reference yet.",
        hint=f"Call {chart}(...).fit(reference_mean, reference_std) or .fit_warmup(values) "
        "before update().",
    )


def _finite(x: float) -> float:
    value = float(x)
    if not math.isfinite(value):
        raise InvalidChartInputError(
            f"A chart point must be a finite number, got {x!r}.",
            hint="Skip intervals with no data instead of charting them.",
        )
    return value


def _warmup_stats(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size < 2 or not np.all(np.isfinite(data)):
        raise InvalidChartInputError(
            "Warm-up needs at least two finite values.",
            hint="Collect a few in-control intervals first (20 or more gives a stable sigma).",
        )
    return float(data.mean()), float(data.std(ddof=1))


def _check_reference(mean: float, std: float) -> tuple[float, float]:
    mean, std = _finite(mean), _finite(std)
    if std <= 0:
        raise InvalidChartInputError(
            f"The reference standard deviation must be positive, got {std}.",
            hint="A constant statistic cannot be charted; chart a different one.",
        )
    return mean, std


@dataclass(frozen=True)
class ChartPoint:
    """One charted interval: its value, the smoothed value, the limits, and the verdict."""

    value: float
    ewma: float
    lower: float
    upper: float
    breach: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EWMAChart:
    """Exponentially weighted moving average chart with exact time-varying limits.

    z_t = lam * x_t + (1 - lam) * z_{t-1}, z_0 = mean; limits at
    mean +- L * sigma * sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 t))), so the first
    intervals are judged by their real, narrower spread. ``sigma`` is the standard deviation
    of the charted statistic itself: for an interval mean of n rows, feature_std / sqrt(n).

    >>> rng = np.random.default_rng(0)
    >>> chart = EWMAChart(lam=0.2, L=3.0).fit(reference_mean=0.0, reference_std=1.0)
    >>> points = [chart.update(x) for x in rng.normal(1.0, 1.0, 30)]
    >>> next(i for i, p in enumerate(points, 1) if p.breach)
    7
    >>> p = points[6]
    >>> round(p.ewma, 3), round(p.upper, 3)
    (1.102, 0.978)
    """

    mean_: float
    std_: float
    ewma_: float
    t_: int

    def __init__(self, lam: float = 0.2, L: float = 3.0) -> None:  # noqa: N803 (textbook name)
        self.lam = lam
        self.L = L

    def _validate(self) -> None:
        if not 0 < self.lam <= 1 or self.L <= 0:
            raise InvalidChartInputError(
                f"lam={self.lam} must be in (0, 1] and L={self.L} positive.",
                hint="lam=0.2, L=3.0 is the textbook choice for shifts of 0.5 to 1 sigma.",
            )

    def fit(self, reference_mean: float, reference_std: float) -> Self:
        """Centre and spread of the charted statistic when all is well."""
        self._validate()
        self.mean_, self.std_ = _check_reference(reference_mean, reference_std)
        self.reset()
        return self

    def fit_warmup(self, values: Sequence[float] | np.ndarray) -> Self:
        """Estimate centre and spread from in-control intervals (sample std, ddof=1)."""
        return self.fit(*_warmup_stats(values))

    def reset(self) -> None:
        """Start again from the centre, e.g. after the cause of an alarm was fixed."""
        if not hasattr(self, "mean_"):
            raise _not_fitted("EWMAChart")
        self.ewma_ = self.mean_
        self.t_ = 0

    def limits(self, t: int) -> tuple[float, float]:
        """Control limits for the t-th point (t >= 1)."""
        if not hasattr(self, "mean_"):
            raise _not_fitted("EWMAChart")
        lam = self.lam
        width = self.L * self.std_ * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
        return self.mean_ - width, self.mean_ + width

    def update(self, x: float) -> ChartPoint:
        """Fold in one interval's statistic and judge it."""
        if not hasattr(self, "mean_"):
            raise _not_fitted("EWMAChart")
        value = _finite(x)
        self.t_ += 1
        self.ewma_ = self.lam * value + (1 - self.lam) * self.ewma_
        lower, upper = self.limits(self.t_)
        return ChartPoint(value, self.ewma_, lower, upper, not lower <= self.ewma_ <= upper)

    def to_dict(self) -> dict[str, Any]:
        """Parameters and state, JSON-ready, so a worker can resume the chart."""
        if not hasattr(self, "mean_"):
            raise _not_fitted("EWMAChart")
        return {"lam": self.lam, "L": self.L, "mean": self.mean_, "std": self.std_,
                "ewma": self.ewma_, "t": self.t_}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EWMAChart:
        chart = cls(lam=float(data["lam"]), L=float(data["L"])).fit(data["mean"], data["std"])
        chart.ewma_, chart.t_ = float(data["ewma"]), int(data["t"])
        return chart


@dataclass(frozen=True)
class CusumPoint:
    """One CUSUM step: the value, the upper and lower cumulative sums (in sigmas), the
    decision limit ``h``, and the verdict."""

    value: float
    high: float
    low: float
    limit: float
    breach: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CUSUMChart:
    """Tabular CUSUM on the standardised statistic z = (x - mean) / sigma.

    high_t = max(0, high_{t-1} + z - k), low_t = max(0, low_{t-1} - z - k); alarm when either
    exceeds h. k = 0.5, h = 5 is tuned to a 1-sigma shift (caught in about 10 intervals);
    a 0.5-sigma step takes 30 at the median, and a false alarm comes about once per 425.

    >>> rng = np.random.default_rng(0)
    >>> chart = CUSUMChart(k=0.5, h=5.0).fit(reference_mean=0.0, reference_std=1.0)
    >>> points = [chart.update(x) for x in rng.normal(1.0, 1.0, 30)]
    >>> next(i for i, p in enumerate(points, 1) if p.breach)
    7
    >>> round(points[6].high, 3)
    5.369
    """

    mean_: float
    std_: float
    high_: float
    low_: float
    t_: int

    def __init__(self, k: float = 0.5, h: float = 5.0) -> None:
        self.k = k
        self.h = h

    def fit(self, reference_mean: float, reference_std: float) -> Self:
        if self.k < 0 or self.h <= 0:
            raise InvalidChartInputError(
                f"k={self.k} must be >= 0 and h={self.h} positive.",
                hint="k is half the shift to detect (in sigmas); h=5 gives few false alarms.",
            )
        self.mean_, self.std_ = _check_reference(reference_mean, reference_std)
        self.reset()
        return self

    def fit_warmup(self, values: Sequence[float] | np.ndarray) -> Self:
        return self.fit(*_warmup_stats(values))

    def reset(self) -> None:
        if not hasattr(self, "mean_"):
            raise _not_fitted("CUSUMChart")
        self.high_ = self.low_ = 0.0
        self.t_ = 0

    def update(self, x: float) -> CusumPoint:
        if not hasattr(self, "mean_"):
            raise _not_fitted("CUSUMChart")
        value = _finite(x)
        z = (value - self.mean_) / self.std_
        self.t_ += 1
        self.high_ = max(0.0, self.high_ + z - self.k)
        self.low_ = max(0.0, self.low_ - z - self.k)
        breach = self.high_ > self.h or self.low_ > self.h
        return CusumPoint(value, self.high_, self.low_, self.h, breach)

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "mean_"):
            raise _not_fitted("CUSUMChart")
        return {"k": self.k, "h": self.h, "mean": self.mean_, "std": self.std_,
                "high": self.high_, "low": self.low_, "t": self.t_}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CUSUMChart:
        chart = cls(k=float(data["k"]), h=float(data["h"])).fit(data["mean"], data["std"])
        chart.high_, chart.low_, chart.t_ = float(data["high"]), float(data["low"]), int(data["t"])
        return chart
