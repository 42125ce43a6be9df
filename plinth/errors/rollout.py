"""Deployments: revisions, canaries, rollback, and every reason a deployment is invalid."""

from __future__ import annotations

from collections.abc import Sequence

from plinth.errors.base import NotFoundError, PlinthError, Problem, problem_code


class DeployError(PlinthError):
    """A deployment change cannot be made; ``deploy.*`` (422)."""

    status = 422


class InvalidDeploymentError(DeployError):
    """The deployment (or the body asking for it) is invalid; every problem is listed."""

    code = "deploy.invalid"
    hint = "Fix each listed problem; `plinth deploy --help` shows every option."

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        hint: str | None = None,
        message: str | None = None,
    ) -> None:
        noun = "problem" if len(problems) == 1 else "problems"
        default = f"The deployment is invalid ({len(problems)} {noun})."
        super().__init__(message or default, hint=hint, problems=problems)


class NothingToRollBackError(DeployError):
    """The model was never deployed, or has only one revision."""

    code = "deploy.nothing_to_rollback"
    status = 409
    hint = "Deploy the version you want instead: plinth deploy NAME VERSION"


class RevisionNotFoundError(DeployError, NotFoundError):
    """The deployment has no such revision."""

    code = "deploy.revision_not_found"
    status = 404
    hint = "`plinth history NAME` lists the revisions."


class NoCanaryError(DeployError):
    """A canary was promoted or aborted, but the deployment has none."""

    code = "deploy.no_canary"
    status = 409
    hint = "Start one first: plinth deploy NAME VERSION --canary 10"


class DeploymentChangedError(DeployError):
    """The deployment changed since the revision the caller expected; nothing was done."""

    code = "deploy.conflict"
    status = 409
    hint = "See plinth history NAME, then try again."


class RevisionNotAppliedError(DeployError):
    """The revision is recorded, but a live worker could not load what it routes to; the
    workers keep serving the revision before it. Each problem is one worker's load error."""

    code = "deploy.not_applied"
    status = 503
    hint = (
        "Fix the cause each problem names, then deploy again; until then the workers serve "
        "the previous revision (`plinth rollback NAME` records that)."
    )


class ApplyTimeoutError(DeployError):
    """Live workers did not report a change applied within the wait; each problem is one."""

    code = "deploy.apply_timeout"
    status = 504
    hint = (
        "The change is recorded and workers apply it when they can; `GET /v1/deployments/NAME` "
        "shows what each one serves. Check the servers' logs, or wait longer (--wait)."
    )


def _code(code: str, meaning: str) -> str:
    return problem_code(DeployError, code, meaning)


UNKNOWN_VERSION = _code(
    "deploy.unknown_version", "A version the deployment names is not registered."
)
INVALID_WEIGHT = _code("deploy.invalid_weight", "The canary weight is not between 0 and 100.")
CANARY_IS_CHAMPION = _code(
    "deploy.canary_is_champion", "One version is named both champion and canary."
)
SHADOW_IS_SERVING = _code(
    "deploy.shadow_is_serving", "A shadow already serves live traffic (champion or canary)."
)
DUPLICATE_SHADOW = _code("deploy.duplicate_shadow", "A shadow is listed twice.")
DEFAULT_NOT_LAST = _code(
    "deploy.default_not_last", "'default' is not the last entry of the fallback chain."
)
FALLBACK_IS_CHAMPION = _code(
    "deploy.fallback_is_champion", "The champion is listed as its own fallback."
)
INVALID_FALLBACK = _code(
    "deploy.invalid_fallback", "A fallback entry is neither a version number nor 'default'."
)
DUPLICATE_FALLBACK = _code("deploy.duplicate_fallback", "A fallback entry is listed twice.")
INVALID_DEADLINE = _code("deploy.invalid_deadline", "deadline_ms is out of range.")
INVALID_BODY = _code("deploy.invalid_body", "The deploy body is not a JSON object.")
UNKNOWN_FIELD = _code(
    "deploy.unknown_field", "The deploy body has a field the route does not take."
)
MISSING_FIELD = _code("deploy.missing_field", "The deploy body lacks a required field.")
INVALID_FIELD = _code("deploy.invalid_field", "A deploy body field has the wrong type.")
WORKER_PENDING = _code(
    "deploy.worker_pending", "A live worker has not reported the change applied yet."
)
