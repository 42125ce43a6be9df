"""The model registry: turn a trained model and its training table into a version.

A version is immutable: the artifact (content-addressed), its flavor, the input and
output contracts, the reference profile, holdout metrics and lineage. Registering the
same artifact bytes under the same name again returns the existing version.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.contract import Contract, infer_contract
from plinth.core.metrics import classification_metrics, regression_metrics
from plinth.core.output import OutputContract, confidence
from plinth.core.privacy import LogPolicy
from plinth.core.profile import Profile
from plinth.core.review_policy import ReviewPolicy
from plinth.errors import (
    BadOutputOnDataError,
    EmptyTrainingDataError,
    ExamplesError,
    FeatureCountError,
    InvalidModelNameError,
    InvalidTaskError,
    MissingFeaturesError,
    MissingTargetError,
    ModelFailedOnDataError,
    Problem,
    UnknownTargetLabelsError,
)
from plinth.errors.registry import MISSING_FEATURE
from plinth.flavors.base import (
    Flavor,
    LoadedArtifact,
    dump_model,
    load_artifact,
    read_model_file,
    read_verified,
)
from plinth.flavors.remote import FORMAT as FORMAT_REMOTE
from plinth.flavors.remote import RemoteFlavor, RemoteSpec
from plinth.services.datasets import frame_sha256
from plinth.services.registry.lineage import git_commit, library_versions
from plinth.services.registry.review_assets import (
    ReviewAssets,
    load_assets,
    registration_metadata,
    store_assets,
)
from plinth.services.spend import SharedLedger
from plinth.store import Store, VersionRecord
from plinth.store.artifacts import ArtifactStore

log = logging.getLogger("plinth.registry")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UNSEEN_PROBE = "__plinth_unseen_category__"
NULL_PROBE_ROWS = 8  # training rows per field the null probe feeds the model


@dataclass
class ServedModel:
    """A loaded version with everything the request path needs, built once per worker."""

    record: VersionRecord
    flavor: Flavor
    contract: Contract
    output: OutputContract
    # The review gate for this version (plinth.services.review); None serves without one.
    review: ReviewPolicy | None = None
    # What the prediction log keeps of each record ([models.NAME.log]); the default keeps all.
    log_policy: LogPolicy = field(default_factory=LogPolicy)
    # Where the review assets (neighbour index, OOD reference, background) live.
    artifacts: ArtifactStore | None = None
    _assets: ReviewAssets | None = field(default=None, init=False, repr=False, compare=False)
    _assets_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    # Codes of the errors that turned this version's gate off, each logged once.
    gate_refusals: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def review_assets(self) -> ReviewAssets:
        """What registration fitted for the gate and the reviewer's context, read from
        the artifact store (sha256-checked) on first use and kept for this worker."""
        with self._assets_lock:
            if self._assets is None:
                self._assets = load_assets(self.record.metadata, self.artifacts)
            return self._assets

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def sha256(self) -> str:
        return self.record.sha256

    @functools.cached_property
    def field_order(self) -> tuple[str, ...]:
        """The contract's fields in order: how the log stores a record positionally."""
        return tuple(self.contract.feature_names)


