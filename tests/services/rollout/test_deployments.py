"""Deployments as append-only revisions: deploy, canary, promote, rollback, validation."""

from __future__ import annotations

import threading

import pytest

from plinth.errors import (
    InvalidDeploymentError,
    NoCanaryError,
    NotFoundError,
    NothingToRollBackError,
    PlinthError,
    RevisionNotFoundError,
)
from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Deployments, DeploymentSpec, parse_fallback
from tests.rollout_support import ConstantModel, register


@pytest.fixture
def service(registry: Registry) -> Deployments:
    for value in (1.0, 2.0, 3.0):
        register(registry, "m", ConstantModel(value))
    return Deployments(registry.store)


def test_a_model_never_deployed_serves_its_newest_version(service: Deployments) -> None:
    spec, revision = service.effective("m")
    assert revision is None and spec == DeploymentSpec(champion=3)
    assert service.history("m") == []
    assert service.change_counter() == 0


def test_every_change_is_a_new_revision_with_who_when_and_why(service: Deployments) -> None:
    first = service.deploy("m", 1, fallback=["default"], deadline_ms=200, reason="go", who="ana")
    canary = service.deploy("m", 2, canary=10, reason="try 2", who="ana")
    promoted = service.promote("m", reason="looks good", who="bo")
    assert [first.revision, canary.revision, promoted.revision] == [1, 2, 3]
    assert canary.spec == DeploymentSpec(
        champion=1,
        canary=canary.spec.canary,
        fallback=("default",),
        deadline_ms=200,
    )
    assert canary.spec.canary is not None and canary.spec.canary.weight == 10.0
    # The canary's champion stays; fallback and deadline carry over unless given.
    assert promoted.spec == DeploymentSpec(champion=2, fallback=("default",), deadline_ms=200)
    history = service.history("m")
    assert [(r.revision, r.action, r.who, r.reason) for r in history] == [
        (3, "promote", "bo", "looks good"),
        (2, "canary", "ana", "try 2"),
        (1, "deploy", "ana", "go"),
    ]
    assert history[0].created_at.tzinfo is not None
    assert service.change_counter() == history[0].id


def test_rollback_appends_the_previous_spec_and_twice_undoes_itself(
    service: Deployments,
) -> None:
    service.deploy("m", 1)
    service.deploy("m", 2)
    back = service.rollback("m")
    assert (back.revision, back.action, back.spec.champion) == (3, "rollback", 1)
    assert back.reason == "back to revision 1"
    again = service.rollback("m")
    assert again.spec.champion == 2
    to_first = service.rollback("m", to=1, reason="known good")
    assert (to_first.spec.champion, to_first.reason) == (1, "known good")


def test_rollback_errors_say_what_to_do(service: Deployments) -> None:
    with pytest.raises(NothingToRollBackError) as never:
        service.rollback("m")
    assert never.value.code == "deploy.nothing_to_rollback"
    service.deploy("m", 1)
    with pytest.raises(NothingToRollBackError) as only_one:
        service.rollback("m")
    assert only_one.value.code == "deploy.nothing_to_rollback"
    with pytest.raises(RevisionNotFoundError) as missing:
        service.rollback("m", to=7)
    assert isinstance(missing.value, NotFoundError) and missing.value.status == 404
    assert missing.value.code == "deploy.revision_not_found"


def test_promote_needs_a_canary(service: Deployments) -> None:
    service.deploy("m", 1)
    with pytest.raises(NoCanaryError) as refused:
        service.promote("m")
    assert refused.value.code == "deploy.no_canary" and refused.value.status == 409


def test_validation_lists_every_problem_with_its_code(service: Deployments) -> None:
    service.deploy("m", 1)
    with pytest.raises(InvalidDeploymentError) as invalid:
        service.deploy(
            "m",
            9,
            canary=150,
            shadows=[1, 8],
            fallback=parse_fallback(["default", "7", "nope"]),
            deadline_ms=0,
        )
    error = invalid.value
    assert error.code == "deploy.invalid" and error.status == 422
    assert sorted((p.code, p.field) for p in error.problems) == sorted(
        [
            ("deploy.unknown_version", "canary.version"),
            ("deploy.invalid_weight", "canary.weight"),
            ("deploy.shadow_is_serving", "shadows[0]"),
            ("deploy.unknown_version", "shadows[1]"),
            ("deploy.default_not_last", "fallback[0]"),
            ("deploy.unknown_version", "fallback[1]"),
            ("deploy.invalid_fallback", "fallback[2]"),
            ("deploy.invalid_deadline", "deadline_ms"),
        ]
    )
    assert len(service.history("m")) == 1  # nothing was recorded


def test_a_canary_cannot_be_the_champion(service: Deployments) -> None:
    service.deploy("m", 2)
    with pytest.raises(InvalidDeploymentError) as invalid:
        service.deploy("m", 2, canary=10)
    assert [p.code for p in invalid.value.problems] == ["deploy.canary_is_champion"]


def test_unknown_models_are_not_found(service: Deployments) -> None:
    with pytest.raises(NotFoundError) as missing:
        service.deploy("nope", 1)
    assert missing.value.code == "registry.model_not_found"
    with pytest.raises(NotFoundError, match="not registered"):
        service.history("nope")


def test_concurrent_changes_get_distinct_consecutive_revisions(service: Deployments) -> None:
    errors: list[PlinthError] = []

    def deploy(version: int) -> None:
        for _ in range(5):
            try:
                service.deploy("m", version)
            except PlinthError as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(v,)) for v in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.revision for r in service.history("m")) == list(range(1, 16))


def test_specs_round_trip_through_json(service: Deployments) -> None:
    revision = service.deploy("m", 3, shadows=[1], fallback=[2, "default"], deadline_ms=80)
    again = service.current("m")
    assert again is not None and again.spec == revision.spec
    assert DeploymentSpec.from_dict(revision.spec.to_dict()) == revision.spec
    assert revision.spec.versions() == {1, 2, 3}
