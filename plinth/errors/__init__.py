"""Every failure Plinth reports, as one tree of classes that own stable machine codes.

A caller's mistake is a 4xx listing every problem at once; our own failure is a 5xx with a
reason. Each error carries a ``code`` (stable, dotted), a ``message`` (what happened), a
``hint`` (how to fix it) and an HTTP ``status`` as a plain int, so the core can raise them
without importing any web code.

A *leaf* class owns one code as its class attribute, with a default status and hint
(``MissingTargetError.code == "registry.missing_target"``); only leaves are raised. A
*family* groups the leaves whose codes share a prefix, so ``except ContractError`` catches
every ``contract.*``; a prefix with a single code has its leaf right under the root.
``NotFoundError`` is the one family across prefixes: every ``*not_found`` leaf is also one.
Dispatch on classes (``isinstance``), never on code strings.

    PlinthError
    ├── ConfigError                      config.*                 500
    ├── RequestError                     request.*                400
    ├── CliError                         cli.*                    400
    ├── DataError                        data.*                   400
    ├── ContractError                    contract.*               422
    ├── RegistryError                    registry.*               400
    ├── ModelError                       model.*                  503
    ├── RouteError                       route.*                  503
    ├── StoreError                       store.*                  503
    ├── AuthError                        auth.*                   401
    ├── DeployError                      deploy.*                 422
    ├── MonitorError                     monitor.*                409
    ├── PerformanceError                 performance.*            422
    ├── ReviewError                      review.*                 422
    ├── NoLabelStoredError               feedback.all_failed      422
    ├── ReplayRedactedError              replay.redacted          409
    ├── NotFittedError                   core.not_fitted          500
    ├── InvalidNeighboursInputError      neighbours.invalid       500
    ├── InvalidAttributionInputError     attribution.invalid      500
    ├── InvalidChartInputError           control.invalid          500
    ├── ProfileError                     profile.*                500
    ├── DriftError                       drift.*                  500
    ├── MetricsError                     metrics.*                422
    ├── EstimationError                  estimation.*             422
    ├── NotFoundError                    *not_found               404
    ├── InternalError                    internal.error           500
    ├── RemoteError                      http.error               the server's
    ├── MissingExtraError                extra.missing            500
    └── NotServingError                  server.not_serving       503

Each family lives in its own module (``plinth.errors.contract`` …) with the problem and
warning codes its errors carry inside ``problems``. docs/errors.md lists every leaf and
every problem code; ``python -m plinth.errors`` writes it and a test keeps it in step.
"""

