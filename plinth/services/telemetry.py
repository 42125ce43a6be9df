"""Prometheus metrics for the request path, updated once per batch, not per record.

Names follow Prometheus conventions: ``plinth_*_total`` counters, ``*_seconds``
histograms in base units, with buckets from 100 µs to 10 s so p99 is meaningful.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05,
    0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000)

REQUESTS = Counter(
    "plinth_requests",
    "Prediction requests answered, by model, version, route and outcome.",
    ["model", "version", "route", "outcome"],
)
RECORDS = Counter(
    "plinth_records",
    "Records scored (a request may carry many).",
    ["model", "version", "route"],
)
STORE_UP = Gauge(
    "plinth_store_up",
    "1 while the prediction log commits, 0 from a commit that failed because the store "
    "was unavailable until the next that worked (predictions are refused meanwhile).",
    multiprocess_mode="livemin",
)
SHED = Counter(
    "plinth_requests_shed",
    "Prediction requests refused at admission (503 server.overloaded): the model's queue "
    "was full or could not answer them before their deadline.",
    ["model"],
)
REQUEST_SECONDS = Histogram(
    "plinth_request_duration_seconds",
    "Time from receiving a prediction request to having its reply ready.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
MODEL_SECONDS = Histogram(
    "plinth_model_duration_seconds",
    "Time spent inside one batch's model call.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
BATCH_RECORDS = Histogram(
    "plinth_batch_records",
    "Records per model call (adaptive batching).",
    ["model"],
    buckets=BATCH_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "plinth_batch_queue_seconds",
    "Time a request waited, from arrival until its batch went to the model.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
VALIDATION_PROBLEMS = Counter(
    "plinth_validation_problems",
    "Input contract problems, by field and code.",
    ["model", "field", "code"],
)
MODEL_ERRORS = Counter(
    "plinth_model_errors",
    "Model failures: raised, bad output, deadline.",
    ["model", "version", "code"],
)
LOG_COMMIT_SECONDS = Histogram(
    "plinth_log_commit_duration_seconds",
    "Time to commit one group of prediction log rows.",
    buckets=LATENCY_BUCKETS,
)
LOG_COMMIT_ROWS = Histogram(
    "plinth_log_commit_rows",
    "Prediction log rows per group commit.",
    buckets=BATCH_BUCKETS,
)
LOG_PENDING_ROWS = Gauge(
    "plinth_log_pending_rows",
    "Prediction log rows waiting for their commit.",
    multiprocess_mode="livesum",
)

# -- Monitoring (issue 3): set by the one alert evaluator; "mostrecent" so that with several
# workers the newest value wins, even after the evaluator's lease moves to another worker.
DRIFT_SCORE = Gauge(
    "plinth_drift_score",
    "Latest drift score per input feature or output section (method in the label).",
    ["model", "version", "feature", "method"],
    multiprocess_mode="mostrecent",
)
DRIFT_DETECTED = Gauge(
    "plinth_drift_detected",
    "1 when the feature drifted in the latest evaluation window, else 0.",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)
DATASET_DRIFT_SHARE = Gauge(
    "plinth_dataset_drift_share",
    "Share of input features that drifted in the latest evaluation window.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
ALERT_FIRING = Gauge(
    "plinth_alert_firing",
    "1 while an alert rule is firing for the model, else 0.",
    ["model", "rule"],
    multiprocess_mode="mostrecent",
)

# -- Retraining (issue 13): counted by whichever worker ran the job.
TRAINING_JOBS = Counter(
    "plinth_training_jobs",
    "Training jobs finished, by model and outcome (succeeded, rejected, failed).",
    ["model", "outcome"],
)
TRAINING_SECONDS = Histogram(
    "plinth_training_duration_seconds",
    "Wall time of one training job, from claim to its end (data, training, gate, registration).",
    ["model"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value (of one labelled child), one update per bucket.

    A batch's latencies then cost one locked increment per bucket they land in and one for
    the sum, instead of a bucket scan and two locked increments per request. Uses the
    client's bucket internals (stable since its first releases); without them, plain
    ``observe``.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    if not values:
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    counts = [0] * len(bounds)
    last = len(bounds) - 1
    for value in values:
        # observe() counts a value in the first bucket whose bound is >= it (NaN: none).
        if value == value:
            counts[min(bisect_left(bounds, value), last)] += 1
    total.inc(sum(values))
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
