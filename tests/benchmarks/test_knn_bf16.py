"""``benchmarks.knn_bf16``: both proposals measured on one detector, bits compared.

The bound itself is tested against torch's actual bf16 product, and shown tight, in
``tests/training/detectors/test_neighbours.py`` (it moved from this what-if into
``neighbours.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import knn_bf16
from benchmarks.knn_speed import tutorial_like
from tripwire.training.detectors.ensemble import KNNEnsemble


def test_one_run_measures_every_proposal_with_the_float32_bits() -> None:
    X, T = tutorial_like(600, 512, 8, seed=0)
    det = KNNEnsemble(max_reference=300).fit(X)
    before = [m.index_ for m in det.members_]
    rows = knn_bf16.measure(det, T, repeats=1)
    assert set(rows) == set(knn_bf16.PROPOSALS)
    for name, r in rows.items():
        assert len(r.search_ms) == 2 and min(r.search_ms) > 0 and r.rate > 0
        assert knn_bf16.same_bits(r.result, rows["float32"].result)
        if name != "auto":
            assert r.picks == f"{name}/{name}"
    assert [m.index_ for m in det.members_] == before  # indexes swapped back
    x = rows["bf16"].result[0]
    assert not knn_bf16.same_bits((x,), (np.nextafter(x, np.inf),))


def test_the_adbench_table_compares_bits_per_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.zeros(300, dtype=np.int64)
    y[:10] = 1
    np.savez(tmp_path / "7_toy.npz", X=rng.normal(size=(300, 4)), y=y)
    table = knn_bf16.adbench_table(tmp_path, seed=0)
    row = table.splitlines()[-1]
    assert row.startswith("| 7_toy | 300 | 4 | 290 |")
    assert row.endswith("| yes, yes, yes; yes, yes, yes |")