from plinth.errors.access import (
    AuthError,
    ForbiddenError,
    InvalidTokenError,
    MissingTokenError,
    TokenNotFoundError,
    TooManyAuthFailuresError,
    UnknownRoleError,
)
from plinth.errors.base import (
    MAX_LISTED_PROBLEMS,
    PROBLEM_CODES,
    InternalError,
    MissingExtraError,
    NotFoundError,
    NotServingError,
    PlinthError,
    Problem,
    ProblemCode,
    RemoteError,
    error_class,
    leaves,
    problem_code,
)
from plinth.errors.config import (
    CanaryPolicyError,
    ConfigError,
    DatabaseUrlError,
    DriftMethodError,
    InvalidConfigError,
    SqliteSynchronousError,
    TokensSettingError,
)
from plinth.errors.contract import (
    ContractError,
    ContractViolationError,
    IncompatibleContractEditError,
    InvalidContractSpecError,
    InvalidTrainingDataError,
)
from plinth.errors.feedback import (
    AlreadyResolvedError,
    InvalidEndTimeError,
    InvalidGateInputError,
    InvalidReviewLabelError,
    InvalidReviewPolicyError,
    InvalidWindowError,
    MissingGateInputError,
    MissingReviewLabelError,
    MonitorError,
    NoBaselineTrafficError,
    NoLabelStoredError,
    NoOodReferenceError,
    NoReferenceProfileError,
    PerformanceError,
    PredictionPrunedError,
    ReviewClaimedError,
    ReviewError,
    ReviewItemNotFoundError,
    UnknownBaselineError,
    UnknownReviewActionError,
    UnknownReviewStatusError,
)
from plinth.errors.privacy import ReplayRedactedError
from plinth.errors.registry import (
    ArtifactMissingError,
    BadOutputOnDataError,
    EmptyTrainingDataError,
    FeatureCountError,
    HashMismatchError,
    InvalidArtifactNameError,
    InvalidModelNameError,
    InvalidTaskError,
    LightGBMLabelsError,
    MissingFeaturesError,
    MissingTargetError,
    MlflowModelNotFoundError,
    ModelFailedOnDataError,
    ModelFileNotFoundError,
    ModelLoadError,
    ModelNotFoundError,
    PickleNotTrustedError,
    RegistryError,
    UnknownArtifactFormatError,
    UnknownTargetLabelsError,
    UnsupportedMlflowFlavorError,
    UnsupportedModelError,
    UntrustedTypesError,
    VersionNotFoundError,
)
from plinth.errors.request import (
    BadModelReferenceError,
    BadTagError,
    BodyTooLargeError,
    CliError,
    DataError,
    DataFileNotFoundError,
    EmptyRequestError,
    HttpStatusError,
    InvalidBodyError,
    InvalidDurationError,
    InvalidParametersError,
    LabelsFileColumnsError,
    MalformedJsonError,
    ModelSourceChoiceError,
    PathNotFoundError,
    RequestError,
    ResolutionChoiceError,
    RetentionOrderError,
    TooManyRecordsError,
    UnknownOutputFormatError,
    UnreadableContractFileError,
    UnreadableDataError,
    UnsupportedDataFormatError,
)
from plinth.errors.rollout import (
    DeployError,
    DeploymentChangedError,
    InvalidDeploymentError,
    NoCanaryError,
    NothingToRollBackError,
    RevisionNotFoundError,
)
from plinth.errors.serving import (
    BadModelOutputError,
    DeadlineExceededError,
    FallbackExhaustedError,
    InvalidOutputContractError,
    ModelError,
    ModelRaisedError,
    NoDefaultOutputError,
    PredictionNotFoundError,
    RouteError,
    ScoringFailedError,
)
from plinth.errors.statistics import (
    DriftError,
    DriftShapeMismatchError,
    EmptyCountsError,
    EstimationError,
    EstimationUnknownLabelError,
    IncompatibleProfileError,
    InvalidAttributionInputError,
    InvalidChartInputError,
    InvalidEstimationInputError,
    InvalidNeighboursInputError,
    InvalidProfileKindsError,
    InvalidProfileOutputsError,
    InvalidProfileParameterError,
    MetricsError,
    MetricsShapeMismatchError,
    MetricsUnknownLabelError,
    NoMetricsDataError,
    NonFiniteMetricsInputError,
    NotFittedError,
    ProfileError,
    UnsupportedProfileFormatError,
)
from plinth.errors.store import (
    SchemaMissingError,
    SchemaTooNewError,
    StoreClosedError,
    StoreConflictError,
    StoreError,
    StoreFailureError,
    StoreUnavailableError,
    StoreWriteError,
    UnstorableValueError,
)

