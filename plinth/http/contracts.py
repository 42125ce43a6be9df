"""Admin route for editing a version's input contract over HTTP: ``plinth contract set``.

``PUT /v1/models/{name}/contract`` with ``{"contract": {...}, "version": N?, "reason": "..."?}``
replaces the contract (same fields and kinds) as a new contract revision, exactly as the CLI
does (``plinth.services.registry.contracts.update_contract``): refused with every problem
listed when it does not fit, recorded in the audit trail as ``contract.edit`` under the
token's name, and picked up by every worker and replica within a poll interval; the answer
waits (10 s at most) until every live worker serves it, and says so in ``applied``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from plinth.errors import InvalidBodyError, Problem
from plinth.errors.request import INVALID_PARAMETER, UNKNOWN_FIELD
from plinth.http.edge import caller_of, json_response, read_json, runtime_of
from plinth.services.process import in_thread
from plinth.services.registry.contracts import update_contract
from plinth.services.rollout.applied import DEFAULT_WAIT_S, wait_for_contract

router = APIRouter(tags=["models"])

MAX_BODY_BYTES = 1 << 20
HINT = (
    'Send {"contract": <the JSON of `plinth contract show`, edited>} and optionally '
    '"version": N (default: the newest) and "reason": "why".'
)


class ContractEditBody(BaseModel):
    """A contract edit: the whole edited contract, which version, and why."""

    contract: dict[str, Any] = Field(description="The edited contract (`plinth contract show`).")
    version: int | None = Field(default=None, description="The version; default the newest.")
    reason: str = Field(default="", description="Why, kept in the contract history.")


@router.put(
    "/v1/models/{name}/contract",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ContractEditBody.model_json_schema()}},
        }
    },
)
async def set_contract(name: str, request: Request) -> Response:
    """Replace a version's input contract (admin); a new contract revision."""
    body = await read_json(request, MAX_BODY_BYTES, hint=HINT, too_large_hint=HINT)
    document, version, reason = _parse(body)
    runtime = runtime_of(request)
    record = await asyncio.to_thread(
        lambda: update_contract(
            runtime.store, name, version, document, reason=reason, who=caller_of(request)
        )
    )
    revision = int(record.metadata["contract_revision"])
    await runtime.require_serving().router.refresh()  # read-your-writes on this worker
    applied = await in_thread(
        lambda: wait_for_contract(
            runtime.store, record.name, record.version, revision, DEFAULT_WAIT_S
        )
    )
    return json_response(
        {
            "name": record.name,
            "version": record.version,
            "contract_revision": revision,
            "contract": record.metadata["contract"],
            "applied": applied.to_dict(),
        }
    )


def _parse(body: Any) -> tuple[Any, int | None, str]:
    """The contract, version and reason; every problem with the body listed at once."""
    if not isinstance(body, dict):
        raise InvalidBodyError("The body must be a JSON object.", hint=HINT)
    problems = []
    document, version, reason = body.get("contract"), body.get("version"), body.get("reason", "")
    if not isinstance(document, dict):
        problems.append(
            Problem(INVALID_PARAMETER, "'contract' must be an object", HINT, "contract")
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        problems.append(
            Problem(INVALID_PARAMETER, "'version' must be a whole number", HINT, "version")
        )
    if not isinstance(reason, str):
        problems.append(Problem(INVALID_PARAMETER, "'reason' must be text", HINT, "reason"))
    for field in sorted(set(body) - {"contract", "version", "reason"}):
        problems.append(Problem(UNKNOWN_FIELD, f"unknown field {field!r}", HINT, field))
    if problems:
        raise InvalidBodyError("The contract edit is not valid.", hint=HINT, problems=problems)
    return document, version, reason
