"""The pool of served model versions: loads each once and owns its batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from plinth.core.review import ReviewPolicy
from plinth.errors import ConfigError, NotFoundError, Problem
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.batcher import Batcher
from plinth.services.serving.logwriter import LogWriter
from plinth.services.serving.review_gate import ReviewSink
from plinth.services.serving.scoring import BatchObserver, prepare
from plinth.store import Store


class ModelPool:
    """The versions this worker serves, loaded once each and kept warm."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        log: LogWriter | None,
        *,
        max_batch_records: int = 64,
        max_wait_s: float = 0.0,
        batching: Callable[[str], tuple[int, float]] | None = None,
        observers: Sequence[BatchObserver] = (),
        reviews: ReviewSink | None = None,
        review_policy: Callable[[str], ReviewPolicy | None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.log = log
        self.reviews = reviews
        self.review_policy = review_policy
        self.max_batch_records = max_batch_records
        self.max_wait_s = max_wait_s
        self.batching = batching  # per-model (max records, max wait s); None: the defaults
        self.observers = list(observers)
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self._serving: dict[str, int] = {}
        self._locks: dict[tuple[str, int | None], asyncio.Lock] = {}

    @property
    def loaded(self) -> list[ServedModel]:
        return [b.model for b in self._batchers.values()]

    async def load_all(self) -> None:
        """Load the newest version of every registered model (at start-up)."""
        summaries = await asyncio.to_thread(self.store.list_models)
        for summary in summaries:
            await self.get(summary.name)

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
                model = await asyncio.to_thread(self.registry.load, record)
                await asyncio.to_thread(prepare, model)
                if self.review_policy is not None:
                    model.review = self.review_policy(name)
                limit, wait = self.max_batch_records, self.max_wait_s
                if self.batching is not None:
                    limit, wait = self.batching(name)
                batcher = Batcher(
                    model,
                    self.log,
                    max_batch_records=limit,
                    max_wait_s=wait,
                    observers=self.observers,
                    reviews=self.reviews,
                )
                batcher.start()
                self._batchers[key] = batcher
            if version is None:
                self._serving[name] = record.version
            return self._batchers[key]

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
            raise NotFoundError(
                f"Model {name!r} is not loaded.",
                code="registry.model_not_found",
                hint="Register it first: plinth register MODEL --name NAME ...",
            )
        return self._serving[name]

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        self._serving.clear()


def batching_source(
    per_model: dict[str, dict[str, Any]], max_batch_size: int, max_wait_ms: float
) -> Callable[[str], tuple[int, float]]:
    """Each model's (max records per call, max wait in seconds): ``max_batch_size`` and
    ``max_wait_ms`` in its ``[models.NAME]`` section of plinth.toml, else the settings.
    Every bad value in the file is reported at once, at start-up."""
    problems: list[Problem] = []
    limits: dict[str, tuple[int, float]] = {}
    for name, section in per_model.items():
        size = section.get("max_batch_size", max_batch_size)
        wait = section.get("max_wait_ms", max_wait_ms)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 10_000:
            problems.append(
                Problem(
                    "config.max_batch_size",
                    f"[models.{name}] max_batch_size = {size!r}",
                    "a whole number of records from 1 to 10000",
                    f"models.{name}.max_batch_size",
                )
            )
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 1000:
            problems.append(
                Problem(
                    "config.max_wait_ms",
                    f"[models.{name}] max_wait_ms = {wait!r}",
                    "milliseconds from 0 (never wait) to 1000",
                    f"models.{name}.max_wait_ms",
                )
            )
        if not problems:
            limits[name] = (int(size), float(wait) / 1000.0)
    if problems:
        raise ConfigError(
            f"plinth.toml has {len(problems)} bad batching setting(s).",
            code="config.batching",
            hint="Fix each listed value in plinth.toml.",
            problems=problems,
        )
    default = (max_batch_size, max_wait_ms / 1000.0)
    return lambda name: limits.get(name, default)
