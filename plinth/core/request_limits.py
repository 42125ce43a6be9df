"""Limits on the shape of every request, beside the byte limit: nesting depth, a string's
and an array's length, an object's keys, and the query string's size and parameter count.

The byte limit (``PLINTH_MAX_BODY_BYTES``) bounds what a body costs to read, not what it
costs to handle: a 1 MiB body can hold an array nested 500 deep (that recursive code in
the stack would choke on) or one 900 KB string. These limits refuse such a body at once,
with 413 ``request.over_limit`` naming each problem and the setting that allows it, before
any code walks it. The check walks the parsed body with an explicit stack (never
recursion), and is skipped when the body's bytes alone prove it cannot break a limit (a
short body with few brackets), so a small predict request pays nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from plinth.errors import OverLimitError, Problem, QueryTooLargeError
from plinth.errors.request import ARRAY_TOO_LONG, STRING_TOO_LONG, TOO_DEEP, TOO_MANY_KEYS

_MAX_PROBLEMS = 10  # one oversized body can break a limit a million times; say it once


@dataclass(frozen=True)
class RequestLimits:
    """The limits of one server (``PLINTH_MAX_JSON_DEPTH`` and its siblings)."""

    max_depth: int = 32
    max_string_chars: int = 1_000_000
    max_array_items: int = 1_000_000
    max_object_keys: int = 10_000
    max_query_bytes: int = 8_192
    max_query_params: int = 64

    def check_body(self, body: bytes, value: Any) -> None:
        """Raise 413 ``request.over_limit`` listing what in ``value`` (parsed from ``body``)
        breaks a limit; nothing when the bytes prove nothing can."""
        size = len(body)
        # A string of n characters takes n + 2 bytes, an array of n items 2n - 1, an object
        # of n keys 5n - 1 ("":0,), and every level of nesting one bracket.
        strings = size > self.max_string_chars
        if (
            not strings
            and size < 2 * self.max_array_items
            and size < 5 * self.max_object_keys
            and body.count(b"[") + body.count(b"{") <= self.max_depth
        ):
            return  # too few bytes to hold anything past a limit
        problems = self.problems(value, strings=strings)
        if problems:
            raise OverLimitError(problems)

    def problems(self, value: Any, *, strings: bool = True) -> list[Problem]:
        """Every limit ``value`` breaks (the first few), each with where: ``records[3].a``
        (``strings=False``: the caller knows no string can be too long)."""
        found: list[Problem] = []
        # (container, depth, parent entry, key): the path is rebuilt only for a problem.
        stack: list[tuple[Any, int, Any, Any]] = [(value, 1, None, None)]
        while stack and len(found) < _MAX_PROBLEMS:
            entry = stack.pop()
            container, depth = entry[0], entry[1]
            if depth > self.max_depth:
                found.append(too_deep(self.max_depth, _path(entry)))
                continue
            if type(container) is dict:
                if len(container) > self.max_object_keys:
                    found.append(too_many_keys(len(container), self.max_object_keys, _path(entry)))
                    continue
                items: Any = container.items()
            elif type(container) is list:
                if len(container) > self.max_array_items:
                    found.append(array_too_long(len(container), self.max_array_items, _path(entry)))
                    continue
                items = enumerate(container)
            elif type(container) is str:  # the whole body is one string
                if len(container) > self.max_string_chars:
                    found.append(string_too_long(len(container), self.max_string_chars, "body"))
                continue
            else:
                continue
            for key, item in items:
                kind = type(item)
                if kind is str:
                    if strings and len(item) > self.max_string_chars:
                        where = _path((item, depth, entry, key))
                        found.append(string_too_long(len(item), self.max_string_chars, where))
                elif kind is dict or kind is list:
                    stack.append((item, depth + 1, entry, key))
            if strings and type(container) is dict:
                for key in container:
                    if len(key) > self.max_string_chars:
                        where = _path((None, depth, entry, "<a key>"))
                        found.append(string_too_long(len(key), self.max_string_chars, where))
        return found[:_MAX_PROBLEMS]

    def check_query(self, query: bytes) -> None:
        """Raise 400 ``request.query_too_large`` for a query string past either limit."""
        if not query:
            return
        params = query.count(b"&") + 1
        if len(query) > self.max_query_bytes or params > self.max_query_params:
            raise QueryTooLargeError(
                len(query), params, self.max_query_bytes, self.max_query_params
            )


def parse_limited(body: bytes, limits: RequestLimits | None) -> Any:
    """``orjson.loads(body)`` checked against ``limits``; past orjson's own nesting limit
    (1024) it is the same ``request.over_limit`` a shallower one gets. Other parse errors
    propagate as ``orjson.JSONDecodeError``."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc):
            depth = limits.max_depth if limits is not None else 1024
            raise OverLimitError([too_deep(depth, "body")]) from None
        raise
    if limits is not None:
        limits.check_body(body, value)
    return value


def _path(entry: tuple[Any, int, Any, Any] | None) -> str:
    parts: list[str] = []
    while entry is not None and entry[2] is not None:
        key = entry[3]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        entry = entry[2]
    text = "".join(reversed(parts)).lstrip(".")
    return text or "body"


def too_deep(limit: int, where: str) -> Problem:
    return Problem(
        TOO_DEEP,
        f"the JSON nests more than {limit} levels deep at {where}",
        f"Send flat records of plain values; PLINTH_MAX_JSON_DEPTH ({limit}) is the limit.",
        where,
    )


def too_many_keys(count: int, limit: int, where: str) -> Problem:
    return Problem(
        TOO_MANY_KEYS,
        f"an object at {where} has {count} keys; the limit is {limit}",
        f"Send fewer fields per object; PLINTH_MAX_OBJECT_KEYS ({limit}) is the limit.",
        where,
    )


def array_too_long(count: int, limit: int, where: str) -> Problem:
    return Problem(
        ARRAY_TOO_LONG,
        f"the array at {where} has {count} items; the limit is {limit}",
        f"Split it over several requests; PLINTH_MAX_ARRAY_ITEMS ({limit}) is the limit.",
        where,
    )


def string_too_long(length: int, limit: int, where: str) -> Problem:
    return Problem(
        STRING_TOO_LONG,
        f"a string at {where} has {length} characters; the limit is {limit}",
        f"Send shorter text; PLINTH_MAX_STRING_CHARS ({limit}) is the limit.",
        where,
    )
