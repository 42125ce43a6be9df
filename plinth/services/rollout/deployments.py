"""Deployments: which versions of a model serve traffic, and how, as append-only revisions.

A spec names the champion, an optional canary with a weight (percent of traffic), shadow
versions that get a copy of traffic after the reply, a fallback chain (versions, ending
perhaps in ``default``, the majority-class / median answer stored at registration) and a
per-attempt deadline. Every change — deploy, promote, rollback, an automated canary
decision — is a new revision with who, when and why, so ``history`` is the audit trail and
``rollback`` is just "append an older spec again".

A model that was never deployed serves its newest version as champion, with no canary,
shadows or fallback: the behaviour from before deployments existed.
"""

from __future__ import annotations

import getpass
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from plinth.core.canary_policy import CanaryPolicy
from plinth.errors import (
    ConfigError,
    DeploymentChangedError,
    InvalidDeploymentError,
    NoCanaryError,
    NothingToRollBackError,
    Problem,
    RevisionNotFoundError,
)
from plinth.errors.config import CANARY_INVALID_SETTING, CANARY_UNKNOWN_SETTING
from plinth.errors.rollout import (
    CANARY_IS_CHAMPION,
    DEFAULT_NOT_LAST,
    DUPLICATE_FALLBACK,
    DUPLICATE_SHADOW,
    FALLBACK_IS_CHAMPION,
    INVALID_DEADLINE,
    INVALID_FALLBACK,
    INVALID_WEIGHT,
    SHADOW_IS_SERVING,
    UNKNOWN_VERSION,
)
from plinth.services import audit
from plinth.store import Store
from plinth.store.deployments import DeploymentStore, NewRevision, RevisionRecord
from plinth.store.notifications import Listener
from plinth.store.workers import ContractEdit, WorkerStore

DEFAULT = "default"
MAX_DEADLINE_MS = 600_000
FallbackEntry = int | str

#: The canary-analysis settings ``plinth deploy`` takes as flags and ``POST
#: /v1/deployments/{name}`` as fields, by those names, with the policy key each sets
#: (``plinth.core.canary_policy.CanaryPolicy``) and how to write it.
CANARY_SETTINGS: dict[str, tuple[str, str]] = {
    "auto": (
        "action",
        "true: the analysis promotes and rolls back by itself; false: it only reports.",
    ),
    "min_requests": ("min_requests", "A whole number of requests per arm, e.g. 500."),
    "min_duration": (
        "min_duration_s",
        "Seconds of canary traffic before a promotion, e.g. 600.",
    ),
    "max_error_rate": (
        "max_error_rate_increase",
        "The tolerated error-rate increase over the champion, as a fraction: 0.01 = 1 point.",
    ),
    "max_p95_increase": (
        "max_p95_increase",
        "The tolerated p95 latency increase, as a fraction: 0.25 = 25 %.",
    ),
    "max_output_distance": (
        "max_output_distance",
        "The largest Jensen-Shannon distance between the arms' outputs, e.g. 0.1.",
    ),
    "scorer": (
        "scorer",
        "module:function(predicted, expected) -> score in [0, 1], judging labelled answers.",
    ),
}
_POLICY_HINT = "See docs/rollout.md, 'Automated canary analysis', for every setting."


@dataclass(frozen=True)
class Canary:
    """A version getting ``weight`` percent of live traffic beside the champion."""

    version: int
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "weight": self.weight}


