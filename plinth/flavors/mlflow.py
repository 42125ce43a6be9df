"""Import a model logged with MLflow (``pip install 'plinth-ml[mlflow]'``).

``read_mlflow_model`` resolves a ``runs:/<run id>/<path>``, ``models:/<name>/<version>`` (or
``@alias``) URI, or a local MLflow model directory, with MLflow's own client against
``MLFLOW_TRACKING_URI``. It takes the first flavor Plinth serves from the ``MLmodel`` file —
onnx, xgboost, lightgbm, then sklearn — and the run's id, parameters, metrics and logged
datasets for the version's lineage. Training data is not taken from the run: an input
example is a handful of rows and a logged dataset records a digest and a source, not the
rows, so the table still comes from ``--train``/``--target``.

What MLflow wrote with pickle or cloudpickle (scikit-learn models by choice or before
MLflow 3, LightGBM's scikit-learn wrappers) is loaded only with ``trust_pickle``, then
stored the safe way (skops, or the library's own format). MLflow 3 refuses its file store
(``mlruns/``) unless ``MLFLOW_ALLOW_FILE_STORE`` is set; reading one is what this import is
for, so it allows it while it reads (it never writes).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth.errors import (
    MlflowModelNotFoundError,
    PickleNotTrustedError,
    UnsupportedMlflowFlavorError,
)
from plinth.flavors.base import (
    PICKLE,
    SKOPS,
    LoadedArtifact,
    _skops_trusted_types,
    dump_model,
    load_bytes,
    require,
)
from plinth.flavors.lightgbm import TEXT
from plinth.flavors.onnx import ONNX
from plinth.flavors.xgboost import JSON, UBJ

# MLmodel flavors Plinth serves, in the order they are preferred when a model has several.
SERVED_FLAVORS = ("onnx", "xgboost", "lightgbm", "sklearn")
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))")
# Run tags worth keeping: where the training code came from.
_RUN_TAGS = ("mlflow.source.git.commit", "mlflow.source.name", "mlflow.user", "mlflow.runName")


@dataclass(frozen=True)
class MlflowModel:
    """An MLflow model read for registration: the artifact Plinth stores and its origin."""

    artifact: LoadedArtifact
    lineage: dict[str, Any]


def read_mlflow_model(
    uri: str, *, trust_pickle: bool = False, trust_types: list[str] | None = None
) -> MlflowModel:
    """Read the model at ``uri`` and its run's facts; see the module docstring."""
    mlflow = require("mlflow", "mlflow")
    with _file_store_readable(), tempfile.TemporaryDirectory(prefix="plinth-mlflow-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            spec = mlflow.models.Model.load(str(local))
        except Exception as exc:
            raise MlflowModelNotFoundError(
                f"Could not read an MLflow model at {uri!r} ({type(exc).__name__}: {exc}).",
            ) from exc
        flavor, source, artifact = _artifact(
            spec.flavors, local, trust_pickle=trust_pickle, trust_types=list(trust_types or [])
        )
        lineage: dict[str, Any] = {
            "uri": uri,
            "flavor": flavor,
            "source_file": source.name,
            "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "run_id": spec.run_id,
            "model_id": getattr(spec, "model_id", None),
            "mlflow_version": getattr(spec, "mlflow_version", None),
            "created": getattr(spec, "utc_time_created", None),
        }
        match = _REGISTERED.match(uri)
        if match:
            lineage["registered_model"] = {k: v for k, v in match.groupdict().items() if v}
        lineage.update(_run_facts(mlflow, spec.run_id))
    return MlflowModel(artifact, {"mlflow": lineage})


@contextmanager
def _file_store_readable() -> Iterator[None]:
    """Allow MLflow's file store and keep MLflow's usage telemetry off while Plinth reads
    (a read of local files should not phone home), unless the user set either."""
    added = [
        name
        for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY")
        if name not in os.environ
    ]
    for name in added:
        os.environ[name] = "true"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _artifact(
    flavors: dict[str, Any], local: Path, *, trust_pickle: bool, trust_types: list[str]
) -> tuple[str, Path, LoadedArtifact]:
    flavor = next((f for f in SERVED_FLAVORS if f in flavors), None)
    if flavor is None:
        raise UnsupportedMlflowFlavorError(
            f"The MLflow model has flavors {sorted(flavors)}; Plinth serves "
            f"{', '.join(SERVED_FLAVORS)}.",
        )
    conf = flavors[flavor]
    source = local / str(conf.get("data") or conf.get("pickled_model") or "")
    if not source.is_file():
        raise MlflowModelNotFoundError(
            f"The MLflow {flavor} model names {source.name!r}, which is not in its directory.",
            hint="The run's artifacts are incomplete; log the model again.",
        )
    data = source.read_bytes()
    if flavor == "onnx":
        return flavor, source, load_bytes(data, ONNX, [])
    if flavor == "xgboost":  # UBJSON or JSON (or the old binary format, which fails to load)
        return flavor, source, load_bytes(data, JSON if data[:2] == b'{"' else UBJ, [])
    if flavor == "lightgbm" and str(conf.get("model_class", "")).endswith("Booster"):
        return flavor, source, load_bytes(data, TEXT, [])
    # A scikit-learn model (or a LightGBM scikit-learn wrapper) in skops or pickle: load it
    # the safe way that applies, then store it the safe way (skops or the native format).
    serialization = str(conf.get("serialization_format", "cloudpickle"))
    if serialization == "skops":
        extra = trust_types + (_library_types(data) if flavor == "lightgbm" else [])
        loaded = load_bytes(data, SKOPS, _skops_trusted_types(data, extra=extra))
        if loaded.flavor.name == "sklearn":  # already stored the safe way: keep MLflow's bytes
            return flavor, source, loaded
        model = loaded.flavor.model
    elif not trust_pickle:
        raise PickleNotTrustedError(
            f"MLflow stored this {flavor} model with {serialization} ({source.name}); "
            "loading it runs arbitrary code.",
            hint="Pass --trust-pickle if you trust this run (Python: trust_pickle=True); "
            "Plinth loads it once and stores it with skops or the library's own format. "
            "Or log it with serialization_format='skops'.",
        )
    else:
        model = load_bytes(data, PICKLE, []).flavor.model
    return flavor, source, dump_model(model, trust_pickle=False)


def _library_types(data: bytes) -> list[str]:
    """A LightGBM wrapper's skops types: LightGBM's own and the OrderedDict it keeps its
    parameters in. Plain data, and the model is stored as LightGBM text afterwards."""
    import skops.io as sio

    try:
        return [
            t
            for t in sio.get_untrusted_types(data=data)
            if t.startswith("lightgbm.") or t == "collections.OrderedDict"
        ]
    except Exception:  # unreadable: _skops_trusted_types reports it
        return []


def _run_facts(mlflow: Any, run_id: str | None) -> dict[str, Any]:
    """The run's parameters, metrics (latest values), tags and datasets, when it is found."""
    if not run_id:
        return {"run_found": False}
    try:
        run = mlflow.tracking.MlflowClient().get_run(run_id)
    except Exception:  # a model directory copied away from its tracking store
        return {"run_found": False}
    datasets = [
        {"name": d.dataset.name, "digest": d.dataset.digest, "source_type": d.dataset.source_type}
        for d in (run.inputs.dataset_inputs if run.inputs else [])
    ]
    return {
        "run_found": True,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name,
        "params": dict(run.data.params),
        "metrics": {k: float(v) for k, v in run.data.metrics.items()},
        "tags": {k: v for k, v in run.data.tags.items() if k in _RUN_TAGS},
        "datasets": datasets,
    }
