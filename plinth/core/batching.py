"""When to wait for more records before calling the model: a learned cost and a rule.

A batch costs about ``fixed + per_row * rows`` seconds (a forest: ~3 ms whether it scores 1
row or 64). ``CallCost`` learns the two numbers from the batches the server actually runs
(least squares with exponential forgetting, so it follows a model that warms up or a
machine that gets busier). ``wait_budget`` then says how long the next batch should wait
for more records:

- never when the queue already fills a batch, or when fewer than two records are expected
  to arrive during one fixed cost (light load: a lone request goes straight through, and a
  burst that ended stops costing at once, because the rate is measured over the last cycle
  only);
- never when the records the wait is expected to bring would cost more, row by row, than
  the fixed cost they would otherwise pay in a call of their own (a model whose cost is all
  per row gains nothing from batching);
- otherwise at most ``max_wait_s``, at most half a fixed cost, at most the time the
  arrival rate needs to fill the batch, and never past the earliest deadline in the queue
  minus the predicted cost of the call.

The same cost answers admission (``expected_wait``): a request that joins a queue the
scoring thread cannot clear before the request's deadline is refused at once (503
``server.overloaded`` with ``Retry-After``) rather than queued to time out, so under
overload the admitted requests keep a bounded latency instead of every request waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CallCost:
    """``seconds ≈ fixed + per_row * rows``, refitted after every batch.

    The fit is solved in ``observe`` (once per batch), not where it is read: admission
    reads it for every request.

    >>> cost = CallCost()
    >>> for rows in (1, 64, 1, 32, 64, 8):
    ...     cost.observe(rows, 0.003 + 0.00005 * rows)
    >>> round(cost.fixed * 1e3, 2), round(cost.per_row * 1e6, 1)
    (3.0, 50.0)
    """

    decay: float = 0.97  # weight of the past per new batch: ~30 batches of memory
    _w: float = 0.0
    _n: float = 0.0
    _nn: float = 0.0
    _y: float = 0.0
    _ny: float = 0.0
    per_row: float = field(default=0.0, init=False)
    fixed: float = field(default=0.0, init=False)

    def observe(self, rows: int, seconds: float) -> None:
        d = self.decay
        self._w = w = d * self._w + 1.0
        self._n = n = d * self._n + rows
        self._nn = nn = d * self._nn + rows * rows
        self._y = y = d * self._y + seconds
        self._ny = ny = d * self._ny + rows * seconds
        var = nn / w - (n / w) ** 2
        # Every batch the same size (var ~ 0): no slope to learn yet.
        per_row = 0.0 if var <= 1e-9 else max(0.0, (ny / w - (n / w) * (y / w)) / var)
        self.per_row = per_row
        self.fixed = max(0.0, y / w - per_row * n / w)

    @property
    def known(self) -> bool:
        return self._w > 0.0

    def predict(self, rows: int) -> float:
        return self.fixed + self.per_row * rows


def wait_budget(
    cost: CallCost,
    *,
    queued: int,
    max_rows: int,
    rate: float,
    max_wait_s: float,
    slack_s: float,
) -> float:
    """Seconds to wait for more records before this batch's call (0: call now).

    ``queued`` records are ready, ``rate`` is records per second over the last cycle, and
    ``slack_s`` is the time left before the earliest queued deadline.

    >>> cost = CallCost()
    >>> for rows in (1, 64):
    ...     cost.observe(rows, 0.003 + 0.00005 * rows)
    >>> wait_budget(cost, queued=1, max_rows=64, rate=100.0, max_wait_s=0.005, slack_s=30)
    0.0
    >>> busy = wait_budget(cost, queued=32, max_rows=64, rate=4e3, max_wait_s=0.005, slack_s=30)
    >>> round(busy, 6)
    0.0015
    """
    if queued >= max_rows or max_wait_s <= 0 or rate <= 0 or not cost.known:
        return 0.0
    fixed = cost.fixed
    if rate * fixed < 2.0:
        return 0.0
    wait = min(max_wait_s, fixed / 2, (max_rows - queued) / rate)
    gain = min(max_rows - queued, rate * wait)
    if cost.per_row * gain >= fixed:
        return 0.0
    return max(0.0, min(wait, slack_s - cost.predict(queued + int(gain))))


def expected_wait(
    cost: CallCost, *, queued: int, incoming: int, max_rows: int, running_s: float = 0.0
) -> float:
    """Seconds until a request of ``incoming`` records, behind ``queued`` ones, is answered.

    ``running_s`` is what the call under way still needs; then the scoring thread takes
    full batches in order, so the queue drains in ``ceil((queued + incoming) / max_rows)``
    calls. 0 until a call cost has been learned.

    >>> cost = CallCost()
    >>> for rows in (1, 64):
    ...     cost.observe(rows, 0.003 + 0.00005 * rows)
    >>> round(expected_wait(cost, queued=0, incoming=1, max_rows=64) * 1e3, 2)
    3.05
    >>> round(expected_wait(cost, queued=639, incoming=1, max_rows=64, running_s=0.002) * 1e3, 2)
    64.0
    """
    if not cost.known:
        return 0.0
    full, rest = divmod(queued + incoming, max_rows)
    return running_s + full * cost.predict(max_rows) + (cost.predict(rest) if rest else 0.0)
