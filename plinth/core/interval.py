"""Interval statistics that merge by addition: a latency histogram and flat profile counts.

An interval profile is stored many times a minute across replicas and read back by the
tens of thousands for a 30-day report, so it is kept as two flat arrays (integer counts and
floating-point sums) laid out by the reference profile, not as a JSON document per feature:
merging a month of intervals is then one ``numpy`` sum over a matrix.

Latency uses fixed, logarithmic buckets shared by every process and every interval, so
histograms from any workers and any minutes add up, and a quantile of the sum is as good as
a quantile computed from the raw values to within one bucket (about 7.5 %).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from plinth.core.profile import FeatureBins, Profile
from plinth.errors import IncompatibleProfileError

#: Upper bounds of the latency buckets, in seconds: 16 per decade from 10 µs to 100 s, then
#: one overflow bucket. Never change them: stored histograms would no longer line up.
LATENCY_BOUNDS: np.ndarray = 10.0 ** (np.arange(-80, 33) / 16.0)
# The same bounds as Python floats: ``bisect`` on a list costs a tenth of a numpy call for
# the one value a reply observes.
_BOUNDS_LIST: list[float] = LATENCY_BOUNDS.tolist()
_FEW = 6  # fewer values than this: one bisect each beats one numpy pass for all


class LatencyHistogram:
    """Counts of durations in fixed log buckets; ``+`` merges, ``quantile`` reads back.

    >>> h = LatencyHistogram()
    >>> h.observe_many(np.full(99, 0.010))
    >>> h.observe(1.0)
    >>> round(h.quantile(0.5), 4), round(h.quantile(0.999), 2), h.count
    (0.0093, 0.99, 100)
    """

    def __init__(self, counts: Any = None) -> None:
        size = LATENCY_BOUNDS.size + 1
        self.counts = (
            np.zeros(size, dtype=np.int64) if counts is None else np.asarray(counts, np.int64)
        )
        if self.counts.shape != (size,):
            raise IncompatibleProfileError(
                f"A latency histogram has {size} buckets, got {self.counts.shape}.",
                hint="Histograms stored by another Plinth version cannot be merged.",
            )

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def observe(self, seconds: float) -> None:
        at = bisect.bisect_left(_BOUNDS_LIST, seconds) if seconds == seconds else len(_BOUNDS_LIST)
        self.counts[at] += 1  # NaN (never expected) goes where searchsorted puts it: last

    def observe_many(self, seconds: Any) -> None:
        if len(seconds) < _FEW:  # a small reply batch: a bisect each is cheaper
            for value in seconds:
                self.observe(value)
            return
        index = np.searchsorted(LATENCY_BOUNDS, np.asarray(seconds, np.float64), side="left")
        self.counts += np.bincount(index, minlength=self.counts.size)

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        return LatencyHistogram(self.counts + other.counts)

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated geometrically inside its bucket; None when empty."""
        return histogram_quantile(self.counts, q)


def histogram_quantile(counts: np.ndarray, q: float) -> float | None:
    """Quantile of fixed-bucket latency counts (see ``LATENCY_BOUNDS``); None when empty."""
    total = int(counts.sum())
    if total == 0:
        return None
    rank = q * total
    cumulative = np.cumsum(counts)
    bucket = int(np.searchsorted(cumulative, rank, side="left"))
    bucket = min(bucket, LATENCY_BOUNDS.size)  # the overflow bucket reports its lower bound
    if bucket == LATENCY_BOUNDS.size:
        return float(LATENCY_BOUNDS[-1])
    upper = float(LATENCY_BOUNDS[bucket])
    lower = float(LATENCY_BOUNDS[bucket - 1]) if bucket > 0 else upper / 10 ** (1 / 16)
    below = int(cumulative[bucket - 1]) if bucket > 0 else 0
    inside = int(counts[bucket])
    fraction = 0.0 if inside == 0 else min(max((rank - below) / inside, 0.0), 1.0)
    # Geometric interpolation: the buckets are evenly spaced in log(seconds).
    return float(math.exp(math.log(lower) + fraction * (math.log(upper) - math.log(lower))))


def histogram_quantiles(matrix: np.ndarray, q: float) -> np.ndarray:
    """Per-row quantile of a stack of histograms (vectorised); NaN for empty rows.

    >>> h = np.zeros((2, LATENCY_BOUNDS.size + 1), dtype=np.int64)
    >>> h[0, 48] = 10
    >>> [None if np.isnan(v) else round(float(v), 4) for v in histogram_quantiles(h, 0.5)]
    [0.0093, None]
    """
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1)
    cumulative = np.cumsum(counts, axis=1)
    rank = q * totals
    bucket = np.minimum((cumulative < rank[:, None]).sum(axis=1), LATENCY_BOUNDS.size)
    rows = np.arange(counts.shape[0])
    overflow = bucket == LATENCY_BOUNDS.size
    b = np.minimum(bucket, LATENCY_BOUNDS.size - 1)
    upper = LATENCY_BOUNDS[b]
    lower = np.where(b > 0, LATENCY_BOUNDS[np.maximum(b - 1, 0)], upper / 10 ** (1 / 16))
    below = np.where(b > 0, cumulative[rows, np.maximum(b - 1, 0)], 0.0)
    inside = counts[rows, b]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.clip(np.where(inside > 0, (rank - below) / inside, 0.0), 0.0, 1.0)
    value = np.exp(np.log(lower) + fraction * (np.log(upper) - np.log(lower)))
    value = np.where(overflow, LATENCY_BOUNDS[-1], value)
    return np.where(totals > 0, value, np.nan)


