"""Storing review items: in groups on the reply path, their context afterwards.

``ReviewWriter`` stores the items right after the batch's log rows commit (the reply waits
for that commit, so the id it carries always exists), then, on its own thread, computes each
item's context and attaches it. The context never delays a reply. Online traffic and batch
scoring (``plinth predict``) take the same path.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from plinth.services.review.context import ContextBuilder
from plinth.services.serving.review_gate import ReviewDraft
from plinth.store import Store
from plinth.store.feedback import FeedbackStore

if TYPE_CHECKING:
    pass

log = logging.getLogger("plinth.review")


# ---------------------------------------------------------------------- writing items

_STOP = object()


class ReviewWriter:
    """Stores review items in groups (the reply waits for this) and fills in their
    context afterwards on a second thread (nothing waits for that)."""

    def __init__(self, store: Store, *, with_context: bool = True) -> None:
        self.sql = FeedbackStore(store)
        self.builder = ContextBuilder(self.sql)
        self.with_context = with_context
        self._inserts: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._contexts: queue.Queue[Any] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._insert_loop, name="plinth-review-writer", daemon=True),
            threading.Thread(target=self._context_loop, name="plinth-review-context", daemon=True),
        ]
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def submit(self, drafts: Sequence[ReviewDraft]) -> Future[None]:
        """Queue items for storage; the future resolves once they are committed."""
        done: Future[None] = Future()
        if not drafts:
            done.set_result(None)
        else:
            self._inserts.put((list(drafts), done))
        return done

    def pending_contexts(self) -> int:
        """Stored items whose context is not attached yet (a progress bar's remainder)."""
        return self._contexts.unfinished_tasks

    def wait_for_context(self) -> None:
        """Block until every stored item's context is attached (tests, shutdown)."""
        self._contexts.join()

    def close(self, timeout: float = 30.0) -> None:
        if self._started:
            self._inserts.put(_STOP)
            for thread in self._threads:
                thread.join(timeout)
            self._started = False

    def _insert_loop(self) -> None:
        while True:
            item = self._inserts.get()
            if item is _STOP:
                self._contexts.put(_STOP)
                return
            group = [item]
            while True:
                try:
                    nxt = self._inserts.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._inserts.put(_STOP)
                    break
                group.append(nxt)
            drafts = [d for batch, _ in group for d in batch]
            error: BaseException | None = None
            try:
                self.sql.insert_reviews([d.row for d in drafts])
            except Exception as exc:  # never let the writer thread die
                error = exc
            for _, done in group:
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            if error is None and self.with_context:
                for draft in drafts:
                    self._contexts.put(draft)

    def _context_loop(self) -> None:
        while True:
            draft = self._contexts.get()
            try:
                if draft is _STOP:
                    return
                context = self.builder.build(draft.model, draft.features, draft.output)
                self.sql.set_context(draft.row.id, context)
            except Exception:  # context is a help for reviewers, never a failure
                log.exception("could not build the review context of %s", draft.row.id)
            finally:
                self._contexts.task_done()
