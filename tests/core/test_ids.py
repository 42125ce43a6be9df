from __future__ import annotations

import random
import time

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from plinth.core.ids import encode, new_id, new_ids


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_encoding_is_ulid_crockford_base32(value: int) -> None:
    assert encode(value) == str(ULID.from_int(value))


def test_a_batch_shares_its_millisecond_and_sorts_in_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_ids(500)
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == 500
    stamps = {int(ULID.from_str(i).milliseconds) for i in ids}
    assert len(stamps) == 1 and before <= stamps.pop() <= after


def test_the_random_part_never_carries_into_the_time() -> None:
    class Highest(random.Random):
        def randrange(self, stop: int, *args: object, **kwargs: object) -> int:  # type: ignore[override]
            return stop - 1

    ids = new_ids(10, now_ms=1_000, rng=Highest())
    assert {int(ULID.from_str(i).milliseconds) for i in ids} == {1_000}
    assert ids[-1].endswith("ZZZZZZZZZZZZZZZZ") or ids == sorted(ids)


def test_separate_calls_do_not_collide() -> None:
    seen = {new_id() for _ in range(2_000)} | set(new_ids(2_000))
    assert len(seen) == 4_000
    assert new_ids(0) == []
