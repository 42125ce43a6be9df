"""Admin routes for rollout: read and change a model's deployment, see its history.

Each change is written to the store and this worker applies it at once; the other workers
(and replicas) pick it up from the store's change counter within a poll interval. The route
answers once every live worker reports the revision applied (10 s at most): a worker that
could not load it makes the answer a 503 ``deploy.not_applied`` carrying the load error's
code and hint, one that did not report in time a 504 ``deploy.apply_timeout``; the revision
stays recorded either way. ``GET`` lists what each live worker serves.

``POST /v1/deployments/{name}`` takes what ``plinth deploy`` takes, by the same names, and
checks it the same way: a bad body gets one 422 (``deploy.invalid``) listing every problem
— wrong types, unknown fields, canary-analysis settings out of range, versions that do not
exist, a bad fallback chain — each with a code and a hint.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from plinth.errors import InvalidDeploymentError, Problem
from plinth.errors.rollout import INVALID_BODY, INVALID_FIELD, MISSING_FIELD, UNKNOWN_FIELD
from plinth.http.edge import caller_of, read_json, runtime_of
from plinth.services.process import in_thread
from plinth.services.rollout.applied import DEFAULT_WAIT_S, live_states, wait_for_revision
from plinth.services.rollout.deployments import (
    CANARY_SETTINGS,
    Deployments,
    Revision,
    canary_policy,
    parse_fallback,
)

_Body = TypeVar("_Body", bound=BaseModel)

router = APIRouter(prefix="/v1/deployments/{name}", tags=["deployments"])


MAX_BODY_BYTES = 1 << 20


class DeployBody(BaseModel):
    """``plinth deploy`` as JSON; omitted fields keep the live spec's values.

    Documents the body in OpenAPI; the route parses it itself, so that every problem is
    listed at once with a code and a hint (``parse_deploy_body``).
    """

    version: int = Field(description="Version to deploy (champion, or canary with `canary`).")
    canary: float | None = Field(default=None, description="Make VERSION the canary at this %.")
    shadows: list[int] | None = Field(default=None, description="Versions that get copies.")
    fallback: list[int | str] | None = Field(
        default=None,
        description="Versions tried in order when the routed one fails, then optionally 'default'.",
    )
    deadline_ms: int | None = Field(default=None, description="Per-attempt budget (ms).")
    auto: bool | None = Field(
        default=None, description="Canary analysis acts by itself (false: report only)."
    )
    min_requests: int | None = Field(
        default=None, description="Requests per arm before the analysis decides."
    )
    min_duration: float | None = Field(
        default=None, description="Seconds of canary traffic before promoting."
    )
    max_error_rate: float | None = Field(
        default=None, description="Tolerated error-rate increase (0.01 = 1 point)."
    )
    max_p95_increase: float | None = Field(
        default=None, description="Tolerated p95 latency increase (0.25 = 25 %)."
    )
    max_output_distance: float | None = Field(
        default=None, description="Largest Jensen-Shannon distance of the arms' outputs."
    )
    scorer: str | None = Field(
        default=None,
        description="module:function(predicted, expected) -> score in [0, 1] for labels.",
    )
    analysis: dict[str, Any] | None = Field(
        default=None, description="Canary policy by its plinth.toml keys; the fields above win."
    )
    reason: str = ""
    who: str | None = None


_BODY_HINT = 'Send {"version": 2} plus any of the fields in the OpenAPI document at /docs.'
_FIELD_HINTS = {
    "version": "The registered version number to deploy, e.g. 2.",
    "canary": "The canary's share of traffic in percent, e.g. 10.",
    "shadows": "A list of version numbers, e.g. [3].",
    "fallback": 'A list of version numbers, optionally ending in "default", e.g. [1, "default"].',
    "deadline_ms": "Each model attempt's budget in whole milliseconds, e.g. 200.",
    "analysis": 'An object of canary-policy keys, e.g. {"min_requests": 500}.',
    "reason": "A short text for the history.",
    "who": "A name for the history.",
    **{flag: hint for flag, (_, hint) in CANARY_SETTINGS.items()},
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


_CHECKS: dict[str, tuple[str, Any]] = {
    "version": ("a whole number", _is_int),
    "canary": ("a number", _is_number),
    "shadows": (
        "a list of whole numbers",
        lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    ),
    "fallback": (
        "a list of version numbers and 'default'",
        lambda v: isinstance(v, list) and all(_is_int(x) or isinstance(x, str) for x in v),
    ),
    "deadline_ms": ("a whole number", _is_int),
    "analysis": ("an object", lambda v: isinstance(v, dict)),
    "reason": ("a string", lambda v: isinstance(v, str)),
    "who": ("a string", lambda v: isinstance(v, str)),
    "auto": ("true or false", lambda v: isinstance(v, bool)),
    "min_requests": ("a whole number", _is_int),
    "min_duration": ("a number", _is_number),
    "max_error_rate": ("a number", _is_number),
    "max_p95_increase": ("a number", _is_number),
    "max_output_distance": ("a number", _is_number),
    "scorer": ("a string module:function", lambda v: isinstance(v, str)),
}


def parse_deploy_body(payload: Any) -> tuple[dict[str, Any], list[Problem]]:
    """The well-typed fields of a deploy body (null = not given) and every type problem."""
    if not isinstance(payload, dict):
        raise InvalidDeploymentError(
            [Problem(INVALID_BODY, "not a JSON object", _BODY_HINT)],
            message="The body must be a JSON object.",
            hint=_BODY_HINT,
        )
    fields: dict[str, Any] = {}
    problems: list[Problem] = []
    for key in sorted(set(payload) - set(_CHECKS)):
        problems.append(
            Problem(
                UNKNOWN_FIELD,
                f"unknown field {key!r}",
                "Fields: " + ", ".join(_CHECKS) + ".",
                key,
            )
        )
    if payload.get("version") is None:
        problems.append(
            Problem(MISSING_FIELD, "version is required", _FIELD_HINTS["version"], "version")
        )
    for key, (kind, check) in _CHECKS.items():
        value = payload.get(key)
        if value is None:
            continue
        if check(value):
            fields[key] = value
        else:
            problems.append(
                Problem(
                    INVALID_FIELD,
                    f"{key} must be {kind}, got {value!r}",
                    _FIELD_HINTS[key],
                    key,
                )
            )
    return fields, problems


class PromoteBody(BaseModel):
    reason: str = ""
    who: str | None = None


class RollbackBody(BaseModel):
    to: int | None = Field(default=None, description="Revision to return to; default previous.")
    reason: str = ""
    who: str | None = None


def _service(request: Request) -> Deployments:
    return runtime_of(request).deployments


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _applied(request: Request, revision: Revision) -> dict[str, Any]:
    """Read-your-writes on this worker; then wait for every live worker to report it."""
    runtime = runtime_of(request)
    await runtime.require_serving().router.refresh()
    applied = await in_thread(
        lambda: wait_for_revision(
            runtime.store, revision.name, revision.id, revision.revision, DEFAULT_WAIT_S
        )
    )
    return {**revision.to_dict(), "applied": applied.to_dict()}


@router.get("")
async def get_deployment(name: str, request: Request) -> Response:
    """The live spec and revision (revision null: never deployed, newest version serves)."""
    service = _service(request)
    spec, revision = await asyncio.to_thread(service.effective, name)
    states = await in_thread(lambda: live_states(runtime_of(request).store, name))
    return _json(
        {
            "name": name,
            "revision": None if revision is None else revision.revision,
            "spec": spec.to_dict(),
            "serving": runtime_of(request).require_serving().router.serving(name),
            "workers": [
                {
                    "worker": s.worker,
                    "replica": s.replica,
                    "revision": s.revision,
                    "state": s.state,
                    "error": s.error,
                    "contracts": s.contracts,
                }
                for s in states
            ],
        }
    )


@router.post(
    "",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DeployBody.model_json_schema()}},
        }
    },
)
async def deploy(name: str, request: Request) -> Response:
    """Deploy ``version`` as champion (or as canary with ``canary``); a new revision.

    Takes every ``plinth deploy`` option, canary-analysis settings included; a bad body
    gets one 422 listing every problem with a code and a hint.
    """
    payload = await read_json(
        request, MAX_BODY_BYTES, hint=_BODY_HINT, too_large_hint="A deploy body is small."
    )
    fields, problems = parse_deploy_body(payload)
    settings = {flag: fields.get(flag) for flag in CANARY_SETTINGS}
    service = _service(request)
    if "version" not in fields:  # nothing to build a spec from: report what is known
        _, policy_problems = canary_policy(fields.get("analysis"), settings)
        raise InvalidDeploymentError([*problems, *policy_problems], hint=_BODY_HINT)
    fallback = fields.get("fallback")
    revision = await asyncio.to_thread(
        lambda: service.deploy(
            name,
            fields["version"],
            canary=None if "canary" not in fields else float(fields["canary"]),
            shadows=fields.get("shadows"),
            fallback=None if fallback is None else parse_fallback(fallback),
            deadline_ms=fields.get("deadline_ms"),
            analysis=fields.get("analysis"),
            canary_settings=settings,
            reason=fields.get("reason", ""),
            who=fields.get("who") or caller_of(request),
            problems=problems,
        )
    )
    return _json(await _applied(request, revision), 201)


def _optional_body(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that parses its optional body itself (``_small_body``)."""
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schema.model_json_schema()}},
        }
    }


