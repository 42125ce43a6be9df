"""The Flavor interface and the safe load path shared by every flavor."""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
from abc import ABC, abstractmethod
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.errors import (
    ArtifactMissingError,
    HashMismatchError,
    MissingExtraError,
    ModelFileNotFoundError,
    ModelLoadError,
    PickleNotTrustedError,
    PlinthError,
    UnknownArtifactFormatError,
    UnsupportedModelError,
    UntrustedTypesError,
)

# Artifact formats: how the bytes on disk were written. Native formats (ONNX, XGBoost's
# UBJSON/JSON, LightGBM's text) are named by the flavor that writes them.
SKOPS = "skops"
PICKLE = "pickle"

#: The ``time.perf_counter()`` value by which the current model call must be answered (the
#: earliest deadline of the batch), set by scoring; a flavor that waits on I/O (a remote
#: model) cuts its time-outs and retries to it. None outside serving.
CALL_DEADLINE: ContextVar[float | None] = ContextVar("plinth_call_deadline", default=None)
#: Where a flavor that calls out over the network notes each attempt of the current model
#: call, as ``(record, start, end)`` with epoch nanoseconds, for tracing to draw one span per
#: attempt. Scoring sets a list only while a traced batch is at the model; None otherwise,
#: and then nothing is noted.
CALL_ATTEMPTS: ContextVar[list[tuple[dict[str, Any], int, int]] | None] = ContextVar(
    "plinth_call_attempts", default=None
)


@dataclass
class Answered:
    """A flavor's answers with one JSON record per row of how each was obtained (a remote
    model's request, raw reply, usage and attempts), logged with the prediction."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    details: list[dict[str, Any]]


class Flavor(ABC):
    """Wraps one loaded model object; the server only ever calls these methods.

    A flavor whose library has its own safe file format declares it in ``formats`` (and
    the format each model-file suffix is read as in ``suffixes``) and implements ``dump``
    and ``load``; the others are stored with skops (scikit-learn) or, when trusted, pickle.
    """

    name: ClassVar[str]
    # A freshly loaded version gets one throwaway call before traffic moves to it; not a
    # flavor whose every call goes out to someone else's endpoint (and is paid for).
    warm_up: ClassVar[bool] = True
    # Batches of one version scored at once: 1 for a model that computes (the batch is
    # what shares its cost); more for one that waits on I/O (``RemoteFlavor``).
    concurrent_batches: int = 1
    formats: ClassVar[tuple[str, ...]] = ()
    suffixes: ClassVar[dict[str, str]] = {}

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    @abstractmethod
    def accepts(cls, model: Any) -> bool:
        """True when this flavor knows how to serve ``model``."""

    @classmethod
    def dump(cls, model: Any) -> tuple[bytes, str]:
        """The model's bytes in this flavor's native safe format, and that format's name."""
        raise NotImplementedError(f"the {cls.name} flavor has no native format")

    @classmethod
    def load(cls, data: bytes, fmt: str) -> Flavor:
        """Rebuild a served model from bytes ``dump`` wrote (or a user's model file)."""
        raise NotImplementedError(f"the {cls.name} flavor has no native format")

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in ``predict_proba`` column order, or None for regressors."""
        raw = getattr(self.model, "classes_", None)
        if raw is None:
            return None
        return [_plain(c) for c in np.asarray(raw).tolist()]

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self.model, "predict_proba", None))

    def feature_names(self) -> list[str] | None:
        """The column names the model was fitted on, when it recorded them."""
        names = getattr(self.model, "feature_names_in_", None)
        return None if names is None else [str(n) for n in names]

    def serve_faster(self, probe: pd.DataFrame) -> bool:
        """Switch to a cheaper way of calling the model if it answers ``probe`` exactly as
        the usual way does; True when switched. The default flavor has none."""
        return False

    @abstractmethod
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Point predictions, one per row."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities (rows x classes), or None when the model has none."""
        if not self.has_proba:
            return None
        return np.asarray(self.model.predict_proba(self._input(frame)))

    def _input(self, frame: pd.DataFrame) -> Any:
        return frame

    def answer(self, frame: pd.DataFrame) -> Answered | None:
        """Predictions, probabilities and per-row details in one call, for a flavor whose
        answers each carry their own record (remote models); None: use ``predict`` and
        ``predict_proba``."""
        return None

    def attach(self, name: str, version: int) -> None:
        """Told which version this flavor serves (a remote model labels its metrics and its
        budget with it); nothing for the others."""
        return None

    def close(self) -> None:
        """Release what serving held open (a remote model's connections); the version is
        no longer served. Nothing for a model in memory."""
        return None

    def params(self) -> dict[str, Any]:
        """Hyper-parameters for lineage, made JSON-safe."""
        get_params = getattr(self.model, "get_params", None)
        if not callable(get_params):
            return {}
        return {str(k): _plain(v) for k, v in get_params(deep=False).items()}