__all__ = [
    "MAX_LISTED_PROBLEMS",
    "PROBLEM_CODES",
    "AlreadyResolvedError",
    "ArtifactMissingError",
    "AuthError",
    "BadModelOutputError",
    "BadModelReferenceError",
    "BadOutputOnDataError",
    "BadTagError",
    "BodyTooLargeError",
    "CanaryPolicyError",
    "CliError",
    "ConfigError",
    "ContractError",
    "ContractViolationError",
    "DataError",
    "DataFileNotFoundError",
    "DatabaseUrlError",
    "DeadlineExceededError",
    "DeployError",
    "DeploymentChangedError",
    "DriftError",
    "DriftMethodError",
    "DriftShapeMismatchError",
    "EmptyCountsError",
    "EmptyRequestError",
    "EmptyTrainingDataError",
    "EstimationError",
    "EstimationUnknownLabelError",
    "FallbackExhaustedError",
    "FeatureCountError",
    "ForbiddenError",
    "HashMismatchError",
    "HttpStatusError",
    "IncompatibleContractEditError",
    "IncompatibleProfileError",
    "InternalError",
    "InvalidArtifactNameError",
    "InvalidAttributionInputError",
    "InvalidBodyError",
    "InvalidChartInputError",
    "InvalidConfigError",
    "InvalidContractSpecError",
    "InvalidDeploymentError",
    "InvalidDurationError",
    "InvalidEndTimeError",
    "InvalidEstimationInputError",
    "InvalidGateInputError",
    "InvalidModelNameError",
    "InvalidNeighboursInputError",
    "InvalidOutputContractError",
    "InvalidParametersError",
    "InvalidProfileKindsError",
    "InvalidProfileOutputsError",
    "InvalidProfileParameterError",
    "InvalidReviewLabelError",
    "InvalidReviewPolicyError",
    "InvalidTaskError",
    "InvalidTokenError",
    "InvalidTrainingDataError",
    "InvalidWindowError",
    "LabelsFileColumnsError",
    "LightGBMLabelsError",
    "MalformedJsonError",
    "MetricsError",
    "MetricsShapeMismatchError",
    "MetricsUnknownLabelError",
    "MissingExtraError",
    "MissingFeaturesError",
    "MissingGateInputError",
    "MissingReviewLabelError",
    "MissingTargetError",
    "MissingTokenError",
    "MlflowModelNotFoundError",
    "ModelError",
    "ModelFailedOnDataError",
    "ModelFileNotFoundError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelRaisedError",
    "ModelSourceChoiceError",
    "MonitorError",
    "NoBaselineTrafficError",
    "NoCanaryError",
    "NoDefaultOutputError",
    "NoLabelStoredError",
    "NoMetricsDataError",
    "NoOodReferenceError",
    "NoReferenceProfileError",
    "NonFiniteMetricsInputError",
    "NotFittedError",
    "NotFoundError",
    "NotServingError",
    "NothingToRollBackError",
    "PathNotFoundError",
    "PerformanceError",
    "PickleNotTrustedError",
    "PlinthError",
    "PredictionNotFoundError",
    "PredictionPrunedError",
    "Problem",
    "ProblemCode",
    "ProfileError",
    "RegistryError",
    "RemoteError",
    "ReplayRedactedError",
    "RequestError",
    "ResolutionChoiceError",
    "RetentionOrderError",
    "ReviewClaimedError",
    "ReviewError",
    "ReviewItemNotFoundError",
    "RevisionNotFoundError",
    "RouteError",
    "SchemaMissingError",
    "SchemaTooNewError",
    "ScoringFailedError",
    "SqliteSynchronousError",
    "StoreClosedError",
    "StoreConflictError",
    "StoreError",
    "StoreFailureError",
    "StoreUnavailableError",
    "StoreWriteError",
    "TokenNotFoundError",
    "TokensSettingError",
    "TooManyAuthFailuresError",
    "TooManyRecordsError",
    "UnknownArtifactFormatError",
    "UnknownBaselineError",
    "UnknownOutputFormatError",
    "UnknownReviewActionError",
    "UnknownReviewStatusError",
    "UnknownRoleError",
    "UnknownTargetLabelsError",
    "UnreadableContractFileError",
    "UnreadableDataError",
    "UnstorableValueError",
    "UnsupportedDataFormatError",
    "UnsupportedMlflowFlavorError",
    "UnsupportedModelError",
    "UnsupportedProfileFormatError",
    "UntrustedTypesError",
    "VersionNotFoundError",
    "error_class",
    "leaves",
    "problem_code",
]