async def _small_body(request: Request, schema: type[_Body]) -> _Body:
    """An optional small body, read under the server's limits (depth, sizes) before pydantic
    sees it; a wrong field is the same 422 ``request.invalid`` FastAPI would answer."""
    payload = await read_json(
        request, MAX_BODY_BYTES, hint=_BODY_HINT, too_large_hint="This body is small.",
        optional=True,
    )  # fmt: skip
    try:
        return schema.model_validate({} if payload is None else payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None


@router.post("/promote", openapi_extra=_optional_body(PromoteBody))
async def promote(name: str, request: Request) -> Response:
    """The canary becomes champion; a new revision."""
    body = await _small_body(request, PromoteBody)
    service = _service(request)
    revision = await asyncio.to_thread(
        lambda: service.promote(name, reason=body.reason, who=body.who or caller_of(request))
    )
    return _json(await _applied(request, revision), 201)


@router.post("/rollback", openapi_extra=_optional_body(RollbackBody))
async def rollback(name: str, request: Request) -> Response:
    """Serve an earlier revision's spec again (default: the one before the live one)."""
    body = await _small_body(request, RollbackBody)
    service = _service(request)
    revision = await asyncio.to_thread(
        lambda: service.rollback(
            name, to=body.to, reason=body.reason, who=body.who or caller_of(request)
        )
    )
    return _json(await _applied(request, revision), 201)


@router.get("/history")
async def history(name: str, request: Request) -> Response:
    """Every revision, newest first, with who, when, why and any canary-analysis evidence."""
    service = _service(request)
    revisions = await asyncio.to_thread(service.history, name)
    return _json({"name": name, "revisions": [r.to_dict() for r in revisions]})
