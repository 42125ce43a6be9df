"""The request path after the contract: the model, the router and the prediction log."""

from __future__ import annotations

from plinth.errors.base import NotFoundError, PlinthError, problem_code


class ModelError(PlinthError):
    """The model raised, was too slow or broke its output contract; ``model.*`` (503).

    These are the failures a fallback chain and a circuit breaker act on.
    """

    status = 503


class ModelRaisedError(ModelError):
    """The model raised while predicting."""

    code = "model.error"
    hint = "This is a model failure, not a caller error; check the model and its logs."


class DeadlineExceededError(ModelError):
    """The version did not answer within the request's deadline."""

    code = "model.deadline_exceeded"
    hint = "The model is slow or the worker is overloaded."


class BadModelOutputError(ModelError):
    """The model returned NaN/inf, a wrong shape or invalid probabilities."""

    code = "model.bad_output"
    hint = "The model produced NaN/inf, a wrong shape or invalid probabilities."


class ScoringFailedError(ModelError):
    """Scoring failed in Plinth's own code; the batch failed, the server keeps serving."""

    code = "model.internal"
    hint = "This is a Plinth bug; the request was not served. Please report it."


class InvalidOutputContractError(ModelError):
    """A version's stored output contract is invalid."""

    code = "model.invalid_output_contract"
    status = 400
    hint = "fix the output_contract JSON of the version"


class RemoteUnavailableError(ModelError):
    """A remote model's endpoint did not answer after its retries (time-outs, 429, 5xx)."""

    code = "model.remote_unavailable"
    hint = (
        "The provider is down, slow or rate-limiting; the fallback chain answers meanwhile. "
        "Check the endpoint, its status page and the spec's [retry] settings."
    )


class RemoteRefusedError(ModelError):
    """A remote model's endpoint refused the request (a 4xx other than 429: not retried)."""

    code = "model.remote_refused"
    hint = "Check the spec's base_url, model name and credentials (the env variable it names)."


class RemoteSchemaError(ModelError):
    """A remote model's answer was not JSON matching its output schema, even after a re-ask."""

    code = "model.remote_schema"
    hint = (
        "The model did not follow the output schema; tighten the prompt, lower the "
        "temperature, or raise [output] reask in a new version."
    )


class RemoteBudgetError(ModelError):
    """A remote model spent its daily budget and is set to stop calling (on_budget=fallback)."""

    code = "model.budget_exhausted"
    hint = (
        "The day's budget ([cost] budget_per_day) is spent; the fallback chain answers until "
        "midnight UTC. Raise the budget in a new version or deploy a cheaper one."
    )


class RemoteCredentialsError(ModelError):
    """The environment variable a remote spec names for its credential is not set."""

    code = "model.remote_credentials"
    hint = "Export the variable named by the spec's api_key_env in the server's environment."


BAD_OUTPUT = problem_code(
    ModelError,
    "model.bad_output",
    "One record's output is not finite, not shaped or not a distribution.",
)


class RouteError(PlinthError):
    """The router found no answer: every entry of the fallback chain failed; ``route.*`` (503)."""

    status = 503


class FallbackExhaustedError(RouteError):
    """Every entry of the fallback chain failed; the problems give each one's reason."""

    code = "route.exhausted"
    hint = "See each listed reason; `plinth history NAME` shows the deployment."


class NoDefaultOutputError(RouteError):
    """The chain fell back to the version's default output, and it has none stored."""

    code = "route.no_default"
    hint = "Register the version again with training data to store a default output."


BREAKER_OPEN = problem_code(
    RouteError, "route.breaker_open", "A version was skipped: its circuit breaker is open."
)
NO_DEFAULT = problem_code(
    RouteError, "route.no_default", "The default output was wanted but none is stored."
)
DEFAULT_USED = problem_code(
    RouteError, "route.default", "The answer is the version's stored default output.", "warning"
)
FALLBACK_USED = problem_code(
    RouteError, "route.fallback", "The answer came from a fallback entry; lists why.", "warning"
)


class PredictionNotFoundError(NotFoundError):
    """No prediction with this id is in the log (never made, or pruned)."""

    code = "log.prediction_not_found"
    status = 404
    hint = (
        "Predictions older than the retention window (30 days by default) are pruned; "
        "check the id came from this deployment."
    )