def _plain(value: Any) -> Any:
    """A JSON-ready stand-in for a parameter or label value."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


@dataclass(frozen=True)
class LoadedArtifact:
    """A model object with the facts needed to store and reload it exactly."""

    flavor: Flavor
    data: bytes
    format: str
    trusted_types: list[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module, str(exc)) from exc


def defined_in(model: Any, package: str) -> bool:
    """True when ``model``'s class (or a base class) comes from ``package``, checked
    without importing it, so an optional library is imported only for its own models."""
    return any(
        c.__module__ == package or c.__module__.startswith(package + ".")
        for c in type(model).__mro__
    )


def flavors() -> tuple[type[Flavor], ...]:
    """Every flavor, most specific first: the first that accepts a model serves it."""
    from plinth.flavors.lightgbm import LightGBMFlavor
    from plinth.flavors.onnx import OnnxFlavor
    from plinth.flavors.python import PythonFlavor
    from plinth.flavors.remote.flavor import RemoteFlavor
    from plinth.flavors.sklearn import SklearnFlavor
    from plinth.flavors.xgboost import XGBoostFlavor

    # XGBoost's and LightGBM's estimators are scikit-learn estimators too: they come
    # first so they are stored in their libraries' own formats, not with skops.
    return (RemoteFlavor, OnnxFlavor, XGBoostFlavor, LightGBMFlavor, SklearnFlavor, PythonFlavor)


def flavor_for_object(model: Any) -> type[Flavor]:
    """The first flavor that accepts ``model``; sklearn estimators before plain objects."""
    for flavor in flavors():
        if flavor.accepts(model):
            return flavor
    raise UnsupportedModelError(
        f"Cannot serve an object of type {type(model).__name__}: it has no predict() method.",
    )


def _native(fmt: str) -> type[Flavor] | None:
    return next((f for f in flavors() if fmt in f.formats), None)


def dump_model(model: Any, *, trust_pickle: bool) -> LoadedArtifact:
    """Serialise a model object: its library's own format when it has a safe one, skops
    for scikit-learn, pickle only when trusted.

    A natively stored model is served from the bytes just written, not from the object
    passed in, so registration evaluates exactly what will be served.
    """
    flavor_cls = flavor_for_object(model)
    if flavor_cls.formats:
        data, fmt = flavor_cls.dump(model)
        return load_bytes(data, fmt, [])
    if flavor_cls.name == "sklearn":
        import skops.io as sio

        data = sio.dumps(model)
        trusted = _skops_trusted_types(data, extra=[])
        return LoadedArtifact(flavor_cls(model), data, SKOPS, trusted)
    if not trust_pickle:
        raise PickleNotTrustedError(
            f"A {type(model).__name__} can only be stored with pickle, which runs code on load.",
            hint="Pass trust_pickle=True (CLI: --trust-pickle) if you trust this object.",
        )
    return LoadedArtifact(flavor_cls(model), pickle.dumps(model), PICKLE, [])


def read_model_file(path: Path, *, trust_pickle: bool, trust_types: list[str]) -> LoadedArtifact:
    """Load a model file given by a user, choosing the safe loader by its format."""
    if not path.is_file():
        raise ModelFileNotFoundError(
            f"Model file {path} does not exist.",
            hint="Check the path; Plinth reads .skops, .onnx, XGBoost .ubj/.json and LightGBM "
            ".txt files, or .joblib/.pkl with --trust-pickle.",
        )
    data = path.read_bytes()
    native = next((f for f in flavors() if path.suffix.lower() in f.suffixes), None)
    if native is not None:
        return load_bytes(data, native.suffixes[path.suffix.lower()], [])
    fmt = SKOPS if path.suffix == ".skops" else PICKLE
    if fmt == PICKLE and not trust_pickle:
        raise PickleNotTrustedError(
            f"{path.name} is a pickle/joblib file; loading it runs arbitrary code.",
        )
    trusted = _skops_trusted_types(data, extra=trust_types) if fmt == SKOPS else []
    return load_bytes(data, fmt, trusted)


def load_bytes(data: bytes, fmt: str, trusted_types: list[str]) -> LoadedArtifact:
    """Rebuild the model object from stored bytes with the recorded trust decisions."""
    native = _native(fmt)
    try:
        if native is not None:
            return LoadedArtifact(native.load(data, fmt), data, fmt, trusted_types)
        if fmt == SKOPS:
            import skops.io as sio

            model = sio.loads(data, trusted=trusted_types)
        elif fmt == PICKLE:
            import joblib

            model = joblib.load(io.BytesIO(data))
        else:
            raise UnknownArtifactFormatError(
                f"Unknown artifact format {fmt!r}.",
            )
    except PlinthError:
        raise
    except Exception as exc:
        written_by = (
            f"{native.name}'s own save_model/export"
            if native is not None
            else "skops.io.dump or joblib.dump"
        )
        raise ModelLoadError(
            f"Could not load the model ({type(exc).__name__}: {exc}).",
            hint=f"Check the file was written by {written_by} with these libraries.",
        ) from exc
    flavor_cls = flavor_for_object(model)
    return LoadedArtifact(flavor_cls(model), data, fmt, trusted_types)


def load_artifact(path: Path, sha256: str, fmt: str, trusted_types: list[str]) -> LoadedArtifact:
    """Load a registered artifact, refusing it if its bytes changed since registration."""
    return load_bytes(read_verified(path, sha256, "Artifact"), fmt, trusted_types)


def read_verified(path: Path, sha256: str, what: str) -> bytes:
    """A content-addressed file's bytes, refused if they no longer hash to ``sha256``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactMissingError(
            f"{what} {path} cannot be read: {exc.strerror}.",
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise HashMismatchError(
            f"{what} {path.name} changed since registration (sha256 is now {actual[:12]}…).",
        )
    return data


# Library types skops does not trust by default but that are plain data of the
# libraries we depend on (e.g. sklearn.tree._tree.Tree). Anything else needs --trust.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def _skops_trusted_types(data: bytes, *, extra: list[str]) -> list[str]:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(
            f"Not a readable skops file ({type(exc).__name__}: {exc}).",
            hint="Write the file with skops.io.dump(model, 'model.skops').",
        ) from exc
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES) and t not in extra]
    if refused:
        raise UntrustedTypesError(
            f"The skops file contains types Plinth does not trust: {', '.join(refused)}.",
        )
    return list(untrusted)
