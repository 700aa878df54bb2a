"""The bounded summaries: exact while small, bounded and close when not."""

from __future__ import annotations

import numpy as np

from tripwire.stream.replay.sketch import Reservoir, TimeBins


def test_exact_up_to_capacity() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    r = Reservoir(capacity=5000)
    for chunk in np.array_split(values, 7):
        r.add(chunk)
    assert r.exact and r.seen == 5000
    q = r.quantiles()
    assert q["p99"] == float(np.quantile(values, 0.99))
    assert (q["min"], q["max"]) == (values.min(), values.max())


def test_bounded_beyond_capacity_and_close() -> None:
    values = np.random.default_rng(1).exponential(size=400_000)
    r = Reservoir(capacity=20_000)
    for chunk in np.array_split(values, 97):
        r.add(chunk)
    assert not r.exact and len(r.values) == 20_000 and r.seen == 400_000
    q = r.quantiles()
    for key, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        # the sampled quantile's rank within 1% (p99: 0.2%) of the true one
        rank = (values <= q[key]).mean()
        assert abs(rank - p) < (0.002 if p == 0.99 else 0.01), (key, rank)
    assert q["max"] == values.max()  # exact whatever the sample
    again = Reservoir(capacity=20_000)
    for chunk in np.array_split(values, 97):
        again.add(chunk)
    assert again.quantiles() == q  # seeded: the same input, the same report


def test_time_bins_stay_few() -> None:
    b = TimeBins(("a", "b"), width_ms=1000, max_bins=50)
    t = np.arange(0, 3_600_000, 700, dtype=np.float64)
    b.add(t, "a")
    b.add(np.array([np.nan, 10.0]), "b")
    assert len(b.counts) <= 50
    totals = np.sum(list(b.counts.values()), axis=0)
    assert totals.tolist() == [len(t), 1]
