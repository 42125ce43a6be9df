"""What estimation and review need from the training data, fitted once at registration.

Registration fits four things the request path later relies on:

- the calibrated ``PerformanceEstimator`` (classifiers; small, kept in the version's
  metadata as ``estimator``);
- up to ``BACKGROUND_ROWS`` background rows for attribution;
- a ``NeighbourIndex`` over up to ``NEIGHBOUR_ROWS`` training rows with their labels (the
  reviewer's precedent);
- the out-of-distribution reference (``plinth.core.review.OutOfDistribution``): each of
  those same rows scored against the others, leave-one-out, so the ``ood`` gate of a
  regressor is ready the moment the version is loaded and never rebuilt while serving;

plus the holdout's gate measure (to predict the share of traffic a gate will send).

The last three are hundreds of kilobytes, and the version row is read by every listing
and every load, so they go into one content-addressed JSON artifact beside the model file
(``$PLINTH_HOME/artifacts/<sha256>``, sha256-checked on every read); the version's
metadata keeps only a pointer and a summary under ``review_context``.

Versions registered before this layout kept the documents inline under
``review_context``; they still load. Those versions never stored an OOD reference: when an
``ood`` gate asks for one, it is built from the version's stored neighbour sample, once per
worker, with a warning in the log saying so (re-registering stores it properly).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from plinth.core.contract import Contract
from plinth.core.estimation import PerformanceEstimator
from plinth.core.neighbours import NeighbourIndex
from plinth.core.output import OutputContract
from plinth.core.review import OutOfDistribution
from plinth.errors import ArtifactMissingError, NoOodReferenceError, PlinthError
from plinth.flavors.base import read_verified
from plinth.store.artifacts import ArtifactStore

log = logging.getLogger("plinth.review")

#: Registration keeps these bounded: a brute-force search over them answers in milliseconds.
NEIGHBOUR_ROWS = 1000
BACKGROUND_ROWS = 100
HOLDOUT_SCORES = 2000
#: Neighbours averaged for the out-of-distribution score.
OOD_K = 5
ASSETS_FORMAT = "plinth.review-assets/1"


@dataclass
class Registration:
    """What ``registration_metadata`` fitted: small metadata and the assets document."""

    metadata: dict[str, Any]
    assets: dict[str, Any]


def registration_metadata(
    contract: Contract,
    output: OutputContract,
    train_features: pd.DataFrame,
    train_target: pd.Series,
    holdout_probabilities: np.ndarray | None,
    holdout_target: pd.Series,
    holdout_confidence: np.ndarray | None,
    split: str,
    *,
    seed: int = 0,
) -> Registration:
    """Fit the estimator (classifiers), the background sample, the neighbour index and the
    OOD reference over it, and keep a sample of the holdout's gate measure."""
    metadata: dict[str, Any] = {}
    if output.task == "classification" and holdout_probabilities is not None:
        try:
            estimator = PerformanceEstimator(seed=seed).fit(
                holdout_probabilities, _plain_list(holdout_target), output.classes or []
            )
            metadata["estimator"] = {"fitted_on": split, **estimator.to_dict()}
        except PlinthError as exc:
            metadata["estimator"] = {"error": exc.message}
    rng = np.random.default_rng(seed)
    n = len(train_features)
    pick = np.sort(rng.choice(n, min(n, BACKGROUND_ROWS), replace=False))
    frame = contract.frame(_json_records(train_features))
    kinds = {f.name: f.kind for f in contract.fields}
    assets: dict[str, Any] = {
        "format": ASSETS_FORMAT,
        "background": _json_records(train_features.iloc[pick]),
        "errors": {},
    }
    try:
        index = NeighbourIndex(max_rows=NEIGHBOUR_ROWS, seed=seed).fit(
            frame, kinds, labels=_plain_list(train_target)
        )
        assets["neighbours"] = index.to_dict()
        # The OOD reference shares the neighbour sample: only its scores are stored.
        ood = OutOfDistribution(k=OOD_K).fit_index(index)
        assets["ood"] = ood.to_dict(with_index=False)
    except PlinthError as exc:
        assets["errors"]["neighbours"] = exc.message
    if holdout_confidence is not None and len(holdout_confidence):
        scores = np.asarray(holdout_confidence, dtype=float)
        if scores.size > HOLDOUT_SCORES:
            scores = rng.choice(scores, HOLDOUT_SCORES, replace=False)
        assets["holdout_confidence"] = np.sort(scores).round(6).tolist()
    return Registration(metadata, assets)


