"""What a retrained candidate must show to replace its champion: the settings of the gate.

No statistics here (the gate itself is ``plinth.core.gate``), so reading plinth.toml's
``[models.NAME.retrain.gate]`` never loads scipy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must show; every field has a default that works on a laptop."""

    absolute: Mapping[str, float] = field(default_factory=dict)
    max_regression: float = 0.02
    alpha: float = 0.05
    require_improvement: bool = False
    bootstrap: int = 2000
    slices: tuple[str, ...] = ()
    slice_max_regression: float = 0.10
    slice_min_rows: int = 30
    contract: Literal["block", "report"] = "block"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["absolute"] = dict(self.absolute)
        out["slices"] = list(self.slices)
        return out
