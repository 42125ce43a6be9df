"""What the prediction log may keep of a record: redacted fields, keyed hashes, retention.

The log keeps raw inputs so any answer can be replayed, and raw inputs often hold personal
data. A model's ``[models.NAME.log]`` policy says which fields never reach the store
(``redact``: dropped), which are kept only as a keyed hash (``hash``: HMAC-SHA256 under a
secret key, so the same customer id hashes to the same value and joins still work, while
the value cannot be recovered or guessed by hashing candidates without the key), and how
long rows are kept (``retention``). Applying the policy is pure and runs on the scoring
thread before a row is built, so the store never sees a raw value it should not keep.

Each changed field leaves a warning on the stored row (``log.redacted`` / ``log.hashed``),
so replay can say exactly which fields make an exact replay impossible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from plinth.errors.privacy import HASHED, REDACTED


def keyed_hash(key: bytes, value: Any) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, as 64 hex digits.

    A string is hashed as its UTF-8 bytes; any other JSON value as its compact JSON text,
    so an id sent as ``17`` or as ``"17"`` hashes alike. To join another table on a hashed
    field, hash its column the same way with the same key.

    >>> keyed_hash(b"k", "c-17")
    'cc1818b400e186823acaf58b43c7477cb3e1861042bd696a07c41513f6b4b055'
    >>> keyed_hash(b"k", 17) == keyed_hash(b"k", "17")
    True
    """
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LogPolicy:
    """One model's log policy; the default keeps everything, forever (until pruned)."""

    redact: frozenset[str] = frozenset()
    hash: frozenset[str] = frozenset()
    retention: timedelta | None = None
    hash_key: bytes = field(default=b"", repr=False)
    #: Store the request key (the caller's ``key``, often the subject's id) as its keyed hash.
    hash_request_key: bool = False

    def stored_key(self, key: str | None) -> str | None:
        """The request key as the log keeps it: its keyed hash under ``hash_request_key``,
        so ``plinth forget --key K`` and labels by key find it by hashing ``K`` again.

        >>> LogPolicy(hash_request_key=True, hash_key=b"k").stored_key("c-17")[:8]
        'cc1818b4'
        >>> LogPolicy().stored_key("c-17"), LogPolicy(hash_request_key=True).stored_key(None)
        ('c-17', None)
        """
        if key is None or not self.hash_request_key:
            return key
        return keyed_hash(self.hash_key, key)

    @property
    def changes_records(self) -> bool:
        return bool(self.redact or self.hash)

    def touched(self, record: Mapping[str, Any]) -> list[str]:
        """The fields of ``record`` this policy redacts or hashes, in record order."""
        return [k for k in record if k in self.redact or k in self.hash]

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as the log may keep it (the same object when nothing changes).

        >>> p = LogPolicy(redact=frozenset({"email"}), hash=frozenset({"id"}), hash_key=b"k")
        >>> kept = p.apply({"id": "c-17", "email": "a@b.c", "age": 41})
        >>> sorted(kept), kept["id"][:8], kept["age"]
        (['age', 'id'], 'cc1818b4', 41)
        """
        if not self.touched(record):
            return record
        kept: dict[str, Any] = {}
        for name, value in record.items():
            if name in self.redact:
                continue
            if name in self.hash and value is not None:
                value = keyed_hash(self.hash_key, value)
            kept[name] = value
        return kept

    def marks(self, record: Mapping[str, Any], model: str) -> list[dict[str, Any]]:
        """One warning per field of ``record`` the log will not keep as sent."""
        out = []
        for name in self.touched(record):
            if name in self.redact:
                out.append(
                    {
                        "code": REDACTED,
                        "message": f"{name!r} was removed before storage "
                        f"([models.{model}.log] redact)",
                        "field": name,
                    }
                )
            else:
                out.append(
                    {
                        "code": HASHED,
                        "message": f"{name!r} is stored as a keyed hash "
                        f"([models.{model}.log] hash)",
                        "field": name,
                    }
                )
        return out


def altered_fields(warnings: list[dict[str, Any]]) -> dict[str, str]:
    """The fields a stored row's warnings say were redacted or hashed: field -> code."""
    return {
        str(w["field"]): str(w["code"])
        for w in warnings
        if isinstance(w, dict) and w.get("code") in (REDACTED, HASHED) and "field" in w
    }
