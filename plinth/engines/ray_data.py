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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from plinth.config.settings import Settings
from plinth.services.batch_scoring import (
    BatchSummary,
    answers_frame,
    score_frame,
    startup_objects_frozen,
)

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
        registry, store, policies = self.runtime.registry, self.runtime.store, self.runtime.policies
        self.model = registry.load(store.get_version(job.name, job.version))
        self.model.review = policies.review(self.model.name)
        self.model.log_policy = policies.log(self.model.name)  # what must not be logged
        self.log = self.runtime.log_writer()
        self.reviews = self.runtime.review_writer()

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        with startup_objects_frozen():
            scored, _ = score_frame(self.model, block, self.log, reviews=self.reviews)
        while self.reviews.pending_contexts():  # the reviewer's context, before we return
            time.sleep(0.05)
        # Only the answers travel back: the driver has the input rows already.
        return scored.drop(columns=list(block.columns))


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
        answered = (
            ray.data.from_pandas(blocks)
            .map_batches(
                ScoreBlocks,
                fn_constructor_args=(job,),
                batch_format="pandas",
                batch_size=block_rows,
                compute=ray.data.ActorPoolStrategy(size=size),
                num_cpus=1,
            )
            .iter_batches(batch_size=None, batch_format="pandas")
        )
        answers = _collect(answered)
    finally:
        if started_here:
            ray.shutdown()
    if len(answers) != len(frame):  # pragma: no cover - Ray returns every row it was given
        raise RuntimeError(f"Ray returned {len(answers)} answers for {len(frame)} rows")
    scored = pd.concat([frame.reset_index(drop=True), answers], axis=1)
    return scored, _summary(scored)


def _blocks(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """The table cut into blocks on the driver: a repartition would be a Ray task that needs
    a CPU the scoring actors already hold, and the run would wait for ever."""
    return [frame.iloc[i : i + rows] for i in range(0, max(len(frame), 1), rows)]


def _collect(blocks: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The answer blocks as one frame built the way local scoring builds it (plain lists,
    then one constructor), so the two outputs have the same columns and dtypes: Ray hands
    blocks back through Arrow, with Arrow-backed dtypes, and a block whose rows all
    failed has only its ``error`` column."""
    columns: dict[str, list[Any]] = {}
    rows = 0
    for block in blocks:
        for name in block.columns:
            series = block[name]
            values = series.astype(object).where(series.notna(), None).tolist()
            columns.setdefault(str(name), [None] * rows).extend(values)
        rows += len(block)
        for values in columns.values():
            values.extend([None] * (rows - len(values)))
    return answers_frame(columns, rows)


def _summary(scored: pd.DataFrame) -> BatchSummary:
    errors: Any = scored.get("error", pd.Series([""] * len(scored)))
    failed = int((errors.fillna("") != "").sum())
    warnings: Any = scored.get("warnings", pd.Series([""] * len(scored)))
    warned = int((warnings.fillna("") != "").sum())
    reviewed = 0
    if "review_id" in scored:
        reviewed = int((scored["review_id"].fillna("") != "").sum())
    return BatchSummary(len(scored), len(scored) - failed, failed, warned, reviewed)
