"""Time-sortable ids (ULIDs) for requests and predictions, cheap enough for the hot path.

Every answered record gets a prediction id, so id generation is per-record work: with
python-ulid it cost about as much as the log insert (an ``os.urandom`` call, a monotonic
policy and a base32 encoding per id). Here a batch of ids shares its millisecond and
draws its randomness once; each id is the previous one plus one in the random part, as the
ULID spec's monotonic mode prescribes, so a batch's ids sort in answer order and stay
unique. The encoding is ULID's Crockford base32 (26 characters, the first 10 the time),
readable by any ULID library.

Randomness comes from ``random.SystemRandom`` once per batch (a kernel-seeded draw, so two
processes never collide by construction), never per id.
"""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TRIPLES = [a + b + c for a in _ALPHABET for b in _ALPHABET for c in _ALPHABET]  # 15 bits each
_RANDOM_BITS = 80
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


def new_ids(
    count: int, *, now_ms: int | None = None, rng: random.Random | None = None
) -> list[str]:
    """``count`` fresh ULIDs sharing one millisecond, in increasing order.

    >>> new_ids(3, now_ms=1_700_000_000_000, rng=random.Random(0))
    ['01HF7YAT00R84P57VFQVC2R1YD', '01HF7YAT00R84P57VFQVC2R1YE', '01HF7YAT00R84P57VFQVC2R1YF']
    """
    if count <= 0:
        return []
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    # Leave room for ``count`` increments so the random part never carries into the time.
    start = (rng or _SOURCE).randrange((1 << _RANDOM_BITS) - count)
    base = (ms << _RANDOM_BITS) | start
    return [encode(base + i) for i in range(count)]


def new_id() -> str:
    """One fresh ULID (a request id, a review item id)."""
    return new_ids(1)[0]