class Registry:
    """Registers versions into the store and loads them back safely."""

    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts
        # Every remote version this registry loads pays into one daily total per model
        # name, kept in the store, so workers and replicas share the budget.
        self.ledger = SharedLedger(store)

    def register(
        self,
        model: Any,
        *,
        name: str,
        train: pd.DataFrame,
        target: str,
        holdout: pd.DataFrame | None = None,
        task: str | None = None,
        trust_pickle: bool = False,
        trust_types: list[str] | None = None,
        tags: dict[str, str] | None = None,
        train_sha256: str | None = None,
        workdir: Path | None = None,
        lineage: dict[str, Any] | None = None,
        guard: Callable[[Any, int], None] | None = None,
    ) -> VersionRecord:
        """Record a new version of ``name`` (or return the identical existing one).

        ``model`` is an object, a model file, or an artifact already read (an MLflow
        import); ``lineage`` adds facts about its origin (e.g. ``{"mlflow": {...}}``).
        """
        _check_name(name)
        if isinstance(model, LoadedArtifact):
            artifact = model
        elif isinstance(model, str | Path):
            artifact = read_model_file(
                Path(model), trust_pickle=trust_pickle, trust_types=list(trust_types or [])
            )
        else:
            artifact = dump_model(model, trust_pickle=trust_pickle)
        existing = self.store.find_version(name, artifact.sha256)
        if existing is not None:
            return existing

        features, y = _split_target(train, target, artifact.flavor)
        resolved_task = _resolve_task(task, artifact.flavor, y)
        classes = _classes(artifact.flavor, y, resolved_task)
        _check_labels(y, classes)
        output = OutputContract(task=resolved_task, classes=classes)  # type: ignore[arg-type]
        contract = _with_unseen_policies(infer_contract(features), artifact.flavor, features)
        contract = _with_null_policies(contract, artifact.flavor, output, features)

        if holdout is not None:
            h_features, h_y = _split_target(holdout, target, artifact.flavor)
            h_features = h_features[features.columns]
            split = "holdout"
        else:
            h_features, h_y, split = features, y, "train"
        evaluation = _evaluate(artifact.flavor, output, contract, h_features, h_y)

        profile = Profile.fit(
            contract.frame(_records(features)),
            {f.name: f.kind for f in contract.fields},
            outputs=evaluation.outputs,
            output_kind="categorical" if resolved_task == "classification" else "numeric",
            confidence=evaluation.confidence,
        )
        metadata: dict[str, Any] = {
            "artifact": {
                "format": artifact.format,
                "trusted_types": artifact.trusted_types,
                "bytes": len(artifact.data),
            },
            "contract": contract.to_dict(),
            "output_contract": output.to_dict(),
            "reference_profile": profile.to_dict(),
            "metrics": {"split": split, "rows": len(h_features), **evaluation.metrics},
            "default_output": _default_output(resolved_task, y, classes),
            "lineage": {
                "train_sha256": train_sha256 or frame_sha256(train),
                "train_rows": len(train),
                "target": target,
                "features": list(features.columns),
                "git": git_commit(workdir or Path.cwd()),
                "libraries": library_versions(),
                "params": artifact.flavor.params(),
                "model_class": f"{type(artifact.flavor.model).__module__}."
                f"{type(artifact.flavor.model).__qualname__}",
                **(lineage or {}),
            },
            "tags": dict(tags or {}),
        }
        # Estimated performance and review: the calibrator stays in the metadata; the
        # background, neighbour index and OOD reference go to one content-addressed
        # artifact, so the version row stays small for listings and loads.
        fitted = registration_metadata(
            contract,
            output,
            features,
            y,
            evaluation.probabilities,
            h_y,
            evaluation.confidence,
            split,
        )
        metadata.update(fitted.metadata)
        metadata["review_context"] = store_assets(self.artifacts, fitted.assets)
        # The tables themselves, so retraining can start from them (docs/retraining.md).
        metadata["tables"] = {
            split: stored
            for split, frame in (("train", train), ("holdout", holdout))
            if frame is not None and (stored := _store_table(self.artifacts, frame)) is not None
        }
        self.artifacts.put(artifact.data)
        record = VersionRecord(
            name=name,
            version=0,
            sha256=artifact.sha256,
            flavor=artifact.flavor.name,
            task=resolved_task,
            created_at=datetime.now(UTC),
            metadata=metadata,
        )
        return self.store.add_version(record, guard=guard)

    def table(self, record: VersionRecord, split: str = "train") -> pd.DataFrame | None:
        """The training (or holdout) table stored with a version, sha256-checked; None for
        versions registered before tables were kept, or whose table could not be stored."""
        pointer = (record.metadata.get("tables") or {}).get(split)
        if pointer is None:
            return None
        data = read_verified(self.artifacts.path(pointer["sha256"]), pointer["sha256"], "Table")
        return pd.read_parquet(io.BytesIO(data))

    def register_remote(
        self,
        spec: RemoteSpec,
        *,
        name: str,
        examples: pd.DataFrame,
        tags: dict[str, str] | None = None,
        examples_sha256: str | None = None,
        workdir: Path | None = None,
    ) -> VersionRecord:
        """Record a remote model's spec as a new version of ``name`` (or return the
        identical existing one). The input contract is inferred from example inputs, as
        from a training table; nothing is sent to the endpoint (that costs money and needs
        credentials): ``plinth evaluate`` does that on purpose."""
        _check_name(name)
        data = spec.canonical()
        sha256 = spec.sha256
        existing = self.store.find_version(name, sha256)
        if existing is not None:
            return existing
        if len(examples) == 0 or len(examples.columns) == 0:
            raise ExamplesError("The example inputs are empty.")
        missing = [f for f in spec.fields if f not in examples.columns]
        if missing:
            raise ExamplesError(
                f"The prompt template names fields the examples do not have: {missing}.",
                problems=[
                    Problem(MISSING_FEATURE, f"field {f!r} is not in the examples", field=f)
                    for f in missing
                ],
            )
        contract = infer_contract(examples)
        # A remote model reads any text: a category never seen in the examples passes, and
        # a string field whose every example differs is free text, not a category (it is not
        # binned for drift: each request would be "unseen").
        document = contract.to_dict()
        for f in document["fields"]:
            if f["kind"] != "categorical":
                continue
            f["on_unseen"] = "pass"
            values = examples[f["name"]].dropna()
            if (
                len(values) > 1
                and values.nunique() == len(values)
                and values.map(type).eq(str).all()
            ):
                f.update(kind="text", categories=None)
        contract = Contract.from_dict(document)
        output = OutputContract(task=spec.task, classes=spec.classes)  # type: ignore[arg-type]
        profile = Profile.fit(
            contract.frame(_records(examples)), {f.name: f.kind for f in contract.fields}
        )
        metadata: dict[str, Any] = {
            "artifact": {"format": FORMAT_REMOTE, "trusted_types": [], "bytes": len(data)},
            "contract": contract.to_dict(),
            "output_contract": output.to_dict(),
            "reference_profile": profile.to_dict(),
            "metrics": {"split": "none", "rows": 0},
            "remote": spec.document,
            "lineage": {
                "examples_sha256": examples_sha256 or frame_sha256(examples),
                "example_rows": len(examples),
                "features": list(examples.columns),
                "git": git_commit(workdir or Path.cwd()),
                "libraries": library_versions(),
                "params": RemoteFlavor(spec).params(),
                "model_class": "plinth.flavors.remote.RemoteSpec",
            },
            "tags": dict(tags or {}),
        }
        default = spec.output["default"]
        if default is not None and spec.classes:
            # Uniform: a default is a guess, so a confidence gate sends it to review.
            probabilities = {str(c): 1.0 / len(spec.classes) for c in spec.classes}
            metadata["default_output"] = {"prediction": default, "probabilities": probabilities}
        self.artifacts.put(data)
        record = VersionRecord(
            name=name,
            version=0,
            sha256=sha256,
            flavor=RemoteFlavor.name,
            task=spec.task,
            created_at=datetime.now(UTC),
            metadata=metadata,
        )
        return self.store.add_version(record)

    def load(self, record: VersionRecord) -> ServedModel:
        """Load a version for serving; the artifact's hash is checked on every load."""
        artifact_meta = record.metadata.get("artifact", {})
        loaded: LoadedArtifact = load_artifact(
            self.artifacts.path(record.sha256),
            record.sha256,
            artifact_meta.get("format", "skops"),
            list(artifact_meta.get("trusted_types", [])),
        )
        loaded.flavor.attach(record.name, record.version)
        if isinstance(loaded.flavor, RemoteFlavor):
            loaded.flavor.ledger = self.ledger
        return ServedModel(
            record=record,
            flavor=loaded.flavor,
            contract=Contract.from_dict(record.metadata["contract"]),
            output=OutputContract.from_dict(record.metadata["output_contract"]),
            artifacts=self.artifacts,
        )


