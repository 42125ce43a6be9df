"""Which drift detector judges which feature: the plain settings of ``plinth.core.drift``.

No statistics here, so reading plinth.toml (``[monitoring.drift]``) never loads scipy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plinth.errors import DriftMethodError

if TYPE_CHECKING:
    from plinth.core.profile import FeatureBins

#: Floor for an empty bin's share in PSI, so that ln(q/p) stays finite. With 1e-4 a bin that
#: is empty on one side and holds share s on the other adds about s * ln(s / 1e-4) (0.46 for
#: s = 0.05): a new mode is loud but one stray value in a big sample is not.
PSI_EPSILON = 1e-4

#: Smallest expected count a chi-square bin may have; sparser bins are pooled (Cochran's rule).
MIN_EXPECTED = 5.0

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
            raise DriftMethodError(
                f"Unknown drift method {self.method!r}.",
                hint=f"Use one of {sorted(_KINDS)}.",
            )


@dataclass(frozen=True)
class DriftConfig:
    """Which detector judges which feature, and when a whole dataset counts as drifted.

    Below ``min_values`` values on either side a feature's distribution is not judged (its
    result says ``insufficient``): no test or distance means much there. Below
    ``small_sample`` current values it is judged by a test, at or above it by a distance,
    and a distance also needs its difference to be more than chance (chi-square on the
    same bins, p < ``distance_alpha``), because a distance's chance level grows with the
    number of bins and can pass its threshold on its own. ``overrides`` pins one feature to
    a detector whatever the sample size. Chi-square pools bins whose expected count is
    below ``min_expected``. A categorical feature's unseen values are left out of its
    distribution and judged on their own, like the null rate, by exact tests
    (``rate_test``): drift needs p < ``rate_alpha`` for a change beyond ``rate_min_change``
    (nulls) or ``unseen_min_change`` (unseen), so one stray value, or a tiny change in a
    huge sample, is not an alarm.

    Every feature brings up to three tests, so a window of 20 features is some 50 chances
    for one to pass by luck. ``family_alpha`` bounds that: across one window's input
    features (and, separately, its outputs), a result counts as drifted only if its p-value
    also passes Holm's step-down procedure at ``family_alpha`` — the chance that a window
    drawn from the reference itself shows any drifted feature. ``None`` judges each test
    on its own level alone.
    """

    small_sample: int = 1000
    numeric_small: Detector = Detector("ks", 0.05)
    numeric_large: Detector = Detector("psi", 0.2)
    categorical_small: Detector = Detector("chi_square", 0.05)
    categorical_large: Detector = Detector("jensen_shannon", 0.1)
    min_values: int = 30
    min_expected: float = MIN_EXPECTED
    distance_alpha: float = 0.01
    rate_alpha: float = 0.01
    rate_min_change: float = 0.01
    unseen_min_change: float = 0.01
    dataset_share: float = 0.5
    psi_epsilon: float = PSI_EPSILON
    family_alpha: float | None = 0.001
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
            raise DriftMethodError(
                f"Drift method {chosen.method!r} does not apply to {bins.kind} feature "
                f"{bins.name!r}.",
                hint=f"{chosen.method} works on {sorted(_KINDS[chosen.method])} features.",
            )
        return chosen
