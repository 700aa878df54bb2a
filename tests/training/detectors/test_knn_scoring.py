"""``knn`` and ``ensemble`` scoring: the exact answer, the same bits in any batch.

As for the torch detectors (``test_deep_scoring.py``): a row's score and
contributions are compared with ``tobytes()``, never a tolerance, alone and in
batches of any size, position, alignment and thread count. The float32 product
that proposes neighbours rounds by shape and address (oneMKL on AMD EPYC); the
certified float64 recomputation must make that invisible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.neighbors import NearestNeighbors

from tripwire.core.detector import Detector
from tripwire.training.detectors.ensemble import KNNEnsemble
from tripwire.training.detectors.knn import KNN

from .test_deep_scoring import misaligned_copy, wide

DETECTORS: dict[str, Callable[[], Detector]] = {
    "knn-50": lambda: KNN(seed=0).fit(wide(3000)),
    "knn-none-8": lambda: KNN(seed=1, k=3, scaling="none").fit(wide(800, d=8)),
    "ensemble-50": lambda: KNNEnsemble(seed=0, max_reference=2000).fit(wide(2600)),
}


@pytest.fixture(scope="module", params=list(DETECTORS))
def det(request: pytest.FixtureRequest) -> Detector:
    return DETECTORS[request.param]()


@pytest.fixture(scope="module")
def rows(det: Detector) -> np.ndarray:
    n_features = det.get_state()["n_features"]
    return 1.5 * wide(1000, d=n_features, seed=7)  # wider than the training rows


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(int(request.param))
    yield
    torch.set_num_threads(before)


def brute_force(member: KNN, X: np.ndarray) -> np.ndarray:
    """Mean distance to the k nearest reference rows, by sklearn's exhaustive search."""
    Z = member._transform(X)
    search = NearestNeighbors(n_neighbors=member.k_, algorithm="brute").fit(member.reference_z_)
    return search.kneighbors(Z)[0].mean(axis=1)


@pytest.mark.parametrize("n", [1, 255, 256, 257, 1000])
def test_scores_are_the_exhaustive_searchs(det, rows, n, threads):
    X = rows[:n]
    scores, contrib = det.score_and_explain(X)
    members = det.members_ if isinstance(det, KNNEnsemble) else [det]
    raw = [brute_force(m, X) for m in members]
    if isinstance(det, KNNEnsemble):
        surprise = [s.transform(r) for s, r in zip(det.surprise_, raw, strict=True)]
        np.testing.assert_allclose(scores, np.mean(surprise, axis=0), rtol=1e-9, atol=1e-9)
    else:
        np.testing.assert_allclose(scores, raw[0], rtol=1e-9, atol=1e-9)
    assert contrib is not None and contrib.shape == X.shape and np.all(contrib >= 0)


def test_a_row_scores_the_same_bits_in_any_batch_order(det, rows, threads):
    X = rows[:600]
    alone = [det.score_and_explain(X[i : i + 1]) for i in range(0, 600, 41)]
    perm = np.random.default_rng(3).permutation(len(X))
    s_perm, c_perm = det.score_and_explain(X[perm])
    scores, contrib = np.empty(len(X)), np.empty(X.shape)
    scores[perm], contrib[perm] = s_perm, c_perm
    assert np.concatenate([s for s, _ in alone]).tobytes() == scores[::41].tobytes()
    assert np.concatenate([c for _, c in alone]).tobytes() == contrib[::41].tobytes()


FIXTURES = HealthCheck.function_scoped_fixture


@settings(max_examples=30, deadline=None, suppress_health_check=[FIXTURES])
@given(
    n=st.integers(1, 700),
    where=st.floats(0, 1, exclude_max=True),
    offset=st.integers(0, 15),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_row_scores_the_same_bits_at_any_position_alignment_and_batch_size(
    det, rows, n, where, offset, threads, seed
):
    """The probe row alone, and in a batch of n random rows at a random position of
    a buffer at a random alignment, on 1 or 2 threads: the same bits."""
    rng = np.random.default_rng(seed)
    probe = rows[rng.integers(len(rows))]
    batch = rows[rng.integers(len(rows), size=n)] * rng.uniform(0.5, 2.0, size=(n, 1))
    position = int(where * n)
    batch[position] = probe
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        scores, contrib = det.score_and_explain(misaligned_copy(batch.astype(np.float32), offset))
    finally:
        torch.set_num_threads(before)
    alone_scores, alone_contrib = det.score_and_explain(probe[None, :])
    assert scores[position].tobytes() == alone_scores[0].tobytes()
    assert contrib is not None and alone_contrib is not None
    assert contrib[position].tobytes() == alone_contrib[0].tobytes()
