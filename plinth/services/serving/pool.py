"""The pool of served model versions: loads each once and owns its batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from plinth.config.policies import Policies
from plinth.errors import ModelNotFoundError
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.batcher import Batcher
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.review_gate import ReviewSink
from plinth.services.serving.scoring import BatchObserver, prepare
from plinth.store import Store, VersionRecord


class ModelPool:
    """The versions this worker serves, loaded once each and kept warm."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        log: LogWriter | None,
        *,
        policies: Policies | None = None,
        observers: Sequence[BatchObserver] = (),
        reviews: ReviewSink | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.log = log
        self.reviews = reviews
        self.policies = policies or Policies()  # batching and the review gate, per model
        self.observers = list(observers)
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self._serving: dict[str, int] = {}
        self._locks: dict[tuple[str, int | None], asyncio.Lock] = {}

    @property
    def loaded(self) -> list[ServedModel]:
        return [b.model for b in self._batchers.values()]

    async def get(self, name: str, version: int | None = None) -> Batcher:
        """The batcher for ``name`` (its served version, or the pinned ``version``)."""
        if version is None and name in self._serving:
            return self._batchers[(name, self._serving[name])]
        if version is not None and (name, version) in self._batchers:
            return self._batchers[(name, version)]
        lock = self._locks.setdefault((name, version), asyncio.Lock())
        async with lock:
            record = await asyncio.to_thread(self.store.get_version, name, version)
            key = (name, record.version)
            if key not in self._batchers:
                self._batchers[key] = await self._build(record)
            if version is None:
                self._serving[name] = record.version
            return self._batchers[key]

    async def reload(self, name: str, version: int) -> bool:
        """Load ``name:version`` again from its stored record (a contract edit) and swap it
        in; queued requests finish on the old one. False when it is not loaded here."""
        if (name, version) not in self._batchers:
            return False
        async with self._locks.setdefault((name, version), asyncio.Lock()):
            record = await asyncio.to_thread(self.store.get_version, name, version)
            fresh = await self._build(record)
            old = self._batchers.get((name, version))
            self._batchers[(name, version)] = fresh  # one assignment: each request sees one
        if old is not None:
            await old.drain()
            await old.close()
        return True

    def contract_revisions(self, name: str) -> dict[str, int]:
        """The contract revision of every loaded version of ``name`` (0: as registered)."""
        return {
            str(v): int(b.model.record.metadata.get("contract_revision", 0))
            for (n, v), b in self._batchers.items()
            if n == name
        }

    async def _build(self, record: VersionRecord) -> Batcher:
        model = await asyncio.to_thread(self.registry.load, record)
        await asyncio.to_thread(prepare, model)
        model.review = self.policies.review(record.name)
        model.log_policy = self.policies.log(record.name)
        batching = self.policies.batching(record.name)
        batcher = Batcher(
            model,
            self.log,
            max_batch_records=batching.max_batch_size,
            max_wait_s=batching.max_wait_s,
            max_queue_records=batching.max_queue_records,
            shed=batching.shed,
            observers=self.observers,
            reviews=self.reviews,
        )
        batcher.start()
        return batcher

    def versions_of(self, name: str) -> list[int]:
        """The versions of ``name`` with a live batcher in this worker."""
        return sorted(v for n, v in self._batchers if n == name)

    async def retire(self, name: str, version: int) -> None:
        """Stop serving one version: new requests reload it; queued ones finish first."""
        batcher = self._batchers.pop((name, version), None)
        if self._serving.get(name) == version:
            del self._serving[name]
        if batcher is not None:
            await batcher.drain()
            await batcher.close()

    def serving_version(self, name: str) -> int:
        if name not in self._serving:
            raise ModelNotFoundError(
                f"Model {name!r} is not loaded.",
            )
        return self._serving[name]

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        self._serving.clear()