@dataclass(frozen=True)
class DeploymentSpec:
    """How one model name is served; stored whole in every revision."""

    champion: int
    canary: Canary | None = None
    shadows: tuple[int, ...] = ()
    fallback: tuple[FallbackEntry, ...] = ()
    deadline_ms: int | None = None
    # Automated canary analysis policy (see plinth.services.rollout.canary); None = manual only.
    analysis: dict[str, Any] | None = None

    def versions(self) -> set[int]:
        """Every version this spec needs loaded in a worker."""
        found = {self.champion, *self.shadows}
        found.update(v for v in self.fallback if isinstance(v, int))
        if self.canary is not None:
            found.add(self.canary.version)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "canary": None if self.canary is None else self.canary.to_dict(),
            "shadows": list(self.shadows),
            "fallback": list(self.fallback),
            "deadline_ms": self.deadline_ms,
            "analysis": self.analysis,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeploymentSpec:
        canary = d.get("canary")
        return cls(
            champion=int(d["champion"]),
            canary=None
            if canary is None
            else Canary(int(canary["version"]), float(canary["weight"])),
            shadows=tuple(int(v) for v in d.get("shadows") or ()),
            fallback=tuple(v if v == DEFAULT else int(v) for v in d.get("fallback") or ()),
            deadline_ms=None if d.get("deadline_ms") is None else int(d["deadline_ms"]),
            analysis=d.get("analysis"),
        )

    def describe(self) -> str:
        """One line for the CLI: champion, canary, shadows, fallback, deadline."""
        parts = [f"champion {self.champion}"]
        if self.canary is not None:
            parts.append(f"canary {self.canary.version} at {self.canary.weight:g}%")
        if self.shadows:
            parts.append("shadows " + ", ".join(map(str, self.shadows)))
        if self.fallback:
            parts.append("fallback " + " → ".join(map(str, self.fallback)))
        if self.deadline_ms is not None:
            parts.append(f"deadline {self.deadline_ms} ms")
        return ", ".join(parts)


@dataclass(frozen=True)
class Revision:
    """A stored revision with its spec parsed."""

    name: str
    revision: int
    id: int
    spec: DeploymentSpec
    action: str
    who: str
    reason: str
    created_at: datetime
    evidence: dict[str, Any] | None = None

    @classmethod
    def from_record(cls, record: RevisionRecord) -> Revision:
        return cls(
            name=record.name,
            revision=record.revision,
            id=record.id,
            spec=DeploymentSpec.from_dict(record.spec),
            action=record.action,
            who=record.who,
            reason=record.reason,
            created_at=record.created_at,
            evidence=record.evidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "spec": self.spec.to_dict(),
            "action": self.action,
            "who": self.who,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "evidence": self.evidence,
        }


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


