"""Conformance suite for flavors: ``check_flavor`` proves a flavor keeps the Flavor contract.

Like scikit-learn's ``check_estimator``, it runs every check on a real model and reports all
failures at once. The checks are what serving, replay and monitoring rely on:

- ``round_trip``: the artifact is content-addressed (its sha256 names it), reloads through the
  safe path that checks that hash (and refuses altered bytes) as the same flavor, and answers
  exactly as before;
- ``predict``: one answer per row, a known class label or a finite number;
- ``predict_proba``: rows x classes, finite, in [0, 1], rows summing to 1 within the output
  contract's tolerance, columns in ``classes`` order (the top column is the predicted label);
- ``deterministic``: the same frame twice gives the same bits;
- ``batch_vs_single``: each row alone answers exactly as inside a batch, and a batch in
  another order answers each row the same — replay scores one row, serving a micro-batch;
- ``serve_faster``: whichever way the flavor chooses to call the model, the answers are
  identical;
- ``feature_names``, ``classes``, ``params``: JSON-ready, consistent with the sample.

    from plinth.testing import check_flavor
    check_flavor(model, train.drop(columns=["target"]))           # an object or a model file
    check_flavor(registry.load(store.get_version("churn", 3)))    # a registered version
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plinth.core.contract import infer_contract
from plinth.core.output import OutputContract
from plinth.errors import HashMismatchError, RegistryError
from plinth.flavors.base import (
    Flavor,
    LoadedArtifact,
    dump_model,
    load_artifact,
    load_bytes,
    read_model_file,
)
from plinth.services.registry.versions import ServedModel
from plinth.store.artifacts import ArtifactStore

SINGLE_ROWS = 25  # rows checked one by one against the batch


@dataclass
class FlavorReport:
    """What ``check_flavor`` ran: the checks that passed and those that failed, with why."""

    flavor: str
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    served_faster: bool = False


@dataclass
class _Case:
    artifact: LoadedArtifact
    frame: pd.DataFrame
    task: str
    output_classes: list[Any] | None  # a registered version's output contract, if any
    stored: Path | None = None  # a registered version's artifact file

    @property
    def flavor(self) -> Flavor:
        return self.artifact.flavor


def check_flavor(
    model: Any,
    sample: pd.DataFrame | None = None,
    *,
    trust_pickle: bool = False,
    trust_types: list[str] | None = None,
) -> FlavorReport:
    """Run every conformance check; raise AssertionError listing each failure.

    ``model`` is a fitted model object, a model file, a ``LoadedArtifact``, or a registered
    version as served (``registry.load(record)``). ``sample`` holds feature rows (no
    target) and is required unless ``model`` is registered, whose contract supplies them.
    """
    case = _case(model, sample, trust_pickle=trust_pickle, trust_types=list(trust_types or []))
    report = FlavorReport(flavor=case.flavor.name)
    checks: list[tuple[str, Callable[[_Case, FlavorReport], None]]] = [
        ("round_trip", _round_trip),
        ("predict", _predict),
        ("predict_proba", _predict_proba),
        ("deterministic", _deterministic),
        ("batch_vs_single", _batch_vs_single),
        ("serve_faster", _serve_faster),
        ("feature_names", _feature_names),
        ("classes", _classes),
        ("params", _params),
    ]
    for name, check in checks:
        try:
            check(case, report)
        except Exception as exc:  # a check that raises has failed, whatever it raised
            report.failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            report.passed.append(name)
    if report.failed:
        lines = "\n".join(f"- {k}: {v}" for k, v in report.failed.items())
        raise AssertionError(
            f"check_flavor({report.flavor}): {len(report.failed)} of {len(checks)} checks "
            f"failed:\n{lines}"
        )
    return report


def _case(
    model: Any, sample: pd.DataFrame | None, *, trust_pickle: bool, trust_types: list[str]
) -> _Case:
    if isinstance(model, ServedModel):
        meta = model.record.metadata.get("artifact", {})
        stored = model.artifacts.path(model.sha256) if model.artifacts is not None else None
        if stored is None:
            raise ValueError("a registered model needs its artifact store")
        artifact = LoadedArtifact(
            model.flavor,
            stored.read_bytes(),
            meta.get("format", "skops"),
            list(meta.get("trusted_types", [])),
        )
        if sample is None:
            probe = model.contract.apply(model.contract.probe_records())
            frame = probe.frame
        else:
            frame = model.contract.frame(_records(sample))
        return _Case(artifact, frame, model.output.task, model.output.classes, stored)
    if sample is None:
        raise ValueError("check_flavor needs sample feature rows for an unregistered model")
    if isinstance(model, LoadedArtifact):
        artifact = model
    elif isinstance(model, str | Path):
        artifact = read_model_file(Path(model), trust_pickle=trust_pickle, trust_types=trust_types)
    else:
        artifact = dump_model(model, trust_pickle=trust_pickle)
    names = artifact.flavor.feature_names()
    features = sample[names] if names is not None else sample
    # The frame exactly as serving builds it: the contract's dtypes, column order, nulls.
    frame = infer_contract(features).frame(_records(features))
    task = "classification" if artifact.flavor.classes is not None else "regression"
    return _Case(artifact, frame, task, None)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if _missing(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _outputs(flavor: Flavor, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    proba = flavor.predict_proba(frame) if flavor.has_proba else None
    return np.asarray(flavor.predict(frame)), None if proba is None else np.asarray(proba)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    )


def _assert_same(what: str, usual: tuple[Any, Any], other: tuple[Any, Any]) -> None:
    if not _same(usual[0], other[0]):
        raise AssertionError(f"{what}: predictions differ ({usual[0][:3]!r} vs {other[0][:3]!r})")
    if not _same(usual[1], other[1]):
        raise AssertionError(f"{what}: probabilities differ")


def _round_trip(case: _Case, report: FlavorReport) -> None:
    artifact = case.artifact
    with tempfile.TemporaryDirectory(prefix="plinth-check-") as tmp:
        store = ArtifactStore(Path(tmp) / "artifacts")
        digest = store.put(artifact.data)
        if digest != artifact.sha256:
            raise AssertionError(
                f"stored as {digest[:12]}…, not its sha256 {artifact.sha256[:12]}…"
            )
        if case.stored is not None and case.stored.name != digest:
            raise AssertionError(f"registered file {case.stored.name[:12]}… is not its sha256")
        again = load_artifact(store.path(digest), digest, artifact.format, artifact.trusted_types)
        if type(again.flavor) is not type(artifact.flavor):
            raise AssertionError(
                f"reloads as {type(again.flavor).__name__}, not {type(artifact.flavor).__name__}"
            )
        if again.flavor.classes != artifact.flavor.classes:
            raise AssertionError(
                f"classes {artifact.flavor.classes} reload as {again.flavor.classes}"
            )
        _assert_same(
            "after reloading",
            _outputs(artifact.flavor, case.frame),
            _outputs(again.flavor, case.frame),
        )
        altered = bytearray(artifact.data)
        altered[len(altered) // 2] ^= 0xFF
        store.path(digest).chmod(0o600)
        store.path(digest).write_bytes(bytes(altered))
        try:
            load_artifact(store.path(digest), digest, artifact.format, artifact.trusted_types)
        except HashMismatchError:
            pass
        except RegistryError as exc:
            raise AssertionError(f"altered bytes raised {exc.code}, not a hash mismatch") from exc
        else:
            raise AssertionError("altered bytes loaded without a hash mismatch")


def _predict(case: _Case, report: FlavorReport) -> None:
    predictions = case.flavor.predict(case.frame)
    if not isinstance(predictions, np.ndarray):
        raise AssertionError(f"predict returned {type(predictions).__name__}, not an ndarray")
    n = len(case.frame)
    if predictions.shape != (n,):
        raise AssertionError(f"predict returned shape {predictions.shape} for {n} rows, not ({n},)")
    if case.task == "regression" and predictions.dtype.kind not in "fiu":
        raise AssertionError(f"a regressor predicted dtype {predictions.dtype}, not numbers")
    proba = case.flavor.predict_proba(case.frame) if case.flavor.has_proba else None
    bad = [
        p
        for p in OutputContract(case.task, classes=_classes_of(case)).check(predictions, proba, n)  # type: ignore[arg-type]
        if p is not None
    ]
    if bad:
        raise AssertionError(f"{len(bad)} of {n} rows break the output contract: {bad[0].message}")


def _classes_of(case: _Case) -> list[Any] | None:
    return case.output_classes if case.output_classes is not None else case.flavor.classes


def _predict_proba(case: _Case, report: FlavorReport) -> None:
    flavor = case.flavor
    if not flavor.has_proba:
        if flavor.predict_proba(case.frame) is not None:
            raise AssertionError("has_proba is False but predict_proba returned probabilities")
        return
    classes = _classes_of(case)
    if classes is None:
        raise AssertionError("the model has probabilities but no classes to name their columns")
    proba = flavor.predict_proba(case.frame)
    if proba is None or not isinstance(proba, np.ndarray):
        raise AssertionError("has_proba is True but predict_proba returned no ndarray")
    if proba.shape != (len(case.frame), len(classes)) or proba.dtype.kind != "f":
        raise AssertionError(
            f"probabilities of shape {proba.shape} ({proba.dtype}), not "
            f"({len(case.frame)}, {len(classes)}) floats"
        )
    if not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        raise AssertionError("probabilities outside [0, 1] or not finite")
    off = proba.sum(axis=1) - 1.0
    worst = float(off[np.argmax(np.abs(off))])
    if abs(worst) > OutputContract("classification").tolerance:
        raise AssertionError(f"a row of probabilities sums to 1 {worst:+.3g}")
    # Class order: the top column must be the predicted label (rows with a tie skipped).
    ordered = np.sort(proba, axis=1)
    clear = (
        ordered[:, -1] - ordered[:, -2] > 1e-9 if proba.shape[1] > 1 else np.ones(len(proba), bool)
    )
    labels = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    predicted = np.asarray(flavor.predict(case.frame), dtype=object)
    wrong = np.flatnonzero(clear & (labels != predicted))
    if len(wrong):
        i = int(wrong[0])
        raise AssertionError(
            f"{len(wrong)} rows: the most probable class is not the prediction (row {i}: "
            f"{labels[i]!r} vs {predicted[i]!r}); are the columns in classes order {classes}?"
        )


def _deterministic(case: _Case, report: FlavorReport) -> None:
    _assert_same(
        "a second call", _outputs(case.flavor, case.frame), _outputs(case.flavor, case.frame)
    )


def _batch_vs_single(case: _Case, report: FlavorReport) -> None:
    frame = case.frame
    batch = _outputs(case.flavor, frame)
    for i in range(min(len(frame), SINGLE_ROWS)):
        alone = _outputs(case.flavor, frame.iloc[[i]])
        row = (batch[0][[i]], None if batch[1] is None else batch[1][[i]])
        _assert_same(f"row {i} alone", row, alone)
    order = np.arange(len(frame))[::-1]
    reversed_batch = _outputs(case.flavor, frame.iloc[order].reset_index(drop=True))
    expected = (batch[0][order], None if batch[1] is None else batch[1][order])
    _assert_same("the batch reversed", expected, reversed_batch)


def _serve_faster(case: _Case, report: FlavorReport) -> None:
    fresh = load_bytes(case.artifact.data, case.artifact.format, case.artifact.trusted_types)
    usual = _outputs(fresh.flavor, case.frame)
    report.served_faster = bool(fresh.flavor.serve_faster(case.frame))
    _assert_same("after serve_faster", usual, _outputs(fresh.flavor, case.frame))
    one = case.frame.iloc[[0]]
    _assert_same(
        "one row after serve_faster",
        (usual[0][[0]], None if usual[1] is None else usual[1][[0]]),
        _outputs(fresh.flavor, one),
    )


def _feature_names(case: _Case, report: FlavorReport) -> None:
    names = case.flavor.feature_names()
    if names is None:
        return
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise AssertionError(f"feature names {names} are not unique strings")
    missing = [n for n in names if n not in case.frame.columns]
    if missing:
        raise AssertionError(f"feature names {missing} are not columns of the served frame")
    n_in = getattr(case.flavor.model, "n_features_in_", None)
    if n_in is not None and int(n_in) != len(names):
        raise AssertionError(f"n_features_in_ is {n_in} but there are {len(names)} names")


def _classes(case: _Case, report: FlavorReport) -> None:
    classes = case.flavor.classes
    if classes is None:
        return
    json.dumps(classes)
    if len(set(classes)) != len(classes):
        raise AssertionError(f"classes {classes} repeat")
    if case.output_classes is not None and classes != case.output_classes:
        raise AssertionError(f"classes {classes} differ from the version's {case.output_classes}")


def _params(case: _Case, report: FlavorReport) -> None:
    params = case.flavor.params()
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise AssertionError("params() is not a dict with string keys")
    json.dumps(params, allow_nan=True)
