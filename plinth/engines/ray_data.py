"""Batch scoring on a Ray cluster: Ray Data splits the table, each Ray worker runs the same
``score_frame`` as ``plinth predict`` does locally (contract, model, log, review gate).

Each worker is a Ray actor that opens Plinth once from the caller's settings (so it needs
the same database, PostgreSQL for a real cluster, and the same artifacts folder) and scores
blocks of rows; every block's log rows are committed (COPY on PostgreSQL) and its review
items stored before the block is handed back, so a finished run has logged every scored
row. Ray restarts a dead worker and retries its block (Ray Data's default); the retried
block is scored and logged again (a prediction id per attempt), so the log holds every
answer at least once, and the output file exactly once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from plinth.config.settings import Settings
from plinth.services.batch_scoring import BatchSummary, score_frame

BLOCK_ROWS = 5_000


@dataclass(frozen=True)
class RayJob:
    """What each Ray worker needs to open Plinth and score one model version."""

    settings_json: str
    name: str
    version: int | None


class ScoreBlocks:
    """The Ray actor: Plinth opened once per worker, then one block after another."""

    def __init__(self, job: RayJob) -> None:
        from plinth.runtime import Runtime

        self.runtime = Runtime.open(Settings.model_validate_json(job.settings_json))
        registry, store = self.runtime.registry, self.runtime.store
        self.model = registry.load(store.get_version(job.name, job.version))
        self.model.review = self.runtime.policies.review(self.model.name)
        self.log = self.runtime.log_writer()
        self.reviews = self.runtime.review_writer()

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        scored, _ = score_frame(self.model, block, self.log, reviews=self.reviews)
        while self.reviews.pending_contexts():  # the reviewer's context, before we return
            time.sleep(0.05)
        return scored


def score_on_ray(
    settings: Settings,
    name: str,
    version: int | None,
    frame: pd.DataFrame,
    *,
    address: str | None = None,
    workers: int | None = None,
    block_rows: int = BLOCK_ROWS,
) -> tuple[pd.DataFrame, BatchSummary]:
    """Score ``frame`` on the Ray cluster at ``address`` (a local one when None); the output
    keeps the input's row order."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=None if address else (workers or os.cpu_count() or 1),
            log_to_driver=False,
            include_dashboard=False,
        )
    try:
        job = RayJob(settings.model_dump_json(), name, version)
        blocks = _blocks(frame.reset_index(drop=True), block_rows)
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        size = max(1, min(workers or cpus, len(blocks)))
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output rows in input order
        scored = (
            ray.data.from_pandas(blocks)
            .map_batches(
                ScoreBlocks,
                fn_constructor_args=(job,),
                batch_format="pandas",
                batch_size=block_rows,
                compute=ray.data.ActorPoolStrategy(size=size),
                num_cpus=1,
            )
            .to_pandas()
        )
    finally:
        if started_here:
            ray.shutdown()
    return scored.reset_index(drop=True), _summary(scored)


def _blocks(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """The table cut into blocks on the driver: a repartition would be a Ray task that needs
    a CPU the scoring actors already hold, and the run would wait for ever."""
    return [frame.iloc[i : i + rows] for i in range(0, max(len(frame), 1), rows)]


def _summary(scored: pd.DataFrame) -> BatchSummary:
    errors: Any = scored.get("error", pd.Series([""] * len(scored)))
    failed = int((errors.fillna("") != "").sum())
    warnings: Any = scored.get("warnings", pd.Series([""] * len(scored)))
    warned = int((warnings.fillna("") != "").sum())
    reviewed = 0
    if "review_id" in scored:
        reviewed = int((scored["review_id"].fillna("") != "").sum())
    return BatchSummary(len(scored), len(scored) - failed, failed, warned, reviewed)
