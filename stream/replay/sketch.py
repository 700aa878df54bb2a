"""Bounded summaries of unbounded streams: a score reservoir and time bins.

A replay may read millions of events; what it keeps of them is bounded:
:class:`Reservoir` holds every value up to ``capacity`` (quantiles exact), then a
uniform sample of that size (Algorithm R, seeded: the same input gives the same
report), with the exact minimum and maximum beside it; :class:`TimeBins` counts
per time bin, doubling the bin width whenever there would be more than
``max_bins`` bins.
"""

from __future__ import annotations

import math

import numpy as np

#: Values a reservoir keeps: quantiles are exact up to this many events.
CAPACITY = 100_000


class Reservoir:
    """A uniform sample of at most ``capacity`` values, exact min and max.

    >>> r = Reservoir(capacity=1000)
    >>> r.add(np.arange(101, dtype=np.float64))
    >>> r.quantiles()["p50"], r.quantiles()["max"], r.exact
    (50.0, 100.0, True)
    """

    def __init__(self, capacity: int = CAPACITY, seed: int = 0) -> None:
        self.capacity = capacity
        self._buf = np.empty(capacity, np.float64)
        self._size = 0
        self.seen = 0
        self.low, self.high = math.inf, -math.inf
        self._rng = np.random.default_rng(seed)

    @property
    def exact(self) -> bool:
        """Every value seen is in the sample."""
        return self.seen == self._size

    @property
    def values(self) -> np.ndarray:
        return self._buf[: self._size]

    def add(self, values: np.ndarray) -> None:
        """Add ``values`` (n,), finite."""
        n = len(values)
        if not n:
            return
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        fill = min(n, self.capacity - self._size)
        self._buf[self._size : self._size + fill] = values[:fill]
        self._size += fill
        rest = values[fill:]
        if len(rest):  # item t (1-based, overall) replaces a random slot with chance k/t
            t = self.seen + fill + np.arange(1, len(rest) + 1, dtype=np.float64)
            slot = (self._rng.random(len(rest)) * t).astype(np.int64)
            keep = slot < self.capacity
            self._buf[slot[keep]] = rest[keep]
        self.seen += n

    def quantiles(self, qs: dict[str, float] | None = None) -> dict[str, float]:
        """``{"min", "p50", "p90", "p99", "p999", "max"}`` (empty without values)."""
        if not self._size:
            return {}
        qs = qs or {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
        got = np.quantile(self.values, list(qs.values()))
        # a sample's quantile can never lie outside the exact extremes
        out = {k: float(min(max(v, self.low), self.high)) for k, v in zip(qs, got, strict=True)}
        return {"min": self.low, **out, "max": self.high}


class TimeBins:
    """Counts of a few series per time bin; at most ``max_bins`` bins.

    >>> b = TimeBins(("a", "b"), width_ms=1000, max_bins=4)
    >>> b.add(np.array([0.0, 500.0, 7000.0]), "a")
    >>> b.width_ms, sorted(b.counts)
    (2000, [0, 3])
    """

    def __init__(self, series: tuple[str, ...], width_ms: int = 1000, max_bins: int = 500) -> None:
        self.series = series
        self.width_ms = width_ms
        self.max_bins = max_bins
        self.counts: dict[int, np.ndarray] = {}

    def add(self, times_ms: np.ndarray, series: str) -> None:
        """Count the events at ``times_ms`` (NaN: unknown time, not counted) in ``series``."""
        times_ms = times_ms[np.isfinite(times_ms)]
        if not len(times_ms):
            return
        col = self.series.index(series)
        bins, n = np.unique(np.floor(times_ms / self.width_ms).astype(np.int64), return_counts=True)
        for b, c in zip(bins.tolist(), n.tolist(), strict=True):
            self.counts.setdefault(b, np.zeros(len(self.series), np.int64))[col] += c
        while len(self.counts) > 1 and max(self.counts) - min(self.counts) >= self.max_bins:
            self._coarsen()

    def _coarsen(self) -> None:
        merged: dict[int, np.ndarray] = {}
        for b, c in self.counts.items():
            merged.setdefault(b // 2, np.zeros(len(self.series), np.int64))
            merged[b // 2] += c
        self.counts, self.width_ms = merged, self.width_ms * 2
