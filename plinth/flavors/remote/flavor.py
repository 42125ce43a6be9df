"""The remote flavor: a version whose model runs elsewhere, called over HTTP per record.

Serving calls it like any flavor, with the contract's frame of a batch; it renders each
row's request from the spec, sends the rows concurrently (at most ``limits.concurrency`` in
flight), asks for JSON, validates the reply against the output schema and, if it breaks
it, re-asks once with the validation errors (``output.reask``). What it could not answer
is raised as a ``model.*`` error, so the fallback chain and the circuit breaker act as for
any model. Each answer carries its record (request, its hash, raw reply, parsed object,
usage, cost, attempts), which scoring logs with the prediction and replay re-sends.

Cost: tokens times the spec's prices per 1k, counted in Prometheus and against a daily
budget per model name (``ledger``: the store's total across workers and replicas once the
registry loads the version, see ``plinth.services.spend``); past it, ``on_budget =
"fallback"`` stops calling (``model.budget_exhausted``) and the fallback chain answers,
flagged. An exact-match cache
(the request's hash, ``cache.ttl_s``) avoids paying twice for the same request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Protocol

import numpy as np
import orjson
import pandas as pd
from prometheus_client import Counter, Gauge

from plinth.core.backoff import Backoff
from plinth.errors import (
    ModelError,
    RemoteBudgetError,
    RemoteCredentialsError,
    RemoteSchemaError,
)
from plinth.flavors.base import CALL_ATTEMPTS, CALL_DEADLINE, Answered, Flavor, require
from plinth.flavors.remote.client import AttemptSpans, Caller, Exchange
from plinth.flavors.remote.spec import FORMAT, HTTP_JSON, OPENAI, RemoteSpec

log = logging.getLogger("plinth.remote")

TOKENS = Counter(
    "plinth_remote_tokens",
    "Tokens a remote model was sent (prompt) and returned (completion).",
    ["model", "version", "kind"],
)
COST = Counter(
    "plinth_remote_cost",
    "Cost of a remote model's calls, in the currency of the spec's prices.",
    ["model", "version"],
)
ATTEMPTS = Counter(
    "plinth_remote_attempts",
    "HTTP attempts to a remote model's endpoint, by outcome (ok, timeout, error, ...).",
    ["model", "version", "outcome"],
)
REASKS = Counter(
    "plinth_remote_reasks",
    "Re-asks after an answer broke the output schema, by whether the re-ask fixed it.",
    ["model", "version", "fixed"],
)
CACHE_HITS = Counter(
    "plinth_remote_cache_hits",
    "Requests answered from the exact-match cache (not sent, not paid for).",
    ["model", "version"],
)
BUDGET_SPENT = Gauge(
    "plinth_remote_budget_spent",
    "Spent today (UTC) by a remote model, every worker and replica together (as this "
    "process last saw the shared total), in the spec's currency.",
    ["model"],
    multiprocess_mode="mostrecent",
)
BUDGET_RATIO = Gauge(
    "plinth_remote_budget_ratio",
    "Share of the daily budget a remote model spent today (UTC), every worker together.",
    ["model"],
    multiprocess_mode="mostrecent",
)
BUDGET_ALERT_AT = Gauge(
    "plinth_remote_budget_alert_at",
    "The share of the daily budget at which a remote model's budget alert fires (alert_at).",
    ["model"],
    multiprocess_mode="mostrecent",
)

#: A failed batch keeps each row's outcome (answer or error) this long, so scoring's
#: one-request-at-a-time retry of the batch (isolating the culprit) pays for nothing again.
MEMO_TTL_S = 60.0
MAX_CACHE_ENTRIES = 10_000
#: Replies already found valid, by their raw text: a classifier's replies repeat (the same
#: few labels and confidences), and the schema's verdict on the same text never changes.
MAX_VALID_REPLIES = 4096
_REASK = (
    "Your reply did not match the required JSON schema: {errors}. Reply again with only a "
    "JSON object that matches the schema."
)


class SpendLedger(Protocol):
    """Where a remote version counts what it spends against its model's daily budget."""

    def spent(self, model: str, budget: float | None = None) -> float: ...

    def add(self, model: str, amount: float, budget: float | None = None) -> float: ...

    def first_alert_today(self, model: str) -> bool: ...


