"""Exact neighbour search: float32 proposals, certified, recomputed row by row.

The answer must be the exhaustive one (the same bits as scanning every reference
row exactly) whatever the proposal did, as long as each approximation is within
the documented bound; rows the bound cannot certify must fall back, not guess.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from tripwire.training.detectors import neighbours
from tripwire.training.detectors.neighbours import NeighbourIndex, error_bound, search


def blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(3, d))
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d))


def run_kernel(
    approx: np.ndarray,
    Q: np.ndarray,
    index: NeighbourIndex,
    k: int,
    n_cand: int,
    drop: int = 0,
    unit: float = 2.0**-24,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist, sq_diff = np.empty((len(Q), k)), np.empty(Q.shape)
    fallback = np.zeros(len(Q), dtype=np.bool_)
    neighbours._search_rows(
        approx.astype(np.float32), Q, index.R, index.r_max, k, drop, n_cand, unit,
        dist, sq_diff, fallback,
    )  # fmt: skip
    return dist, sq_diff, fallback


def exhaustive(Q: np.ndarray, index: NeighbourIndex, k: int, drop: int = 0):
    """The kernel with no proposal at all: every reference row recomputed exactly."""
    empty = np.zeros((len(Q), 0), dtype=np.float32)
    return run_kernel(empty, Q, index, k, n_cand=len(index.R), drop=drop)[:2]


def assert_same_bits(got: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    for g, e in zip(got, expected, strict=True):
        assert g.tobytes() == e.tobytes()


SHAPES = [(2000, 50, 5), (500, 3, 7), (12, 4, 5), (14, 4, 5), (40, 6, 5), (300, 20, 1)]


@pytest.mark.parametrize(("m", "d", "k"), SHAPES)
def test_search_is_sklearns_exact_search_and_the_exhaustive_bits(m, d, k):
    R, Q = blobs(m, d), blobs(90, d, seed=1)
    Q[:10] *= 6.0  # far rows too
    index = NeighbourIndex(R)
    dist, sq_diff, fallback = search(Q, index, k)
    expected, _ = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(R).kneighbors(Q)
    np.testing.assert_allclose(dist, expected, rtol=1e-9, atol=1e-9)
    assert_same_bits((dist, sq_diff), exhaustive(Q, index, k))
    # well-separated distances: the proposal is certified (below k + margin rows: no proposal)
    assert fallback.all() if m <= k + neighbours.CANDIDATE_MARGIN else not fallback.any()


@pytest.mark.parametrize("direction", ["random", "adversarial"])
@pytest.mark.parametrize("unit", [2.0**-24, 2.0**-12])
def test_any_proposal_within_the_bound_gives_the_exhaustive_answer(direction, unit):
    """Approximations off by up to 0.9 bound: random, or pushing the true neighbours
    away and the others closer (the worst a BLAS could do). A looser bound (a
    larger ``unit``) makes rows fall back: their answer must not change either."""
    rng = np.random.default_rng(5)
    R, Q = blobs(800, 10), blobs(200, 10, seed=2)
    index = NeighbourIndex(R)
    exact = index.r_sq[None, :] - 2.0 * Q @ R.T
    eps = np.array([error_bound(float(q @ q), index.r_max, 10, unit) for q in Q])[:, None]
    if direction == "random":
        noise = rng.uniform(-0.9, 0.9, size=exact.shape)
    else:
        rank = np.argsort(np.argsort(exact, axis=1), axis=1)
        noise = np.where(rank < 5, 0.9, -0.9)
    got = run_kernel(exact + noise * eps, Q, index, k=5, n_cand=13, unit=unit)
    assert_same_bits(got[:2], exhaustive(Q, index, 5))
    if unit > 2.0**-24:  # both paths taken
        assert 0 < got[2].sum() < len(Q)


def test_ties_and_duplicates_fall_back_and_stay_exact():
    R = np.repeat(blobs(40, 6), 30, axis=0)  # every row 30 times: ties beyond the margin
    Q = np.vstack([R[::97], blobs(20, 6, seed=3)])
    index = NeighbourIndex(R)
    dist, sq_diff, fallback = search(Q, index, 5)
    assert fallback[: len(R[::97])].all()
    assert_same_bits((dist, sq_diff), exhaustive(Q, index, 5))
    loo, _, _ = search(R, index, 5, skip_self=True)
    np.testing.assert_array_equal(loo, 0.0)


def test_rows_that_would_overflow_float32_are_searched_exactly():
    R = blobs(300, 5) * 1e19
    Q = blobs(20, 5, seed=4) * 1e19
    index = NeighbourIndex(R)
    dist, sq_diff, fallback = search(Q, index, 3)
    assert fallback.all() and np.isfinite(dist).all()
    assert_same_bits((dist, sq_diff), exhaustive(Q, index, 3))
    beyond = np.vstack([blobs(3, 5, seed=5) * 1e40, blobs(3, 5, seed=6)])  # not even float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = search(beyond, index, 3)
    assert_same_bits(got[:2], exhaustive(beyond, index, 3))


@pytest.fixture
def reduced_precision() -> Iterator[None]:
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    yield
    torch.set_float32_matmul_precision(before)


def test_onednn_reduced_fpmath_widens_the_bound(monkeypatch):
    assert neighbours.rounding_unit() == 2.0**-24
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")
    assert neighbours.rounding_unit() > 2.0**-24


def test_reduced_precision_products_widen_the_bound(reduced_precision):
    assert neighbours.rounding_unit() > 2.0**-24
    R, Q = blobs(1000, 30), blobs(64, 30, seed=5)
    index = NeighbourIndex(R)
    assert_same_bits(search(Q, index, 5)[:2], exhaustive(Q, index, 5))


def test_memory_is_bounded_by_chunks_with_the_same_bits(monkeypatch):
    R, Q = blobs(700, 12), blobs(300, 12, seed=6)
    index = NeighbourIndex(R)
    whole = search(Q, index, 4, skip_self=False)
    monkeypatch.setattr(neighbours, "CHUNK_VALUES", 700)  # one row per product
    assert_same_bits(search(Q, index, 4), whole)


def test_leave_one_out_is_the_exhaustive_search_without_the_row():
    R = blobs(400, 25)
    index = NeighbourIndex(R)
    loo, sq_diff, _ = search(R, index, 4, skip_self=True)
    assert_same_bits((loo, sq_diff), exhaustive(R, index, 4, drop=1))
    expected = NearestNeighbors(n_neighbors=5).fit(R).kneighbors(R)[0][:, 1:]
    np.testing.assert_allclose(loo, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("m", "n_groups", "seed"), [(2000, 13, 0), (300, 13, 1), (20, 13, 2)])
def test_the_proposal_holds_every_column_below_tau_and_only_those(m, n_groups, seed):
    rng = np.random.default_rng(seed)
    # rounded: many tied values, the case a strict bound must survive
    row = np.round(rng.normal(size=m), 1).astype(np.float32)
    width = max(n_groups + 1, -(-m // neighbours.GROUP_SIZE))
    groups = np.zeros(n_groups + 1, dtype=np.int64)
    cand = np.full(n_groups * (-(-m // width)), -1, dtype=np.int64)
    n, tau = neighbours._propose(
        row, np.empty(width, np.float32), groups, np.empty(n_groups + 1), cand
    )
    chosen = set(cand[:n].tolist())
    assert len(chosen) == n and all(row[j] < tau for j in chosen)
    rest = np.setdiff1d(np.arange(m), cand[:n])
    assert np.all(row[rest] >= tau)  # tau bounds every other column from below
    minima = np.sort([row[g::width].min() for g in range(width)])
    assert tau == minima[n_groups]  # the (n_groups + 1)-th smallest group minimum


# -- the kernel's pieces against plain definitions ---------------------------------
def reference_rows(approx, Q, R, r_max, k, drop, n_cand, unit):
    """The kernel's rule in plain Python: ``tau`` the ``(n_cand + 1)``-th smallest
    group minimum, candidates every column below it, certified when ``|q|^2 + tau -
    eps`` exceeds the ``k``-th recomputed distance, else the pruned exact scan."""
    m, d = R.shape
    kk = k + drop
    width = max(n_cand + 1, -(-m // neighbours.GROUP_SIZE))
    dist, sq_diff = np.empty((len(Q), k)), np.empty(Q.shape)
    fallback = np.zeros(len(Q), dtype=np.bool_)

    rows = R.tolist()

    def exact(q, j):
        s = 0.0
        for t in range(d):
            s += (q[t] - rows[j][t]) * (q[t] - rows[j][t])
        return s

    for i, q in enumerate(Q.tolist()):
        q_sq = 0.0
        for t in range(d):
            q_sq += q[t] * q[t]
        eps = error_bound(q_sq, r_max, d, unit)
        span = np.sqrt(q_sq) + r_max
        use = n_cand < m and span * span < 1e36
        limit, certified, best = np.inf, False, []
        if use:
            row = approx[i]
            tau = float(np.sort([row[g::width].min() for g in range(width)])[n_cand])
            cands = [j for j in range(m) if row[j] < tau]
            best = sorted((exact(q, j), j) for j in cands)[:kk]
            if len(best) == kk:
                limit = best[-1][0]
                certified = q_sq + tau - eps > limit
        fallback[i] = not certified
        if not certified:
            best = []
            for j in range(m):
                if len(best) == kk and best[-1][0] < limit:
                    limit = best[-1][0]
                if use and q_sq + float(approx[i, j]) - eps > limit:
                    continue
                best = sorted([*best, (exact(q, j), j)])[:kk]
        chosen = best[drop:]
        dist[i] = [np.sqrt(v) for v, _ in chosen]
        for t in range(d):
            s = 0.0
            for _, j in chosen:
                s += (q[t] - rows[j][t]) * (q[t] - rows[j][t])
            sq_diff[i, t] = s / k
    return dist, sq_diff, fallback


def proposals(kind: str, Q: np.ndarray, R: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    exact = np.einsum("ij,ij->i", R, R)[None, :] - 2.0 * Q @ R.T
    if kind == "float32":
        return exact.astype(np.float32)
    if kind == "tied":  # rounded: ties within and across groups, at tau too
        return np.round(exact).astype(np.float32)
    if kind == "zeros":  # -0.0 and 0.0 minima, equal floats with different bits
        out = np.round(exact / 50.0).astype(np.float32)
        out[out == 0.0] = np.where(rng.random(np.count_nonzero(out == 0.0)) < 0.5, -0.0, 0.0)
        out[:, 1::5] = -0.0
        return out
    return rng.normal(size=exact.shape).astype(np.float32)  # anything: no bound at all


@pytest.mark.parametrize("kind", ["float32", "tied", "zeros", "garbage"])
@pytest.mark.parametrize(
    ("m", "k", "drop", "margin"),
    [(300, 5, 0, 8), (301, 3, 1, 8), (257, 1, 0, 0), (90, 4, 0, 32), (40, 5, 1, 16), (20, 5, 0, 8)],
)
def test_the_kernel_is_the_plain_rule_bit_for_bit(kind, m, k, drop, margin):
    """Whatever the proposal (within the bound or not), the kernel's three outputs are
    the plain rule's: ``m`` not a multiple of the group width, ``k + margin >= m``,
    margins the bf16 path may use, ties at ``tau`` and across groups, signed zeros."""
    rng = np.random.default_rng(m + k)
    R = np.round(blobs(m, 6, seed=m), 1)
    R[m // 2 :: 7] = R[0]  # duplicates
    Q = np.vstack([R[:: max(1, m // 10)], blobs(12, 6, seed=7)])
    index = NeighbourIndex(R)
    approx = proposals(kind, Q, R, rng)
    n_cand = k + drop + margin
    for unit in (2.0**-24, 2.0**-10):
        got = run_kernel(approx, Q, index, k, n_cand, drop=drop, unit=unit)
        expected = reference_rows(approx, Q, index.R, index.r_max, k, drop, n_cand, unit)
        assert_same_bits(got, expected)


@pytest.mark.parametrize("n", [1, 7, 8, 13, 64, 125, 250])
@pytest.mark.parametrize("padded", [False, True])
def test_kth_smallest_is_the_sorted_value_with_ties_and_signed_zeros(n, padded):
    rng = np.random.default_rng(n)
    for values in (
        rng.normal(size=n) * 1e3,
        np.round(rng.normal(size=n)),  # ties, zeros
        np.full(n, -3.5),
        np.where(rng.random(n) < 0.5, -0.0, 0.0) + np.round(rng.normal(size=n) / 2),
        rng.uniform(1e-40, 1e-38, size=n) * rng.choice([-1, 1], size=n),  # subnormal floats
    ):
        values = values.astype(np.float32)
        for rank in sorted({0, n // 2, n - 1, min(13, n - 1)}):
            scratch = np.empty(-(-n // 32) * 32 if padded else n, np.float32)
            scratch[:n] = values
            got = neighbours._kth_smallest(scratch, n, rank)
            assert got == np.sort(values)[rank]


@pytest.mark.parametrize("n", list(range(1, 21)))
def test_rows_recomputed_together_are_the_sequential_sums(n):
    R, q = blobs(50, 50), blobs(1, 50, seed=8)[0] * 3.0
    idx = np.random.default_rng(n).integers(0, 50, size=n + 3)
    out = np.full(n + 3, -1.0)
    neighbours._sq_dists(q, R, idx, n, out)
    expected = [neighbours._sq_dist(q, R, j) for j in idx[:n]]
    assert out[:n].tobytes() == np.array(expected).tobytes()
    assert np.all(out[n:] == -1.0)  # nothing written past n