def _store_table(artifacts: ArtifactStore, frame: pd.DataFrame) -> dict[str, Any] | None:
    """Keep a table as Parquet in the artifact store; None (logged) if Parquet cannot hold
    it (mixed-type object columns): registration never fails for want of a copy."""
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except Exception as exc:
        log.warning("not keeping a copy of the table (%s: %s)", type(exc).__name__, exc)
        return None
    data = buffer.getvalue()
    return {"sha256": artifacts.put(data), "rows": len(frame), "format": "parquet"}


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidModelNameError(name)


def _split_target(
    frame: pd.DataFrame, target: str, flavor: Flavor
) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise MissingTargetError(
            f"Target column {target!r} is not in the data.",
            hint=f"Pass --target with one of: {', '.join(map(str, frame.columns[:20]))}.",
        )
    features = frame.drop(columns=[target])
    wanted = flavor.feature_names()
    if wanted is not None:
        missing = [c for c in wanted if c not in features.columns]
        if missing:
            raise MissingFeaturesError(
                "The model was fitted on columns the data does not have.",
                problems=[
                    Problem(MISSING_FEATURE, f"column {c!r} is missing", field=c) for c in missing
                ],
            )
        features = features[wanted]
    n_expected = getattr(flavor.model, "n_features_in_", None)
    if n_expected is not None and int(n_expected) != features.shape[1]:
        raise FeatureCountError(
            f"The model expects {n_expected} features but the data has {features.shape[1]} "
            "besides the target.",
        )
    if len(features) == 0:
        raise EmptyTrainingDataError("The training table is empty.")
    return features, frame[target]