def store_assets(artifacts: ArtifactStore, assets: Mapping[str, Any]) -> dict[str, Any]:
    """Write the assets document as a content-addressed artifact; return the small
    ``review_context`` entry for the version's metadata (pointer plus summary)."""
    data = orjson.dumps(assets, option=orjson.OPT_SERIALIZE_NUMPY)
    digest = artifacts.put(data)
    neighbours = assets.get("neighbours") or {}
    return {
        "assets": {"sha256": digest, "bytes": len(data), "format": ASSETS_FORMAT},
        "background_rows": len(assets.get("background") or []),
        "neighbour_rows": len(neighbours.get("ids") or []),
        "ood": "ood" in assets,
        "holdout_scores": len(assets.get("holdout_confidence") or []),
        **({"errors": assets["errors"]} if assets.get("errors") else {}),
    }


@dataclass
class ReviewAssets:
    """The parsed assets of one version, loaded once per worker (``ServedModel``)."""

    background: list[dict[str, Any]] = field(default_factory=list)
    neighbours: NeighbourIndex | None = None
    ood: OutOfDistribution | None = None
    holdout_confidence: list[float] = field(default_factory=list)
    # "artifact" (this layout), "inline" (versions registered before it) or "none".
    source: str = "none"

    def ood_scorer(self, ref: str) -> OutOfDistribution:
        """The OOD reference stored at registration; for versions registered before it was
        stored, built now from the stored neighbour sample (logged once) or refused."""
        if self.ood is not None:
            return self.ood
        if self.neighbours is None or self.neighbours.n_rows_ < 2:
            raise NoOodReferenceError(
                f"{ref} has no out-of-distribution reference and no training sample to "
                "build one from, so it cannot be gated on ood.",
            )
        self.ood = OutOfDistribution(k=OOD_K).fit_index(self.neighbours.copy())
        log.warning(
            "%s was registered before the OOD reference was stored with the version; built it "
            "from the version's stored %d-row training sample in this worker. Register the "
            "model again to store it at registration.",
            ref,
            self.neighbours.n_rows_,
        )
        return self.ood


def load_assets(metadata: Mapping[str, Any], artifacts: ArtifactStore | None) -> ReviewAssets:
    """Read a version's review assets: the artifact its metadata points to (sha256 checked)
    or, for versions registered before that layout, the documents kept inline."""
    context = metadata.get("review_context") or {}
    pointer = context.get("assets")
    if pointer is None:
        document: Mapping[str, Any] = context
        source = "inline" if context else "none"
    else:
        document = orjson.loads(_read_checked(artifacts, str(pointer["sha256"])))
        source = "artifact"
    neighbours = None
    if document.get("neighbours"):
        neighbours = NeighbourIndex.from_dict(document["neighbours"])
    ood = None
    if document.get("ood"):
        # The stored reference scores the neighbour sample: it must never see added rows.
        base = None if neighbours is None else neighbours.copy()
        ood = OutOfDistribution.from_dict(document["ood"], index=base)
    return ReviewAssets(
        background=list(document.get("background") or []),
        neighbours=neighbours,
        ood=ood,
        holdout_confidence=[float(v) for v in document.get("holdout_confidence") or []],
        source=source,
    )


def _read_checked(artifacts: ArtifactStore | None, sha256: str) -> bytes:
    if artifacts is None:
        raise ArtifactMissingError(
            "This version keeps its review assets in the artifact store, which was not given.",
            hint="Load the version through Registry.load.",
        )
    return read_verified(artifacts.path(sha256), sha256, "Review assets")


def _plain_list(values: Any) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in pd.Series(values).tolist()]


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.astype(object).to_dict(orient="records")
    return [{str(k): _json_value(v) for k, v in row.items()} for row in rows]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