class Deployments:
    """Create, inspect and change deployments; every change appends a revision."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.revisions = DeploymentStore(store)

    # -- reading -----------------------------------------------------------------------------

    def current(self, name: str) -> Revision | None:
        record = self.revisions.latest(name)
        return None if record is None else Revision.from_record(record)

    def effective(self, name: str) -> tuple[DeploymentSpec, Revision | None]:
        """The spec that serves ``name`` now: its live revision, else the newest version."""
        live = self.current(name)
        if live is not None:
            return live.spec, live
        newest = self.store.get_version(name)  # raises registry.model_not_found
        return DeploymentSpec(champion=newest.version), None

    def history(self, name: str) -> list[Revision]:
        """Every revision of ``name``, newest first; the model must exist."""
        found = [Revision.from_record(r) for r in self.revisions.history(name)]
        if not found:
            self.store.get_version(name)  # a clear error for an unknown model
        return found

    def live(self) -> list[Revision]:
        return [Revision.from_record(r) for r in self.revisions.live()]

    def change_counter(self) -> int:
        return self.revisions.change_counter()

    def counters(self) -> tuple[int, int]:
        """(deployment change counter, contract-edit counter) in one read: what workers poll."""
        return WorkerStore(self.store).counters()

    def contract_edits_since(self, after_id: int) -> list[ContractEdit]:
        return WorkerStore(self.store).contract_edits_since(after_id)

    def listen(self, on_change: Callable[[], None]) -> Listener | None:
        """Be told (on another thread) as soon as any revision is committed; PostgreSQL only,
        None elsewhere (contract edits send the same notification). A hint to poll now:
        ``counters`` stays the truth."""
        return self.revisions.listen(on_change)

    # -- changing ----------------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        version: int,
        *,
        canary: float | None = None,
        shadows: Sequence[int] | None = None,
        fallback: Sequence[FallbackEntry] | None = None,
        deadline_ms: int | None = None,
        analysis: Mapping[str, Any] | None = None,
        canary_settings: Mapping[str, Any] | None = None,
        reason: str = "",
        who: str | None = None,
        problems: Sequence[Problem] = (),
    ) -> Revision:
        """Make ``version`` the champion, or with ``canary`` (percent) the canary.

        Shadows, fallback, deadline and analysis policy not given are kept from the live
        spec (minus any version that now serves traffic), so a routine deploy does not
        silently drop the safety net. ``analysis`` is a canary policy by its own keys;
        ``canary_settings`` the deploy flags (``CANARY_SETTINGS``; None values are not
        given), laid over it. ``problems`` already found in the request (an edge's type
        checks) are reported in the same ``deploy.invalid`` error as the spec's own.
        """
        known = self._known_versions(name)
        policy, policy_problems = canary_policy(analysis, canary_settings)
        found = [*problems, *policy_problems]

        def build(latest: RevisionRecord | None) -> NewRevision:
            base = None if latest is None else DeploymentSpec.from_dict(latest.spec)
            if canary is None:
                champion, new_canary = version, None
            else:
                champion = base.champion if base is not None else max(known)
                new_canary = Canary(version, canary)
            serving = {champion} | ({new_canary.version} if new_canary else set())
            spec = DeploymentSpec(
                champion=champion,
                canary=new_canary,
                shadows=tuple(shadows)
                if shadows is not None
                else tuple(v for v in (base.shadows if base else ()) if v not in serving),
                fallback=tuple(fallback)
                if fallback is not None
                else tuple(v for v in (base.fallback if base else ()) if v != champion),
                deadline_ms=deadline_ms
                if deadline_ms is not None
                else (base.deadline_ms if base else None),
                analysis=policy if policy is not None else (base.analysis if base else None),
            )
            validate(spec, known, found)
            action = "canary" if new_canary is not None else "deploy"
            return self._new(spec, action, reason, who)

        return self._append(name, build)

    def promote(
        self,
        name: str,
        *,
        reason: str = "",
        who: str | None = None,
        action: str = "promote",
        evidence: dict[str, Any] | None = None,
        expect_revision: int | None = None,
    ) -> Revision:
        """The canary becomes the champion at 100 %.

        ``expect_revision`` (the canary analysis) refuses to act on a deployment that changed
        since it was judged.
        """
        known = self._known_versions(name)

        def build(latest: RevisionRecord | None) -> NewRevision:
            base, canary = _with_canary(name, latest, expect_revision, "promote")
            champion = canary.version
            spec = replace(
                base,
                champion=champion,
                canary=None,
                fallback=tuple(v for v in base.fallback if v != champion),
            )
            validate(spec, known)
            return self._new(spec, action, reason, who, evidence)

        return self._append(name, build)

    def rollback(
        self,
        name: str,
        *,
        to: int | None = None,
        reason: str = "",
        who: str | None = None,
        action: str = "rollback",
        evidence: dict[str, Any] | None = None,
    ) -> Revision:
        """Serve an earlier revision's spec again, recorded as a new revision.

        Without ``to`` it is the revision before the live one, so one command undoes the
        last change (and a second one redoes it).
        """
        known = self._known_versions(name)

        def build(latest: RevisionRecord | None) -> NewRevision:
            if latest is None:
                raise NothingToRollBackError(
                    f"{name!r} has never been deployed; there is nothing to roll back.",
                    hint=f"Deploy a version first: plinth deploy {name} VERSION",
                )
            target = latest.revision - 1 if to is None else to
            if to is None and target < 1:
                raise NothingToRollBackError(
                    f"{name!r} has only one revision; there is nothing before it.",
                    hint=f"Deploy the version you want instead: plinth deploy {name} VERSION",
                )
            old = self.revisions.get(name, target) if target != latest.revision else latest
            if old is None or target > latest.revision:
                raise RevisionNotFoundError(
                    f"{name!r} has no revision {target}.",
                    hint=f"Revisions run from 1 to {latest.revision}; see plinth history {name}.",
                )
            spec = DeploymentSpec.from_dict(old.spec)
            validate(spec, known)
            why = reason or f"back to revision {target}"
            return self._new(spec, action, why, who, evidence)

        return self._append(name, build)

    def end_canary(
        self,
        name: str,
        *,
        reason: str,
        evidence: dict[str, Any],
        who: str = "canary-analysis",
        expect_revision: int | None = None,
        action: str = "auto-rollback",
    ) -> Revision:
        """Stop the canary (champion keeps all traffic): the analysis's "roll back", and
        the console's "stop canary" (``action="stop-canary"``)."""
        known = self._known_versions(name)

        def build(latest: RevisionRecord | None) -> NewRevision:
            base, _ = _with_canary(name, latest, expect_revision, "stop")
            spec = replace(base, canary=None)
            validate(spec, known)
            return self._new(spec, action, reason, who, evidence)

        return self._append(name, build)

    def _append(self, name: str, build: Callable[[RevisionRecord | None], NewRevision]) -> Revision:
        """Commit the revision ``build`` makes, and record it in the audit trail
        (``deployment.<action>``: deploy, canary, promote, rollback, stop-canary and the
        analysis's auto-promote / auto-rollback), so ``plinth audit`` lists every change."""
        revision = Revision.from_record(self.revisions.append(name, build))
        audit.record(
            self.store,
            f"deployment.{revision.action}",
            name,
            revision.who,
            revision=revision.revision,
            spec=revision.spec.describe(),
            reason=revision.reason,
        )
        return revision

    def _known_versions(self, name: str) -> set[int]:
        versions = {v.version for v in self.store.list_versions(name)}
        if not versions:
            self.store.get_version(name)  # raises registry.model_not_found with a listing
        return versions

    @staticmethod
    def _new(
        spec: DeploymentSpec,
        action: str,
        reason: str,
        who: str | None,
        evidence: dict[str, Any] | None = None,
    ) -> NewRevision:
        return NewRevision(
            spec=spec.to_dict(),
            action=action,
            who=who or current_user(),
            reason=reason,
            created_at=datetime.now(UTC),
            evidence=evidence,
        )


