"""The Flavor interface and the safe load path shared by every flavor."""

from __future__ import annotations

import hashlib
import io
import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.errors import RegistryError

# Artifact formats: how the bytes on disk were written.
SKOPS = "skops"
PICKLE = "pickle"


class Flavor(ABC):
    """Wraps one loaded model object; the server only ever calls these methods."""

    name: ClassVar[str]

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    @abstractmethod
    def accepts(cls, model: Any) -> bool:
        """True when this flavor knows how to serve ``model``."""

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


def flavor_for_object(model: Any) -> type[Flavor]:
    """The first flavor that accepts ``model``; sklearn estimators before plain objects."""
    from plinth.flavors.python import PythonFlavor
    from plinth.flavors.sklearn import SklearnFlavor

    for flavor in (SklearnFlavor, PythonFlavor):
        if flavor.accepts(model):
            return flavor
    raise RegistryError(
        f"Cannot serve an object of type {type(model).__name__}: it has no predict() method.",
        code="registry.unsupported_model",
        hint="Pass a scikit-learn estimator or Pipeline, or an object with predict(DataFrame).",
    )


def dump_model(model: Any, *, trust_pickle: bool) -> LoadedArtifact:
    """Serialise a model object: skops for scikit-learn, pickle only when trusted."""
    flavor_cls = flavor_for_object(model)
    if flavor_cls.name == "sklearn":
        import skops.io as sio

        data = sio.dumps(model)
        trusted = _skops_trusted_types(data, extra=[])
        return LoadedArtifact(flavor_cls(model), data, SKOPS, trusted)
    if not trust_pickle:
        raise RegistryError(
            f"A {type(model).__name__} can only be stored with pickle, which runs code on load.",
            code="registry.pickle_not_trusted",
            hint="Pass trust_pickle=True (CLI: --trust-pickle) if you trust this object.",
        )
    return LoadedArtifact(flavor_cls(model), pickle.dumps(model), PICKLE, [])


def read_model_file(path: Path, *, trust_pickle: bool, trust_types: list[str]) -> LoadedArtifact:
    """Load a model file given by a user, choosing the safe loader by its format."""
    if not path.is_file():
        raise RegistryError(
            f"Model file {path} does not exist.",
            code="registry.file_not_found",
            hint="Check the path; Plinth reads .skops files, or .joblib/.pkl with --trust-pickle.",
            status=404,
        )
    data = path.read_bytes()
    fmt = SKOPS if path.suffix == ".skops" else PICKLE
    if fmt == PICKLE and not trust_pickle:
        raise RegistryError(
            f"{path.name} is a pickle/joblib file; loading it runs arbitrary code.",
            code="registry.pickle_not_trusted",
            hint="Save it with skops.io.dump, or pass --trust-pickle if you trust this file.",
        )
    trusted = _skops_trusted_types(data, extra=trust_types) if fmt == SKOPS else []
    return load_bytes(data, fmt, trusted)


def load_bytes(data: bytes, fmt: str, trusted_types: list[str]) -> LoadedArtifact:
    """Rebuild the model object from stored bytes with the recorded trust decisions."""
    try:
        if fmt == SKOPS:
            import skops.io as sio

            model = sio.loads(data, trusted=trusted_types)
        elif fmt == PICKLE:
            import joblib

            model = joblib.load(io.BytesIO(data))
        else:
            raise RegistryError(
                f"Unknown artifact format {fmt!r}.",
                code="registry.unknown_format",
                hint="The version's metadata was edited by hand; re-register the model.",
            )
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(
            f"Could not load the model ({type(exc).__name__}: {exc}).",
            code="registry.load_failed",
            hint="Check the file was written by skops.io.dump or joblib.dump with these libraries.",
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
        raise RegistryError(
            f"{what} {path} cannot be read: {exc.strerror}.",
            code="registry.artifact_missing",
            hint="Restore $PLINTH_HOME/artifacts from backup or register the model again.",
            status=500,
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RegistryError(
            f"{what} {path.name} changed since registration (sha256 is now {actual[:12]}…).",
            code="registry.hash_mismatch",
            hint="Someone modified the stored file; restore it or register the model again.",
            status=500,
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
        raise RegistryError(
            f"Not a readable skops file ({type(exc).__name__}: {exc}).",
            code="registry.load_failed",
            hint="Write the file with skops.io.dump(model, 'model.skops').",
        ) from exc
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES) and t not in extra]
    if refused:
        raise RegistryError(
            f"The skops file contains types Plinth does not trust: {', '.join(refused)}.",
            code="registry.untrusted_types",
            hint="Review them, then pass --trust TYPE for each (Python: trust_types=[...]).",
        )
    return list(untrusted)
