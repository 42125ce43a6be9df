"""BentoML 1.4 service for the reference forest, with BentoML's adaptive batching on.

Started by the harness as `bentoml serve bentoml_service:Forest` inside bench/.venvs/bentoml;
the model path comes from BENCH_MODEL so the file stays importable without arguments.
"""

from __future__ import annotations

import os
import warnings

import bentoml
import joblib
import numpy as np

warnings.filterwarnings("ignore", message="X does not have valid feature names")

# Batch limits as in BENCHMARKING.md: up to 64 rows; the latency bound is generous so BentoML
# batches instead of rejecting requests with 503 when its latency estimate is pessimistic.
MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "10000"))


# Access log off, as for every server in the run: the comparison is of serving, not logging.
@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Forest:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(input)