def _with_canary(
    name: str, latest: RevisionRecord | None, expect_revision: int | None, verb: str
) -> tuple[DeploymentSpec, Canary]:
    """The live spec, which must still be the judged revision and have a canary."""
    _expect(name, latest, expect_revision)
    base = None if latest is None else DeploymentSpec.from_dict(latest.spec)
    if base is None or base.canary is None:
        raise NoCanaryError(
            f"{name!r} has no canary to {verb}.",
            hint=f"Start one first: plinth deploy {name} VERSION --canary 10",
        )
    return base, base.canary


def _expect(name: str, latest: RevisionRecord | None, expected: int | None) -> None:
    """Refuse to change a deployment that moved on since the caller looked at it."""
    if expected is not None and (latest is None or latest.revision != expected):
        found = None if latest is None else latest.revision
        raise DeploymentChangedError(
            f"{name!r} changed (revision {found}, expected {expected}); nothing was done.",
            hint=f"See plinth history {name}, then try again.",
        )


def validate(spec: DeploymentSpec, known: set[int], also: Sequence[Problem] = ()) -> None:
    """Raise one ``deploy.invalid`` error listing every problem with the spec (and ``also``,
    problems found before it was built)."""
    problems = [*also, *spec_problems(spec, known)]
    if problems:
        raise InvalidDeploymentError(
            problems, hint=f"Registered versions: {', '.join(map(str, sorted(known)))}."
        )