class Ledger:
    """Money spent per model name per UTC day, shared by the versions in this process.

    What a version uses until the registry that loads it gives it the store's
    ``plinth.services.spend.SharedLedger`` (one total for every worker and replica);
    ``budget`` is the caller's daily budget, which the shared ledger uses to decide how
    fresh the total must be and this one ignores.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: dict[str, tuple[date, float]] = {}
        self._alerted: dict[str, date] = {}
        self.today: Callable[[], date] = _utc_today

    def spent(self, model: str, budget: float | None = None) -> float:
        with self._lock:
            day, amount = self._days.get(model, (self.today(), 0.0))
            return amount if day == self.today() else 0.0

    def add(self, model: str, amount: float, budget: float | None = None) -> float:
        with self._lock:
            today = self.today()
            day, spent = self._days.get(model, (today, 0.0))
            total = (spent if day == today else 0.0) + amount
            self._days[model] = (today, total)
            return total

    def first_alert_today(self, model: str) -> bool:
        with self._lock:
            today = self.today()
            if self._alerted.get(model) == today:
                return False
            self._alerted[model] = today
            return True


def _utc_today() -> date:
    return datetime.now(UTC).date()


LEDGER = Ledger()


@dataclass
class _Row:
    prediction: Any
    confidence: float | None
    details: dict[str, Any]


class RemoteFlavor(Flavor):
    """Serves a ``RemoteSpec``: one HTTP request per record, validated against its schema."""

    name = "remote"
    warm_up = False
    formats: ClassVar[tuple[str, ...]] = (FORMAT,)

    def __init__(self, model: RemoteSpec) -> None:
        super().__init__(model)
        self.spec: RemoteSpec = model
        self._spec_sha256 = model.sha256  # the version's identity, logged with each answer
        retry = model.retry
        self.caller = Caller(
            model.url,
            attempts=int(retry["attempts"]),
            timeout_s=float(retry["timeout_s"]),
            total_timeout_s=float(retry["total_timeout_s"]),
            backoff=Backoff(float(retry["backoff_base_s"]), float(retry["backoff_cap_s"])),
            concurrency=int(model.document["limits"]["concurrency"]),
            headers=dict(model.endpoint["headers"]),
            hedge_after_s=None if retry["hedge_after_s"] is None else float(retry["hedge_after_s"]),
        )
        self.caller.on_attempt = self._count_attempt
        # A slow reply must not hold up the batches behind it: as many batches in flight
        # as calls allowed (each batch's rows still share the one concurrency cap).
        self.concurrent_batches = int(model.document["limits"]["concurrency"])
        self.ledger: SpendLedger = LEDGER
        self.model_name = "unregistered"
        self.version = 0
        self._rows = ThreadPoolExecutor(
            int(model.document["limits"]["concurrency"]), thread_name_prefix="plinth-remote"
        )
        self._cache: dict[str, tuple[float, bool, _Row | Exception]] = {}
        self._cache_lock = threading.Lock()
        self._children: tuple[tuple[str, str], tuple[Any, Any, Any]] | None = None
        self._labelled: dict[tuple[Any, ...], Any] = {}  # metric children by their labels
        validator = require("jsonschema", "remote").Draft202012Validator
        self._validator = validator(model.output["schema"])
        self._valid_replies: set[str] = set()

    # -- the Flavor interface -----------------------------------------------------------------

    @classmethod
    def accepts(cls, model: Any) -> bool:
        return isinstance(model, RemoteSpec)

    @classmethod
    def dump(cls, model: Any) -> tuple[bytes, str]:
        return model.canonical(), FORMAT

    @classmethod
    def load(cls, data: bytes, fmt: str) -> Flavor:
        return cls(RemoteSpec.from_bytes(data))

    def attach(self, name: str, version: int) -> None:
        self.model_name, self.version = name, version

    @property
    def classes(self) -> list[Any] | None:
        return self.spec.classes

    @property
    def has_proba(self) -> bool:
        return self.spec.task == "classification" and self.spec.output["confidence"] is not None

    def feature_names(self) -> list[str] | None:
        return None

    def params(self) -> dict[str, Any]:
        endpoint = self.spec.endpoint
        return {
            "kind": endpoint["kind"],
            "model": endpoint["model"],
            "base_url": endpoint["base_url"],
            **self.spec.parameters,
        }

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self._answer(frame).predictions

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self._answer(frame).probabilities

    def answer(self, frame: pd.DataFrame) -> Answered | None:
        return self._answer(frame)

    def close(self) -> None:
        self._rows.shutdown(wait=False, cancel_futures=True)
        self.caller.close()

    # -- one batch ----------------------------------------------------------------------------

    def _answer(self, frame: pd.DataFrame) -> Answered:
        records = _records(frame)
        deadline = CALL_DEADLINE.get()
        spans = CALL_ATTEMPTS.get()  # a list only when the batch is traced
        if len(records) == 1:
            rows: list[_Row | Exception] = [self._guarded(records[0], deadline, spans)]
        else:
            rows = list(self._rows.map(lambda r: self._guarded(r, deadline, spans), records))
        failed = [r for r in rows if isinstance(r, Exception)]
        if failed:
            if len(rows) > 1:  # each outcome, for scoring's request-by-request retry
                for record, row in zip(records, rows, strict=True):
                    self._remember(self._key(self._request(record)), row, memo=True)
            raise failed[0]
        answered = [r for r in rows if isinstance(r, _Row)]
        predictions = np.empty(len(answered), dtype=object)
        predictions[:] = [r.prediction for r in answered]
        if self.spec.task == "regression":
            predictions = predictions.astype(float)
        probabilities = None
        if self.has_proba:
            probabilities = np.vstack([self._distribution(r) for r in answered])
        return Answered(predictions, probabilities, [r.details for r in answered])

    def _distribution(self, row: _Row) -> np.ndarray:
        """The answer's confidence on its class, the rest shared evenly by the others."""
        classes = self.spec.classes or []
        confidence = float(row.confidence if row.confidence is not None else 1.0)
        rest = (1.0 - confidence) / (len(classes) - 1) if len(classes) > 1 else 0.0
        p = np.full(len(classes), rest)
        p[classes.index(row.prediction)] = confidence
        return p

    def _guarded(
        self, record: dict[str, Any], deadline: float | None, spans: AttemptSpans | None
    ) -> _Row | Exception:
        try:
            return self._one(record, deadline, spans)
        except Exception as exc:
            return exc

    # -- one record ---------------------------------------------------------------------------

    def _one(
        self, record: dict[str, Any], deadline: float | None, spans: AttemptSpans | None
    ) -> _Row:
        request = self._request(record)
        payload = _canonical(request)  # hashed, and sent as it is: encoded once
        key = hashlib.sha256(payload).hexdigest()
        hit = self._recall(key)
        if hit is not None:
            return hit
        budget = self.spec.cost["budget_per_day"]
        if budget is not None and self.spec.cost["on_budget"] == "fallback":
            spent = self.ledger.spent(self.model_name, float(budget))
            if spent >= float(budget):
                raise RemoteBudgetError(
                    f"{self.model_name} spent {spent:.4g} of its daily budget of {budget:g}; "
                    "not calling the endpoint until midnight UTC.",
                )
        headers = self._credentials()
        attempts: list[dict[str, Any]] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        exchange = self._post(payload, headers, deadline, attempts, spans)
        _add_usage(usage, exchange.body)
        raw, parsed, errors = self._parse(exchange.body)
        reasks = 0
        messages = request.get("messages")
        while errors and reasks < int(self.spec.output["reask"]) and isinstance(messages, list):
            reasks += 1
            messages = [
                *messages,
                {"role": "assistant", "content": raw if raw is not None else ""},
                {"role": "user", "content": _REASK.format(errors="; ".join(errors))},
            ]
            try:
                exchange = self._post(
                    {**request, "messages": messages}, headers, deadline, attempts, spans
                )
            except ModelError:
                self._charge(usage)  # the first reply was paid for all the same
                raise
            _add_usage(usage, exchange.body)
            raw, parsed, errors = self._parse(exchange.body)
            fixed = str(not errors).lower()
            self._child(REASKS, self.model_name, str(self.version), fixed).inc()
        cost = self._charge(usage)
        details = {
            "spec": self._spec_sha256,
            "request_sha256": key,
            "request": request,
            "raw": raw,
            "response": _response_facts(exchange.body),
            "parsed": parsed,
            "usage": usage,
            "cost": cost,
            "attempts": attempts,
            "reasks": reasks,
            "cached": False,
        }
        if errors:
            error = RemoteSchemaError(
                f"The reply broke the output schema after {reasks} re-ask(s): "
                + "; ".join(errors[:5]),
            )
            error.details = details  # type: ignore[attr-defined]
            raise error
        assert isinstance(parsed, dict)
        answer = parsed[self.spec.output["answer"]]
        confidence_field = self.spec.output["confidence"]
        confidence = None if confidence_field is None else float(parsed[confidence_field])
        row = _Row(answer, confidence, details)
        if float(self.spec.document["cache"]["ttl_s"]) > 0:
            self._remember(key, row, memo=False)
        return row

    def _post(
        self,
        request: dict[str, Any] | bytes,
        headers: dict[str, str],
        deadline: float | None,
        attempts: list[dict[str, Any]],
        spans: AttemptSpans | None,
    ) -> Exchange:
        try:
            exchange = self.caller.post(request, headers=headers, deadline=deadline, spans=spans)
        except ModelError as exc:
            attempts.extend(getattr(exc, "attempts", []))
            raise
        attempts.extend(exchange.attempts)
        return exchange

    def _request(self, record: dict[str, Any]) -> dict[str, Any]:
        """The exact JSON body for one record (what is hashed, logged and replayed)."""
        spec = self.spec
        prompt = spec.render(record)
        if spec.endpoint["kind"] == HTTP_JSON:
            if prompt is None:
                body: dict[str, Any] = {"inputs": record}
            else:
                body = json.loads(prompt)
            if spec.parameters:
                body["parameters"] = spec.parameters
            return body
        messages: list[dict[str, str]] = []
        system = spec.render_system(record)
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt or ""})
        body = {"model": spec.endpoint["model"], "messages": messages, **spec.parameters}
        structured = spec.endpoint["structured"]
        if structured == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": spec.output["schema"], "strict": True},
            }
        elif structured == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": spec.output["schema"]}
        elif structured == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    @staticmethod
    def _key(request: dict[str, Any]) -> str:
        return hashlib.sha256(_canonical(request)).hexdigest()

    def _credentials(self) -> dict[str, str]:
        variable = self.spec.endpoint["api_key_env"]
        if variable is None:
            return {}
        key = os.environ.get(variable)
        if not key:
            raise RemoteCredentialsError(
                f"The spec names the credential variable {variable}, which is not set.",
            )
        return {"Authorization": f"Bearer {key}"}

    def _parse(self, body: Any) -> tuple[str | None, Any, list[str]]:
        """(raw text, parsed object, schema problems) for one reply."""
        raw: str | None
        if self.spec.endpoint["kind"] == OPENAI:
            try:
                raw = body["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                return None, None, ["the reply has no choices[0].message.content"]
            if not isinstance(raw, str):
                return None, None, ["the reply's message content is not text"]
            try:
                parsed = orjson.loads(raw)
            except ValueError as exc:
                return raw, None, [f"the reply is not JSON ({exc})"]
        else:
            raw = json.dumps(body, sort_keys=True)
            parsed = body
            for step in (self.spec.output["path"] or "").split("."):
                if step:
                    parsed = parsed.get(step) if isinstance(parsed, dict) else None
        errors = self._schema_errors(raw, parsed)
        confidence = self.spec.output["confidence"]
        if not errors and confidence is not None:
            value = parsed[confidence]
            if not (isinstance(value, int | float) and 0.0 <= float(value) <= 1.0):
                errors.append(f"{confidence}: {value!r} is not within [0, 1]")
        return raw, parsed, errors

    def _schema_errors(self, raw: str | None, parsed: Any) -> list[str]:
        """The schema's problems with a reply; none, without validating again, for a raw
        text already found valid (the parsed object follows from the text, for both kinds)."""
        if raw is not None and raw in self._valid_replies:
            return []
        errors = [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in self._validator.iter_errors(parsed)
        ]
        if not errors and raw is not None:
            if len(self._valid_replies) >= MAX_VALID_REPLIES:
                self._valid_replies.clear()
            self._valid_replies.add(raw)
        return errors

    def _charge(self, usage: dict[str, int]) -> float:
        cost_spec = self.spec.cost
        cost = usage["prompt_tokens"] / 1000.0 * float(cost_spec["prompt_per_1k"]) + usage[
            "completion_tokens"
        ] / 1000.0 * float(cost_spec["completion_per_1k"])
        prompt_tokens, completion_tokens, spent = self._metrics()
        prompt_tokens.inc(usage["prompt_tokens"])
        completion_tokens.inc(usage["completion_tokens"])
        spent.inc(cost)
        budget = cost_spec["budget_per_day"]
        total = self.ledger.add(self.model_name, cost, None if budget is None else float(budget))
        self._child(BUDGET_SPENT, self.model_name).set(total)
        if budget is not None and float(budget) > 0:
            ratio = total / float(budget)
            self._child(BUDGET_RATIO, self.model_name).set(ratio)
            self._child(BUDGET_ALERT_AT, self.model_name).set(float(cost_spec["alert_at"]))
            if ratio >= float(cost_spec["alert_at"]) and self.ledger.first_alert_today(
                self.model_name
            ):
                log.warning(
                    "%s has spent %.4g of its daily budget of %g (%.0f%%)",
                    self.model_name,
                    total,
                    float(budget),
                    ratio * 100,
                )
        return cost

    def _metrics(self) -> tuple[Any, Any, Any]:
        """The token and cost counters of this version (a label lookup costs more than the
        increment, so the children are kept)."""
        labels = (self.model_name, str(self.version))
        if self._children is None or self._children[0] != labels:
            self._children = (
                labels,
                (
                    TOKENS.labels(*labels, "prompt"),
                    TOKENS.labels(*labels, "completion"),
                    COST.labels(*labels),
                ),
            )
        return self._children[1]

    def _count_attempt(self, record: dict[str, Any]) -> None:
        outcome = str(record.get("outcome"))
        self._child(ATTEMPTS, self.model_name, str(self.version), outcome).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: the lookup costs more than the update."""
        key = (id(metric), *labels)
        child = self._labelled.get(key)
        if child is None:
            child = self._labelled[key] = metric.labels(*labels)
        return child

    # -- the cache ----------------------------------------------------------------------------

    def _remember(self, key: str, row: _Row | Exception, *, memo: bool) -> None:
        ttl = MEMO_TTL_S if memo else float(self.spec.document["cache"]["ttl_s"])
        with self._cache_lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                now = time.monotonic()
                for stale in [k for k, (t, _, _) in self._cache.items() if t <= now]:
                    del self._cache[stale]
                if len(self._cache) >= MAX_CACHE_ENTRIES:
                    self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (time.monotonic() + ttl, memo, row)

    def _recall(self, key: str) -> _Row | None:
        with self._cache_lock:
            found = self._cache.get(key)
            if found is None:
                return None
            expires, memo, row = found
            if expires <= time.monotonic():
                del self._cache[key]
                return None
            if memo:  # the same outcome, paid once, for the request that asked for it
                del self._cache[key]
                if isinstance(row, Exception):
                    raise row
                return row
        assert isinstance(row, _Row)  # only answers are cached for their TTL
        self._child(CACHE_HITS, self.model_name, str(self.version)).inc()
        details = {
            **row.details,
            "cached": True,
            "cost": 0.0,
            "usage": {"prompt_tokens": 0, "completion_tokens": 0},
            "attempts": [],
        }
        return _Row(row.prediction, row.confidence, details)


def _canonical(request: dict[str, Any]) -> bytes:
    """Sorted-key compact JSON: the bytes a request is hashed by (``request_sha256``, the
    cache key, what replay compares) and sent as."""
    return json.dumps(request, sort_keys=True, separators=(",", ":")).encode()


def _response_facts(body: Any) -> dict[str, Any]:
    """What the provider said about its reply (its id, the model that really answered, the
    backend fingerprint, why it stopped): what to quote to the provider, and why a replay of
    the same request may differ."""
    if not isinstance(body, dict):
        return {}
    facts = {k: body.get(k) for k in ("id", "model", "system_fingerprint") if k in body}
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        facts["finish_reason"] = choices[0].get("finish_reason")
    return facts


def _add_usage(usage: dict[str, int], body: Any) -> None:
    found = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(found, dict):
        return
    for key in ("prompt_tokens", "completion_tokens"):
        value = found.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            usage[key] += value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The contract's rows as plain JSON values (None for a missing value); one object
    array for the frame, not ``to_dict``, which costs a copy of the frame per call."""
    names = [str(c) for c in frame.columns]
    return [
        {n: _plain(v) for n, v in zip(names, row, strict=True)} for row in frame.to_numpy(object)
    ]


_PLAIN = (str, int, bool)


def _plain(value: Any) -> Any:
    if type(value) in _PLAIN:  # the common case, without pandas' missing-value checks
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT or value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value