def _resolve_task(task: str | None, flavor: Flavor, y: pd.Series) -> str:
    if task is not None:
        if task not in ("classification", "regression"):
            raise InvalidTaskError(task)
        return task
    if flavor.classes is not None:
        return "classification"
    if pd.api.types.is_float_dtype(y):
        return "regression"
    return "classification"


def _classes(flavor: Flavor, y: pd.Series, task: str) -> list[Any] | None:
    if task != "classification":
        return None
    if flavor.classes is not None:
        return flavor.classes
    return [v.item() if isinstance(v, np.generic) else v for v in sorted(y.dropna().unique())]


def _check_labels(y: pd.Series, classes: list[Any] | None) -> None:
    """A target label the model cannot predict means the table or the model is wrong."""
    if classes is None:
        return
    known = set(classes)
    unknown = [v for v in y.dropna().unique().tolist() if v not in known]
    if unknown:
        raise UnknownTargetLabelsError(
            f"The target has labels the model does not know: {unknown[:10]!r} "
            f"(the model's classes are {classes[:10]!r}).",
        )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Training rows as JSON-ready dicts (NaN -> None), the form the contract rebuilds."""
    return [
        {k: (None if _is_missing(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _with_unseen_policies(contract: Contract, flavor: Flavor, features: pd.DataFrame) -> Contract:
    """Set each categorical field's unseen-value policy to what the model can handle.

    A pipeline whose encoder ignores unknown categories gets ``pass``; one that raises
    gets ``reject`` (a 422 naming the field) rather than a 503 from inside the model.
    """
    sample = contract.frame(_records(features.head(1)))
    document = contract.to_dict()
    for spec in document["fields"]:
        if spec["kind"] != "categorical":
            continue
        probe = sample.copy()
        try:
            probe[spec["name"]] = pd.Series([UNSEEN_PROBE], dtype=sample[spec["name"]].dtype)
        except (TypeError, ValueError):
            probe[spec["name"]] = pd.Series([UNSEEN_PROBE], dtype=object)
        try:
            flavor.predict(probe)
            spec["on_unseen"] = "pass"
        except Exception:
            spec["on_unseen"] = "reject"
    return Contract.from_dict(document)


def _with_null_policies(
    contract: Contract, flavor: Flavor, output: OutputContract, features: pd.DataFrame
) -> Contract:
    """Pass a field's nulls to the model when the model handles them itself.

    A pipeline with its own imputer must get the null, not Plinth's median or mode: its
    answer would differ from the model's own (training/serving skew made by the serving
    layer). For each field a null or absent key can reach, training rows with that field
    null are built exactly as serving will build them and scored; finite, well-formed
    answers make ``on_null`` ``pass`` (flagged ``contract.null_passed`` on each request),
    anything else keeps ``impute``. Fields that reject nulls are not probed.
    """
    document = contract.to_dict()
    probed = [
        f["name"]
        for f in document["fields"]
        if f["on_null"] == "impute"
        and f["impute"] is not None
        and (f["nullable"] or not f["required"])
    ]
    if not probed:
        return contract
    # Complete rows: training rows, their own nulls repaired by the inferred contract.
    base = contract.apply(_records(features.head(NULL_PROBE_ROWS))).features()
    if not base:  # no evidence either way: keep imputing
        return contract
    # One call for all fields (the usual pipeline imputes everything); a field that failed
    # it (or all, if the call raised) is tried again alone.
    together = _answers_nulls(flavor, output, _passing(document, probed), base, probed)
    handled = [
        ok or _answers_nulls(flavor, output, _passing(document, [name]), base, [name])[0]
        for name, ok in zip(probed, together, strict=True)
    ]
    return _passing(document, [name for name, ok in zip(probed, handled, strict=True) if ok])


def _passing(document: dict[str, Any], names: list[str]) -> Contract:
    """The contract with ``on_null: pass`` for ``names``."""
    fields = [{**f, "on_null": "pass"} if f["name"] in names else f for f in document["fields"]]
    return Contract.from_dict({**document, "fields": fields})


def _answers_nulls(
    flavor: Flavor,
    output: OutputContract,
    contract: Contract,
    base: list[dict[str, Any]],
    names: list[str],
) -> list[bool]:
    """Per name, whether the model answers every base row with that field null well."""
    frame = contract.frame([{**row, name: None} for name in names for row in base])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model may warn about a NaN; its answer counts
            predictions = flavor.predict(frame)
            probabilities = flavor.predict_proba(frame) if output.task == "classification" else None
        verdicts = output.check(predictions, probabilities, len(frame))
    except Exception:
        return [False] * len(names)
    good = [v is None for v in verdicts]
    return [all(good[k * len(base) : (k + 1) * len(base)]) for k in range(len(names))]


@dataclass
class _Evaluation:
    metrics: dict[str, float]
    outputs: np.ndarray
    confidence: np.ndarray | None
    probabilities: np.ndarray | None = None


def _evaluate(
    flavor: Flavor,
    output: OutputContract,
    contract: Contract,
    features: pd.DataFrame,
    y: pd.Series,
) -> _Evaluation:
    frame = contract.frame(_records(features))
    try:
        predictions = flavor.predict(frame)
        probabilities = flavor.predict_proba(frame) if output.task == "classification" else None
    except Exception as exc:
        raise ModelFailedOnDataError(
            f"The model failed on its own data ({type(exc).__name__}: {exc})."
        ) from exc
    bad = [p for p in output.check(predictions, probabilities, len(frame)) if p is not None]
    if bad:
        raise BadOutputOnDataError(
            f"The model broke its output contract on {len(bad)} of {len(frame)} rows.",
            problems=bad[:10],
        )
    if output.task == "classification":
        classes = output.classes or []
        if probabilities is None:
            probabilities = np.zeros((len(frame), len(classes)))
            index = {c: i for i, c in enumerate(classes)}
            for row, label in enumerate(predictions.tolist()):
                probabilities[row, index[label]] = 1.0
        metrics = classification_metrics(y.to_numpy(), probabilities, classes)
        return _Evaluation(metrics, predictions, confidence(probabilities), probabilities)
    metrics = regression_metrics(y.to_numpy(dtype=float), predictions.astype(float))
    return _Evaluation(metrics, predictions.astype(float), None)


def _default_output(task: str, y: pd.Series, classes: list[Any] | None) -> dict[str, Any]:
    """The answer of last resort (majority class / median), marked low-confidence."""
    if task == "classification":
        counts = y.value_counts(normalize=True)
        probs = {str(c): float(counts.get(c, 0.0)) for c in classes or []}
        top = max(probs, key=lambda k: probs[k]) if probs else None
        label = next((c for c in classes or [] if str(c) == top), None)
        return {"prediction": label, "probabilities": probs}
    return {"prediction": float(np.median(y.to_numpy(dtype=float)))}
