"""Editing a version's input contract: validated, same fields, recorded in the metadata.

The contract is inferred at registration but belongs to people: they may tighten a range,
declare a field nullable, or change a repair policy. The field set and kinds cannot
change — the model still needs exactly those columns — so edits that would do that are
refused with every problem listed.

Each edit is a numbered contract revision (``contract_revision`` in the metadata, ``revision``
in its history entry, a ``contract_revisions`` row): serving workers poll for new ones as
they poll deployment revisions, reload the version with the new contract, and report the
revision they serve (``wait_for_contract``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from plinth.core.contract import Contract
from plinth.errors import IncompatibleContractEditError, Problem
from plinth.errors.contract import FIELDS_CHANGED, KIND_CHANGED
from plinth.services import audit
from plinth.store import Store, VersionRecord
from plinth.store.workers import WorkerStore


def update_contract(
    store: Store,
    name: str,
    version: int | None,
    document: Any,
    *,
    reason: str = "",
    who: str = "",
) -> VersionRecord:
    """Replace the contract of ``name:version`` after checking the edit is safe; recorded
    in the audit trail as ``contract.edit``."""
    record = store.get_version(name, version)
    current = Contract.from_dict(record.metadata["contract"])
    edited = Contract.from_dict(document)  # raises contract.invalid_spec on malformed JSON
    problems = _incompatibilities(current, edited)
    if problems:
        raise IncompatibleContractEditError(
            f"The edited contract does not fit {record.ref}.",
            problems=problems,
        )
    metadata = dict(record.metadata)
    revision = int(metadata.get("contract_revision", 0)) + 1
    now = datetime.now(UTC)
    history = list(metadata.get("contract_history", []))
    history.append(
        {
            "revision": revision,
            "replaced_at": now.isoformat(),
            "reason": reason,
            "previous": record.metadata["contract"],
        }
    )
    metadata["contract"] = edited.to_dict()
    metadata["contract_history"] = history
    metadata["contract_revision"] = revision
    updated = WorkerStore(store).record_contract(
        record.name, record.version, metadata, revision=revision, who=who, reason=reason, at=now
    )
    audit.record(
        store, "contract.edit", record.ref, who or audit.current_user(),
        contract_revision=revision, reason=reason,
    )  # fmt: skip
    return updated


def _incompatibilities(current: Contract, edited: Contract) -> list[Problem]:
    problems: list[Problem] = []
    if current.feature_names != edited.feature_names:
        problems.append(
            Problem(
                FIELDS_CHANGED,
                f"fields are {edited.feature_names}, the model needs {current.feature_names}",
                "Edit the fields' settings, not the list of fields.",
            )
        )
        return problems
    for old, new in zip(current.fields, edited.fields, strict=True):
        for attribute in ("kind", "dtype"):
            if getattr(old, attribute) != getattr(new, attribute):
                problems.append(
                    Problem(
                        KIND_CHANGED,
                        f"{attribute} changed from {getattr(old, attribute)!r} "
                        f"to {getattr(new, attribute)!r}",
                        "The model was trained on the original type; register a new version.",
                        field=old.name,
                    )
                )
    return problems
