"""Registering, storing and loading model versions (4xx for what a user gave, 5xx for ours)."""

from __future__ import annotations

from plinth.errors.base import NotFoundError, PlinthError, problem_code


class RegistryError(PlinthError):
    """Registering or loading a model version failed; ``registry.*``."""

    status = 400


class ModelNotFoundError(RegistryError, NotFoundError):
    """No model is registered (or loaded) under this name."""

    code = "registry.model_not_found"
    status = 404
    hint = "Register it first: plinth register MODEL --name NAME ..."


class VersionNotFoundError(RegistryError, NotFoundError):
    """The model exists but has no such version."""

    code = "registry.version_not_found"
    status = 404
    hint = "`plinth show NAME` lists its versions."


class ModelFileNotFoundError(RegistryError, NotFoundError):
    """The model file given to register does not exist."""

    code = "registry.file_not_found"
    status = 404
    hint = "Check the path; Plinth reads .skops files, or .joblib/.pkl with --trust-pickle."


class MlflowModelNotFoundError(RegistryError, NotFoundError):
    """No MLflow model at the URI, or its directory lacks the file its flavor names."""

    code = "registry.mlflow_not_found"
    status = 404
    hint = (
        "Use runs:/<run id>/<path>, models:/<name>/<version> or a model directory, "
        "and set MLFLOW_TRACKING_URI to the tracking store (e.g. file:./mlruns)."
    )


class UnsupportedMlflowFlavorError(RegistryError):
    """The MLflow model has no flavor Plinth serves (a python_function model is code)."""

    code = "registry.mlflow_flavor"
    hint = (
        "Log the model with mlflow.sklearn, mlflow.xgboost, mlflow.lightgbm or "
        "mlflow.onnx (a python_function model is code Plinth will not run)."
    )


class LightGBMLabelsError(RegistryError):
    """An LGBMClassifier was fitted on labels other than 0..k-1, which its text format loses."""

    code = "registry.lightgbm_labels"
    hint = (
        "Encode the target as 0..k-1 (sklearn.preprocessing.LabelEncoder) "
        "before fitting, and register with that encoded target."
    )


class UnknownTargetLabelsError(RegistryError):
    """The training target has labels the model's classes do not include."""

    code = "registry.unknown_labels"
    hint = (
        "Pass the table the model was trained on; XGBoost and LightGBM classes are "
        "0..k-1, so encode the target as the model was fitted."
    )


class InvalidModelNameError(RegistryError):
    """A model name has characters or a length Plinth does not allow."""

    code = "registry.invalid_name"
    hint = "Use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit."

    def __init__(self, name: str) -> None:
        super().__init__(f"Model name {name!r} is not allowed.")


class UnsupportedModelError(RegistryError):
    """The object has no predict() method Plinth can call."""

    code = "registry.unsupported_model"
    hint = "Pass a scikit-learn estimator or Pipeline, or an object with predict(DataFrame)."


class PickleNotTrustedError(RegistryError):
    """Storing or loading this model needs pickle, which runs code, and it was not trusted."""

    code = "registry.pickle_not_trusted"
    hint = "Save it with skops.io.dump, or pass --trust-pickle if you trust this file."


class UntrustedTypesError(RegistryError):
    """A skops file contains types Plinth does not trust by default."""

    code = "registry.untrusted_types"
    hint = "Review them, then pass --trust TYPE for each (Python: trust_types=[...])."


class ModelLoadError(RegistryError):
    """The model file could not be deserialised."""

    code = "registry.load_failed"
    hint = "Check the file was written by skops.io.dump or joblib.dump with these libraries."


class UnknownArtifactFormatError(RegistryError):
    """A version's metadata names an artifact format Plinth does not know."""

    code = "registry.unknown_format"
    hint = "The version's metadata was edited by hand; re-register the model."


class ArtifactMissingError(RegistryError):
    """A stored artifact cannot be read from $PLINTH_HOME/artifacts."""

    code = "registry.artifact_missing"
    status = 503  # the server cannot serve this version now: not a bug, not the caller's fault
    hint = "Restore $PLINTH_HOME/artifacts from backup or register the model again."


class HashMismatchError(RegistryError):
    """A stored artifact (or its record) changed since registration: its sha256 differs."""

    code = "registry.hash_mismatch"
    status = 503  # refused on purpose, with a code: 500 is kept for unexpected errors
    hint = "Someone modified the stored file; restore it or register the model again."


class MissingTargetError(RegistryError):
    """The target column is not in the training table."""

    code = "registry.missing_target"
    hint = "Pass --target with one of the table's columns."


class MissingFeaturesError(RegistryError):
    """The training table lacks columns the model was fitted on; each is listed."""

    code = "registry.missing_features"
    hint = "Pass the table the model was trained on."


class FeatureCountError(RegistryError):
    """The training table has another number of features than the model expects."""

    code = "registry.feature_count"
    hint = "Drop columns the model was not trained on (ids, timestamps) from the table."


class EmptyTrainingDataError(RegistryError):
    """The training table has no rows."""

    code = "registry.empty_data"
    hint = "Pass the data the model was trained on; it sets the contract and profile."


class InvalidTaskError(RegistryError):
    """--task is neither classification nor regression."""

    code = "registry.invalid_task"
    hint = "Use --task classification or --task regression."

    def __init__(self, task: str) -> None:
        super().__init__(f"Unknown task {task!r}.")


class ModelFailedOnDataError(RegistryError):
    """The model raised when called on its own training or holdout data."""

    code = "registry.model_failed"
    hint = "Check --train/--holdout is the table the model was trained on."


class BadOutputOnDataError(RegistryError):
    """The model broke its output contract on its own data (NaN, wrong shape, bad probabilities)."""

    code = "registry.bad_output"
    hint = "A served model must return finite predictions and probabilities summing to 1."


class RemoteSpecError(RegistryError):
    """A remote model's spec (TOML) is unreadable or invalid; every problem is listed."""

    code = "registry.remote_spec"
    hint = "Fix each listed field of the spec; docs/remote-models.md shows a complete one."


class ExamplesError(RegistryError):
    """The example inputs for a remote model are missing, empty or not JSON objects."""

    code = "registry.examples"
    hint = (
        "Pass --examples with a .jsonl file of input objects (one per line), or a .csv / "
        ".parquet table of the input fields."
    )


MISSING_FEATURE = problem_code(
    RegistryError, "registry.missing_feature", "One column the model was fitted on is missing."
)
SPEC_FIELD = problem_code(
    RegistryError, "registry.spec_field", "One field of a remote model's spec is invalid."
)
