"""Time-sortable ids (ULIDs) for requests and predictions, cheap enough for the hot path.

Every answered record gets a prediction id, so id generation is per-record work: with
python-ulid it cost about as much as the log insert (an ``os.urandom`` call, a monotonic
policy and a base32 encoding per id). Here a batch of ids shares its millisecond and
draws its randomness once; each id is the previous one plus one in the random part, as the
ULID spec's monotonic mode prescribes, so a batch's ids sort in answer order and stay
unique. The encoding is ULID's Crockford base32 (26 characters, the first 10 the time),
readable by any ULID library.

Randomness comes from ``random.SystemRandom`` (the kernel's), drawn once per millisecond, not
per batch or per id: within a millisecond the process carries on from its last id, as the
monotonic mode does across batches too, so a request id and the prediction ids that follow in
the same millisecond cost an increment each. Two processes never share a random start, so
they never collide by construction.
"""

from __future__ import annotations

import random
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DIGITS = {c: i for i, c in enumerate(_ALPHABET)}
_TRIPLES = [a + b + c for a in _ALPHABET for b in _ALPHABET for c in _ALPHABET]  # 15 bits each
_RANDOM_BITS = 80
_START_BITS = 79  # a fresh millisecond starts in the lower half: 2**79 increments of room
_SOURCE = random.SystemRandom()


def encode(value: int) -> str:
    """The 26-character Crockford base32 form of a 128-bit ULID value.

    >>> encode((1_700_000_000_000 << 80) | 42)
    '01HF7YAT00000000000000001A'
    """
    t = _TRIPLES
    return (
        _ALPHABET[value >> 125]
        + t[(value >> 110) & 0x7FFF]
        + t[(value >> 95) & 0x7FFF]
        + t[(value >> 80) & 0x7FFF]
        + t[(value >> 65) & 0x7FFF]
        + t[(value >> 50) & 0x7FFF]
        + t[(value >> 35) & 0x7FFF]
        + t[(value >> 20) & 0x7FFF]
        + t[(value >> 5) & 0x7FFF]
        + _ALPHABET[value & 31]
    )


def time_ms(ulid: str) -> int | None:
    """The millisecond a ULID was minted in (its first 10 characters), None if ``ulid`` is
    not one in this module's form (26 characters of the upper-case alphabet).

    >>> time_ms('01HF7YAT00000000000000001A')
    1700000000000
    >>> time_ms('req-1') is None
    True
    """
    if len(ulid) != 26 or ulid[0] > "7" or not set(ulid) <= _DIGITS.keys():
        return None
    value = 0
    for char in ulid[:10]:
        value = (value << 5) | _DIGITS[char]
    return value


def new_ids(
    count: int, *, now_ms: int | None = None, rng: random.Random | None = None
) -> list[str]:
    """``count`` fresh ULIDs sharing one millisecond, in increasing order.

    >>> new_ids(3, now_ms=1_700_000_000_000, rng=random.Random(0))
    ['01HF7YAT00R84P57VFQVC2R1YD', '01HF7YAT00R84P57VFQVC2R1YE', '01HF7YAT00R84P57VFQVC2R1YF']
    """
    if count <= 0:
        return []
    if now_ms is not None or rng is not None:  # a pure draw (examples, tests)
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        start = (rng or _SOURCE).randrange((1 << _RANDOM_BITS) - count)
        base = (ms << _RANDOM_BITS) | start
    else:
        base = _MONOTONIC.take(count)
    return [encode(base + i) for i in range(count)]


def new_id() -> str:
    """One fresh ULID (a request id, a review item id)."""
    return encode(_MONOTONIC.take(1))


class _Monotonic:
    """The process's id counter: one kernel draw per millisecond, increments within it.

    Thread-safe (the event loop and scoring threads both mint ids). A clock that steps back
    keeps the last millisecond, so ids never go backwards within a process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = -1
        self._next = 0  # the next free 128-bit value

    def take(self, count: int) -> int:
        now = time.time_ns() // 1_000_000
        with self._lock:
            limit = ((self._ms + 1) << _RANDOM_BITS) - count
            if now > self._ms or self._next > limit:
                ms = max(now, self._ms + (self._next > limit))
                self._ms = ms
                self._next = (ms << _RANDOM_BITS) | _SOURCE.getrandbits(_START_BITS)
            base = self._next
            self._next = base + count
            return base


_MONOTONIC = _Monotonic()