def spec_problems(spec: DeploymentSpec, known: set[int]) -> list[Problem]:
    """Every reason ``spec`` cannot serve, each with a stable code."""
    problems: list[Problem] = []

    def unknown(version: int, where: str) -> None:
        if version not in known:
            problems.append(
                Problem(
                    UNKNOWN_VERSION,
                    f"version {version} is not registered",
                    "Register it first, or pick one of the registered versions.",
                    where,
                )
            )

    unknown(spec.champion, "champion")
    if spec.canary is not None:
        unknown(spec.canary.version, "canary.version")
        weight = spec.canary.weight
        if not math.isfinite(weight) or not 0.0 <= weight <= 100.0:
            problems.append(
                Problem(
                    INVALID_WEIGHT,
                    f"canary weight {weight:g} is not between 0 and 100",
                    "Give the canary's share of traffic in percent, e.g. --canary 10.",
                    "canary.weight",
                )
            )
        if spec.canary.version == spec.champion:
            problems.append(
                Problem(
                    CANARY_IS_CHAMPION,
                    f"version {spec.champion} cannot be both champion and canary",
                    "Deploy the current champion first, then the new version with --canary.",
                    "canary.version",
                )
            )
    serving = {spec.champion} | ({spec.canary.version} if spec.canary else set())
    for i, shadow in enumerate(spec.shadows):
        unknown(shadow, f"shadows[{i}]")
        if shadow in serving:
            problems.append(
                Problem(
                    SHADOW_IS_SERVING,
                    f"version {shadow} already serves live traffic",
                    "A shadow is a version that only receives copies of traffic.",
                    f"shadows[{i}]",
                )
            )
    if len(set(spec.shadows)) != len(spec.shadows):
        problems.append(Problem(DUPLICATE_SHADOW, "a shadow is listed twice", field="shadows"))
    seen: set[FallbackEntry] = set()
    for i, entry in enumerate(spec.fallback):
        where = f"fallback[{i}]"
        if entry == DEFAULT:
            if i != len(spec.fallback) - 1:
                problems.append(
                    Problem(
                        DEFAULT_NOT_LAST,
                        "'default' must be the last entry of the fallback chain",
                        "Nothing after the default responder would ever be reached.",
                        where,
                    )
                )
        elif isinstance(entry, int) and not isinstance(entry, bool):
            unknown(entry, where)
            if entry == spec.champion:
                problems.append(
                    Problem(
                        FALLBACK_IS_CHAMPION,
                        f"the champion ({entry}) cannot be its own fallback",
                        "List other versions, then 'default'.",
                        where,
                    )
                )
        else:
            problems.append(
                Problem(
                    INVALID_FALLBACK,
                    f"{entry!r} is neither a version number nor 'default'",
                    "Write fallback entries as version numbers or 'default'.",
                    where,
                )
            )
        if entry in seen:
            problems.append(Problem(DUPLICATE_FALLBACK, f"{entry!r} is listed twice", field=where))
        seen.add(entry)
    if spec.deadline_ms is not None and not 0 < spec.deadline_ms <= MAX_DEADLINE_MS:
        problems.append(
            Problem(
                INVALID_DEADLINE,
                f"deadline {spec.deadline_ms} ms is not between 1 and {MAX_DEADLINE_MS}",
                "Give each model attempt's budget in milliseconds, e.g. --deadline-ms 200.",
                "deadline_ms",
            )
        )
    return problems


def canary_policy(
    analysis: Mapping[str, Any] | None, settings: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The canary policy a deploy stores (None: keep the live one) and every problem with it.

    ``analysis`` holds policy keys as in ``[models.NAME.canary]``; ``settings`` the deploy
    flags by ``CANARY_SETTINGS`` name (None = not given), which win. Validation is
    ``CanaryPolicy``'s, so the CLI, HTTP and plinth.toml accept exactly the same values;
    each problem names the setting as the caller spelled it and says how to write it.
    """
    chosen: dict[str, Any] = dict(analysis or {})
    spelled = {key: key for key in chosen}
    problems: list[Problem] = []
    for flag, value in (settings or {}).items():
        if value is None:
            continue
        if flag not in CANARY_SETTINGS:
            problems.append(
                Problem(
                    CANARY_UNKNOWN_SETTING,
                    f"unknown setting {flag!r}",
                    "Settings: " + ", ".join(CANARY_SETTINGS) + ".",
                    flag,
                )
            )
            continue
        key, _ = CANARY_SETTINGS[flag]
        if flag == "auto":
            if not isinstance(value, bool):
                problems.append(
                    Problem(
                        CANARY_INVALID_SETTING,
                        f"auto must be true or false, got {value!r}",
                        CANARY_SETTINGS["auto"][1],
                        flag,
                    )
                )
                continue
            value = "auto" if value else "report"
        chosen[key] = value
        spelled[key] = flag
    if not chosen and not problems:
        return None, []
    try:
        CanaryPolicy.from_mapping(chosen, where="the deploy settings")
    except ConfigError as exc:
        hints = {key: hint for key, hint in CANARY_SETTINGS.values()}
        for p in exc.problems:
            key = p.field or ""
            flag = spelled.get(key, key)
            hint = hints.get(key, _POLICY_HINT) if flag in CANARY_SETTINGS else _POLICY_HINT
            where = flag if flag in CANARY_SETTINGS else f"analysis.{key}"
            message = p.message.replace(key, flag) if key and flag != key else p.message
            problems.append(Problem(p.code, message, p.hint or hint, where))
    return (chosen or None), problems


def parse_fallback(entries: Sequence[str | int]) -> list[FallbackEntry]:
    """CLI/HTTP spelling to entries: digits are versions, anything else is kept for validation."""
    parsed: list[FallbackEntry] = []
    for entry in entries:
        if isinstance(entry, int) or (isinstance(entry, str) and entry.strip().isdigit()):
            parsed.append(int(entry))
        else:
            parsed.append(str(entry).strip())
    return parsed
