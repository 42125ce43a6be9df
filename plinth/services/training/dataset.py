"""The training set and the holdout of one job, built as of one cut-off.

Rows come from the sources the policy names, each tagged with where it came from:

- ``reference``: the champion's own training table, kept with the version at registration;
- ``traffic``: labelled predictions of the last ``window`` before the cut-off, with the
  features *as served* (the prediction log's repaired features, what the model saw) and the
  label *as known at the cut-off* (``TrainingStore.labelled_traffic``), never a later one;
- ``table``: an external CSV/Parquet file, or ``sql`` run on a PostgreSQL URL.

The holdout is the newest ``holdout_share`` of the labelled traffic by prediction time, so
the candidate is judged on the most recent regime and on rows it never trained on; older
traffic and every other source go to training. Without enough labelled traffic the
champion's registered holdout table is the judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from plinth.config.policies import TrainingPolicy
from plinth.errors import NoTrainingDataError
from plinth.services.datasets import frame_sha256, read_table
from plinth.services.registry.versions import Registry
from plinth.store import VersionRecord
from plinth.store.external import read_sql
from plinth.store.training import LabelledRow, TrainingStore

#: The column holding each training row's sample weight in the file a trainer reads.
WEIGHT = "__plinth_weight__"


@dataclass
class TrainingSet:
    """What a trainer gets and what the gate judges on, with a summary for the job."""

    train: pd.DataFrame  # features + target (+ WEIGHT when traffic rows weigh differently)
    holdout: pd.DataFrame  # features + target
    target: str
    features: list[str]
    holdout_source: str
    summary: dict[str, Any] = field(default_factory=dict)


def build_training_set(
    policy: TrainingPolicy,
    champion: VersionRecord,
    registry: Registry,
    jobs: TrainingStore,
    cutoff: datetime,
    *,
    workdir: Path | None = None,
) -> TrainingSet:
    """Gather, split and fingerprint the rows of one job as of ``cutoff``."""
    lineage = champion.metadata.get("lineage") or {}
    target = policy.target or str(lineage.get("target") or "")
    features = [str(f) for f in lineage.get("features") or []]
    if not target or not features:
        raise NoTrainingDataError(
            f"{champion.ref} does not record its target and features, so no training set "
            "can be built for it.",
            hint="Set [models.NAME.training] target, or register the champion with plinth "
            "register (which records both).",
        )
    data = policy.data
    columns = [*features, target]
    # Sources in this order: traffic (the newest rows win when max_rows cuts), then the rest.
    parts: list[pd.DataFrame] = []
    sources: dict[str, int] = {}

    traffic_rows: list[LabelledRow] = []
    if data.traffic:
        traffic_rows = jobs.labelled_traffic(
            champion.name, cutoff - data.window, cutoff, limit=data.max_rows
        )
    traffic = _traffic_frame(traffic_rows, features, target)
    # The newest share, at least min_rows of it, as long as as many rows are left to train on.
    n_holdout = max(policy.holdout_min_rows, round(len(traffic) * policy.holdout_share))
    if len(traffic) < 2 * n_holdout and len(traffic) * policy.holdout_share < n_holdout:
        n_holdout = 0
    holdout = traffic.iloc[len(traffic) - n_holdout :] if n_holdout else traffic.iloc[:0]
    trained_traffic = traffic.iloc[: len(traffic) - n_holdout]
    holdout_source = "traffic"
    if n_holdout == 0:
        registered = registry.table(champion, "holdout")
        if registered is None or registered.empty:
            holdout_source = "none"
            holdout = traffic.iloc[:0]
        else:
            holdout = _conform(registered, columns, "the registered holdout")
            holdout_source = "registered holdout"
    if len(trained_traffic):
        frame = trained_traffic.drop(columns=["__ts"])
        frame[WEIGHT] = data.traffic_weight
        parts.append(frame)
        sources["traffic"] = len(frame)
    if data.reference:
        reference = registry.table(champion, "train")
        if reference is not None:
            frame = _conform(reference, columns, f"{champion.ref}'s training table")
            frame[WEIGHT] = 1.0
            parts.append(frame)
            sources["reference"] = len(frame)
    if data.table is not None or data.sql is not None:
        if data.table is not None:
            path = Path(data.table)
            if not path.is_absolute() and workdir is not None:
                path = workdir / path
            external, what = read_table(path), str(data.table)
        else:
            assert data.sql is not None and data.url is not None
            external, what = read_sql(data.url, data.sql), "the sql source"
        frame = _conform(external, columns, what)
        frame[WEIGHT] = 1.0
        parts.append(frame)
        sources["table"] = len(frame)

    train = _within(parts, data.max_rows, policy.seed, "traffic" in sources, columns)
    train = train.dropna(subset=[target])
    if train.empty:
        raise NoTrainingDataError(f"No training rows for {champion.name}: sources {sources}.")
    if holdout.empty:
        raise NoTrainingDataError(
            f"No holdout for {champion.name}: {len(traffic)} labelled predictions in the "
            f"window (at least {2 * policy.holdout_min_rows} needed) and no registered "
            "holdout table.",
        )
    if (train[WEIGHT] == 1.0).all():
        train = train.drop(columns=[WEIGHT])
    holdout = holdout[columns].reset_index(drop=True)
    summary = {
        "cutoff": cutoff.isoformat(),
        "sources": sources,
        "rows": len(train),
        "holdout_rows": len(holdout),
        "holdout_source": holdout_source,
        "labelled_traffic": len(traffic),
        "sha256": frame_sha256(train),
        "holdout_sha256": frame_sha256(holdout),
        "target": target,
        "features": features,
    }
    if traffic_rows:
        summary["traffic_range"] = [
            traffic_rows[0].ts.isoformat(),
            traffic_rows[-1].ts.isoformat(),
        ]
        summary["label_coverage"] = _coverage(traffic_rows)
    return TrainingSet(
        train.reset_index(drop=True), holdout, target, features, holdout_source, summary
    )


def _within(
    parts: list[pd.DataFrame], max_rows: int, seed: int, traffic_first: bool, columns: list[str]
) -> pd.DataFrame:
    """At most ``max_rows``: the newest labelled traffic first, then a seeded random sample
    of the other sources (a table's order says nothing about time)."""
    if not parts:
        return pd.DataFrame(columns=columns)
    traffic, rest = (parts[0], parts[1:]) if traffic_first else (parts[0].iloc[:0], parts)
    traffic = traffic.iloc[max(len(traffic) - max_rows, 0) :]
    others = pd.concat(rest, ignore_index=True) if rest else traffic.iloc[:0]
    room = max_rows - len(traffic)
    if len(others) > room:
        others = others.sample(n=room, random_state=seed)
    return pd.concat([traffic, others], ignore_index=True)


def _traffic_frame(rows: list[LabelledRow], features: list[str], target: str) -> pd.DataFrame:
    """Oldest first; one column per feature as served, the label as the target."""
    if not rows:
        return pd.DataFrame(columns=[*features, target, "__ts"])
    records = [{**{f: r.features.get(f) for f in features}, target: r.label} for r in rows]
    frame = pd.DataFrame.from_records(records, columns=[*features, target])
    frame["__ts"] = [r.ts for r in rows]
    return frame


def _conform(frame: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NoTrainingDataError(
            f"{what} lacks the columns {missing[:10]} (needs the champion's features and target).",
        )
    return frame[columns].copy()


def _coverage(rows: list[LabelledRow]) -> dict[str, int]:
    by_version: dict[str, int] = {}
    for r in rows:
        by_version[str(r.version)] = by_version.get(str(r.version), 0) + 1
    return by_version