# ---------------------------------------------------------------------- flat profile counts


@dataclass(frozen=True)
class Section:
    """Where one section's numbers sit in the flat arrays."""

    key: str  # "feature:<name>", "output" or "confidence"
    bins: FeatureBins  # the reference's bins (with the reference's counts)
    counts: slice
    nulls: int
    out_of_range: int
    sum: int | None  # float slot of sum(x - center); None for categorical sections
    sum_sq: int | None


class ProfileLayout:
    """Flat layout of every profile built from one reference: ints and floats by position.

    >>> import pandas as pd
    >>> reference = Profile.fit(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), {"x": "numeric"}, bins=2)
    >>> layout = ProfileLayout(reference)
    >>> live = reference.empty_like()
    >>> live.update(pd.DataFrame({"x": [1.0, 9.0, None]}))
    >>> ints, floats = layout.flatten(live)
    >>> ints.tolist(), layout.inflate(ints, floats, 3) == live
    ([1, 1, 1, 1], True)
    """

    def __init__(self, reference: Profile) -> None:
        self.reference = reference
        sections: list[Section] = []
        ints = floats = 0
        named = [(f"feature:{n}", b) for n, b in reference.features_.items()]
        if reference.output_ is not None:
            named.append(("output", reference.output_))
        if reference.confidence_ is not None:
            named.append(("confidence", reference.confidence_))
        for key, bins in named:
            width = len(bins.counts)
            numeric = bins.kind == "numeric"
            sections.append(
                Section(
                    key,
                    bins,
                    slice(ints, ints + width),
                    ints + width,
                    ints + width + 1,
                    floats if numeric else None,
                    floats + 1 if numeric else None,
                )
            )
            ints += width + 2
            floats += 2 if numeric else 0
        self.sections = sections
        self.by_key = {s.key: s for s in sections}
        self._position = {s.key: i for i, s in enumerate(sections)}
        self.int_size = ints
        self.float_size = floats

    def feature(self, name: str) -> Section:
        return self.by_key[f"feature:{name}"]

    def _pairs(self, profile: Profile) -> list[tuple[Section, FeatureBins]]:
        found: list[FeatureBins | None] = [
            *profile.features_.values(),
            *([profile.output_] if self.reference.output_ is not None else []),
            *([profile.confidence_] if self.reference.confidence_ is not None else []),
        ]
        if len(found) != len(self.sections) or any(b is None for b in found):
            raise IncompatibleProfileError(
                "The profile does not have the reference's sections.",
                hint="Build interval profiles with reference.empty_like().",
            )
        pairs: list[tuple[Section, FeatureBins]] = []
        for section, bins in zip(self.sections, found, strict=True):
            assert bins is not None
            section.bins.check_compatible(bins)
            pairs.append((section, bins))
        return pairs

    def flatten(self, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
        """(int64 counts, float64 sums) of ``profile``, in this layout's order."""
        ints = np.zeros(self.int_size, dtype=np.int64)
        floats = np.zeros(self.float_size, dtype=np.float64)
        for section, bins in self._pairs(profile):
            ints[section.counts] = bins.counts
            ints[section.nulls] = bins.nulls
            ints[section.out_of_range] = bins.out_of_range
            if section.sum is not None and section.sum_sq is not None:
                floats[section.sum] = bins.sum
                floats[section.sum_sq] = bins.sum_sq
        return ints, floats

    def inflate(self, ints: np.ndarray, floats: np.ndarray, n_rows: int) -> Profile:
        """The profile these flat arrays describe (the inverse of ``flatten``)."""
        self._check(ints, floats)
        profile = self.reference.empty_like()
        for section, bins in self._pairs(profile):
            bins.counts = np.asarray(ints[section.counts], dtype=np.int64).copy()
            bins.nulls = int(ints[section.nulls])
            bins.out_of_range = int(ints[section.out_of_range])
            if section.sum is not None and section.sum_sq is not None:
                bins.sum = float(floats[section.sum])
                bins.sum_sq = float(floats[section.sum_sq])
        profile.n_rows_ = int(n_rows)
        return profile

    def _check(self, ints: np.ndarray, floats: np.ndarray) -> None:
        if ints.shape[-1] != self.int_size or floats.shape[-1] != self.float_size:
            raise IncompatibleProfileError(
                f"Stored profile counts have {ints.shape[-1]} ints and {floats.shape[-1]} "
                f"floats; this reference expects {self.int_size} and {self.float_size}.",
                hint="The interval was written for another version's reference profile.",
            )

    # -- per-interval statistics over a matrix of flat counts (one row per interval) -----

    def summarise(self, ints: np.ndarray) -> np.ndarray:
        """Per row and section: (values in bins, nulls, out of range), in one pass.

        One ``reduceat`` along each row reads the matrix once in memory order; taking
        column slices section by section would stride through it dozens of times.
        """
        bounds = [i for s in self.sections for i in (s.counts.start, s.nulls, s.out_of_range)]
        if not bounds:
            return np.zeros((ints.shape[0], 0), dtype=np.int64)
        return np.add.reduceat(ints, bounds, axis=1, dtype=np.int64)

    def _at(self, key: str) -> int:
        return 3 * self._position[key]

    def totals(self, summary: np.ndarray, key: str) -> np.ndarray:
        """Values that landed in a bin, per row (``summary`` from ``summarise``)."""
        return np.asarray(summary[:, self._at(key)])

    def means(self, summary: np.ndarray, floats: np.ndarray, key: str) -> np.ndarray:
        """Mean per row of a numeric section (NaN where a row has no values)."""
        section = self.by_key[key]
        assert section.sum is not None
        n = self.totals(summary, key).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, section.bins.center + floats[:, section.sum] / n, np.nan)

    def null_rates(self, summary: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(null share, rows) per row of one section."""
        at = self._at(key)
        nulls = summary[:, at + 1].astype(np.float64)
        rows = summary[:, at] + nulls
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, nulls / rows, np.nan), rows


# ---------------------------------------------------------------------- compact bytes


def encode_counts(values: np.ndarray) -> bytes:
    """Non-negative counts in the narrowest unsigned type (first byte: its size).

    A one-minute interval at low traffic holds counts below 256, so a row costs one byte per
    bin instead of eight; a busy minute widens only its own row.
    """
    top = int(values.max()) if values.size else 0
    if values.size and int(values.min()) < 0:
        raise ValueError("counts must be non-negative")
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return bytes([width]) + np.asarray(values, dtype=_WIDTHS[width]).tobytes()


_WIDTHS = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}


def decode_counts(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=_WIDTHS[data[0]], offset=1).astype(np.int64)


def decode_counts_many(blobs: list[bytes], size: int) -> np.ndarray:
    """Many encoded count vectors of one length as a matrix, one row each.

    Rows of the same width are decoded together from one joined buffer: a month of
    one-minute intervals is a handful of ``frombuffer`` calls, not 43,200. When every row
    has the same width the matrix keeps that narrow type (sum it with ``dtype=np.int64``);
    otherwise it is int64.
    """
    widths = np.fromiter((b[0] for b in blobs), np.int64, len(blobs))
    kinds = np.unique(widths)
    out = None if kinds.size == 1 else np.zeros((len(blobs), size), dtype=np.int64)
    for width in kinds:
        rows = np.flatnonzero(widths == width)
        joined = b"".join(blobs[i][1:] for i in rows)
        values = np.frombuffer(joined, dtype=_WIDTHS[int(width)])
        if values.size != rows.size * size:
            raise IncompatibleProfileError(
                f"Stored counts do not have {size} values per row.",
                hint="The interval was written for another version's reference profile.",
            )
        if out is None:
            return values.reshape(rows.size, size)
        out[rows] = values.reshape(rows.size, size)
    return np.zeros((0, size), dtype=np.int64) if out is None else out


#: Sums are stored as little-endian float64; readers add many rows' blobs in one frombuffer.
FLOAT_DTYPE = "<f8"


def encode_floats(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype=FLOAT_DTYPE).tobytes()


@dataclass
class Usage:
    """A remote model's paid work in one interval: calls sent, answers from the cache,
    prompt and completion tokens and their cost; intervals merge by addition.

    >>> u = Usage()
    >>> u.observe({"usage": {"prompt_tokens": 40, "completion_tokens": 8}, "cost": 0.0005})
    >>> u.observe({"usage": {"prompt_tokens": 0, "completion_tokens": 0}, "cost": 0.0,
    ...            "cached": True})
    >>> (u + u).to_dict()
    {'calls': 2, 'cached': 2, 'prompt_tokens': 80, 'completion_tokens': 16, 'cost': 0.001}
    """

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def observe(self, details: Any) -> None:
        """Count one answer's record (``{"usage": ..., "cost": ..., "cached": ...}``)."""
        if not isinstance(details, dict):
            return
        if details.get("cached"):
            self.cached += 1
        else:
            self.calls += 1
        tokens = details.get("usage")
        if isinstance(tokens, dict):
            self.prompt_tokens += int(tokens.get("prompt_tokens") or 0)
            self.completion_tokens += int(tokens.get("completion_tokens") or 0)
        self.cost += float(details.get("cost") or 0.0)

    @property
    def empty(self) -> bool:
        return not (self.calls or self.cached)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.cached + other.cached,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": round(self.cost, 12),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        """A stored document back (None or a foreign shape: nothing)."""
        if not isinstance(data, dict):
            return cls()
        return cls(
            int(data.get("calls") or 0),
            int(data.get("cached") or 0),
            int(data.get("prompt_tokens") or 0),
            int(data.get("completion_tokens") or 0),
            float(data.get("cost") or 0.0),
        )
