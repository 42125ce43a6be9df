from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from plinth.core.ids import _Monotonic, encode, new_id, new_ids, time_ms


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_encoding_is_ulid_crockford_base32(value: int) -> None:
    assert encode(value) == str(ULID.from_int(value))


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_the_time_read_back_is_the_ulid_libraries(value: int) -> None:
    assert time_ms(encode(value)) == ULID.from_int(value).milliseconds


NOT_ULIDS = [
    "",
    "req-1",
    "01HF7YAT0000000000000000",  # too short
    "81HF7YAT00000000000000001A",  # past 128 bits
    "01hf7yat00000000000000001a",  # lower case: never how the log stores an id
    "01HF7YAT0000000000000000IL",  # letters Crockford's alphabet leaves out
]


@pytest.mark.parametrize("text", NOT_ULIDS)
def test_what_is_not_a_ulid_has_no_time(text: str) -> None:
    assert time_ms(text) is None


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


def test_ids_from_one_process_only_go_up_across_calls_and_threads() -> None:
    # Within a millisecond the process carries on from its last id (one kernel draw per ms).
    minted: list[list[str]] = [[] for _ in range(4)]

    def mint(out: list[str]) -> None:
        for _ in range(500):
            out.extend(new_ids(3))
            out.append(new_id())

    threads = [threading.Thread(target=mint, args=(out,)) for out in minted]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in minted:
        assert out == sorted(out)
    everything = [i for out in minted for i in out]
    assert len(set(everything)) == len(everything) == 8_000


def test_a_full_millisecond_moves_on_to_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _Monotonic()
    monkeypatch.setattr(time, "time_ns", lambda: 5_000_000_000)  # the clock stands still
    first = counter.take(1)
    counter._next = ((5_000 + 1) << 80) - 1  # one id of room left in ms 5000
    last_in_ms = counter.take(1)
    spilled = counter.take(2)
    assert first >> 80 == last_in_ms >> 80 == 5_000
    assert spilled >> 80 == 5_001 and spilled > last_in_ms


def test_a_clock_that_steps_back_never_sends_ids_backwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = _Monotonic()
    monkeypatch.setattr(time, "time_ns", lambda: 9_000_000_000)
    later = counter.take(1)
    monkeypatch.setattr(time, "time_ns", lambda: 8_000_000_000)
    assert counter.take(1) > later
