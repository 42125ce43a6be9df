"""The overload bench's model: a forest behind a fixed per-call wait, like an accelerator.

A model whose call holds the GIL (a scikit-learn forest in pure Python loops) starves the
server's event loop on a saturated core, so past capacity requests wait unread in the
socket backlog, where no admission control can see them. The bench measures admission,
so its model spends its call cost off the GIL (as GPU, ONNX Runtime or remote models do):
``seconds`` per call whatever the batch size, then the forest's own (small) cost.
"""

from __future__ import annotations

import time
from typing import Any


class FixedCostModel:
    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.classes_ = inner.classes_
        self.feature_names_in_ = inner.feature_names_in_
        self.n_features_in_ = inner.n_features_in_

    def predict(self, frame: Any) -> Any:
        time.sleep(self.seconds)
        return self.inner.predict(frame)

    def predict_proba(self, frame: Any) -> Any:
        time.sleep(self.seconds)
        return self.inner.predict_proba(frame)
