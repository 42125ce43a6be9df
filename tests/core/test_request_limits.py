"""plinth.core.request_limits: every shape limit found with its place, without recursion,
and skipped only when the body's bytes prove it cannot be broken."""

from __future__ import annotations

import orjson
import pytest

from plinth.core.request_limits import RequestLimits, parse_limited
from plinth.errors import OverLimitError, QueryTooLargeError

LIMITS = RequestLimits(
    max_depth=4, max_string_chars=10, max_array_items=3, max_object_keys=3,
    max_query_bytes=20, max_query_params=2,
)  # fmt: skip


def _codes(value: object) -> list[tuple[str, str | None]]:
    return sorted((p.code, p.field) for p in LIMITS.problems(value))


def test_each_limit_is_named_with_where_it_broke() -> None:
    body = {
        "records": [{"a": [[[1]]]}, {"b": "x" * 11}],
        "wide": {"k1": 1, "k2": 2, "k3": 3, "k4": 4},
        "long": [1, 2, 3, 4],
    }
    assert _codes(body) == [
        ("request.array_too_long", "long"),
        ("request.string_too_long", "records[1].b"),
        ("request.too_deep", "records[0].a[0]"),
        ("request.too_many_keys", "wide"),
    ]
    assert _codes({"records": [{"a": 1}], "key": "short"}) == []
    assert _codes({"y" * 11: 1}) == [("request.string_too_long", "<a key>")]


def test_a_deep_body_is_walked_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert _codes(deep) == [("request.too_deep", "[0][0][0][0]")]


@pytest.mark.parametrize("depth", [5, 1_000, 1_100, 200_000])
def test_parsing_refuses_any_depth_past_the_limit_as_over_limit(depth: int) -> None:
    body = b"[" * depth + b"1" + b"]" * depth
    with pytest.raises(OverLimitError) as refused:
        parse_limited(body, LIMITS)
    assert refused.value.code == "request.over_limit" and refused.value.status == 413
    assert [p.code for p in refused.value.problems] == ["request.too_deep"]
    assert "PLINTH_MAX_JSON_DEPTH" in refused.value.problems[0].hint


def test_small_bodies_skip_the_walk_and_big_ones_do_not() -> None:
    shallow = {"records": [{"a": 1}]}
    assert parse_limited(orjson.dumps(shallow), LIMITS) == shallow
    with pytest.raises(OverLimitError):  # 4 items: 7 bytes are enough to hold them
        parse_limited(b"[1,2,3,4]", LIMITS)
    many = [{"a": i} for i in range(3)]
    assert parse_limited(orjson.dumps(many), RequestLimits(max_depth=2)) == many


def test_the_query_string_has_a_size_and_a_parameter_count() -> None:
    LIMITS.check_query(b"")
    LIMITS.check_query(b"a=1&b=2")
    for query in (b"a=1&b=2&c=3", b"a=" + b"x" * 20):
        with pytest.raises(QueryTooLargeError) as refused:
            LIMITS.check_query(query)
        assert refused.value.code == "request.query_too_large" and refused.value.status == 400
