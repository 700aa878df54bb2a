"""Exact neighbour search: float32 or bf16 proposals, certified, recomputed row by row.

The answer must be the exhaustive one (the same bits as scanning every reference
row exactly) whatever the proposal did, as long as each approximation is within
the documented bound; rows the bound cannot certify must fall back, not guess.
The tests written for float32 proposals (whose fallbacks depend on
``CANDIDATE_MARGIN``) run on that path on any CPU; the bf16 ones name theirs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from tripwire.training.detectors import kernels, neighbours
from tripwire.training.detectors.kernels import error_bound
from tripwire.training.detectors.neighbours import NeighbourIndex, bf16_cross, search


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NeighbourIndex(R)`` proposes with float32 products, whatever the CPU."""
    monkeypatch.setenv(neighbours.PROPOSAL_VARIABLE, "float32")


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
    cross: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist, sq_diff = np.empty((len(Q), k)), np.empty(Q.shape)
    fallback = np.zeros(len(Q), dtype=np.bool_)
    kernels._search_rows(
        approx.astype(np.float32), Q, index.R, index.r_max, k, drop, n_cand, unit,
        dist, sq_diff, fallback, cross,
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
    width = max(n_groups + 1, -(-m // kernels.GROUP_SIZE))
    groups = np.zeros(n_groups + 1, dtype=np.int64)
    cand = np.full(n_groups * (-(-m // width)), -1, dtype=np.int64)
    n, tau = kernels._propose(
        row, np.empty(width, np.float32), groups, np.empty(n_groups + 1), cand
    )
    chosen = set(cand[:n].tolist())
    assert len(chosen) == n and all(row[j] < tau for j in chosen)
    rest = np.setdiff1d(np.arange(m), cand[:n])
    assert np.all(row[rest] >= tau)  # tau bounds every other column from below
    minima = np.sort([row[g::width].min() for g in range(width)])
    assert tau == minima[n_groups]  # the (n_groups + 1)-th smallest group minimum


# -- bf16 proposals -----------------------------------------------------------------
BF16_CAND = neighbours.BF16_CANDIDATE_MARGIN


@pytest.mark.parametrize(("m", "d", "k"), SHAPES)
def test_bf16_proposals_give_the_float32_paths_bits_in_any_batch(m, d, k, monkeypatch):
    R, Q = blobs(m, d), blobs(90, d, seed=1)
    Q[:10] *= 6.0  # far rows too
    bf16 = NeighbourIndex(R, proposal="bf16")
    assert bf16.RT.dtype == torch.bfloat16
    dist, sq_diff, fallback = search(Q, bf16, k)
    assert_same_bits((dist, sq_diff), search(Q, NeighbourIndex(R, proposal="float32"), k)[:2])
    assert_same_bits((dist, sq_diff), exhaustive(Q, bf16, k))
    if m > 2 * (k + BF16_CAND):  # a real proposal: it certifies most rows
        assert fallback.mean() < 0.25
    shifted = search(Q[1:], bf16, k)  # other batch, other alignment
    assert_same_bits(shifted[:2], (dist[1:], sq_diff[1:]))
    monkeypatch.setattr(neighbours, "CHUNK_VALUES", m)  # one row per product
    assert_same_bits(search(Q[:7], bf16, k)[:2], (dist[:7], sq_diff[:7]))
    if m > k + 1:
        loo = search(R, bf16, k, skip_self=True)
        assert_same_bits(loo[:2], exhaustive(R, bf16, k, drop=1))


@pytest.mark.parametrize("direction", ["random", "adversarial"])
def test_any_proposal_within_the_bf16_bound_gives_the_exhaustive_answer(direction):
    """As for float32, with the bf16 bound (its cross term) and margin: approximations
    off by up to 0.9 bound, at random or against the true neighbours. The rows sit
    away from the origin, where the bound (~ |q| max|r| / 40) is about the gaps
    between neighbours: some rows certify, some fall back."""
    rng = np.random.default_rng(7)
    R, Q = blobs(800, 10) + 4.0, blobs(200, 10, seed=2) + 4.0
    index = NeighbourIndex(R, proposal="bf16")
    cross = bf16_cross(10, 2.0**-24)
    exact = index.r_sq[None, :] - 2.0 * Q @ R.T
    # the documented bound, spelt out here (a weaker error_bound must then fail)
    q_norm = np.linalg.norm(Q, axis=1)
    eps = 4 * 14 * 2.0**-24 * (q_norm + index.r_max) ** 2 + cross * q_norm * index.r_max
    if direction == "random":
        noise = rng.uniform(-0.9, 0.9, size=exact.shape)
    else:
        rank = np.argsort(np.argsort(exact, axis=1), axis=1)
        noise = np.where(rank < 5, 0.9, -0.9)
    approx = exact + noise * eps[:, None]
    got = run_kernel(approx, Q, index, k=5, n_cand=5 + BF16_CAND, cross=cross)
    assert_same_bits(got[:2], exhaustive(Q, index, 5))
    assert 0 < got[2].sum() < len(Q)  # both paths taken


def test_far_from_the_origin_bf16_misorders_every_row_and_the_bound_catches_it():
    """At ``|q| ~ 130`` the bf16 product's error (~ |q| max|r| / 100) exceeds the
    gaps between neighbours: its 5 smallest are not the 5 nearest for any row.
    Certifying with the float32 bound would keep wrong neighbours."""
    R, Q = blobs(2000, 20) + 30.0, blobs(200, 20, seed=11) + 30.0
    index = NeighbourIndex(R, proposal="bf16")
    approx = torch.empty((len(Q), len(R)))
    neighbours.approximate(Q, index, approx)
    exact = ((Q[:, None, :] - R[None, :, :]) ** 2).sum(axis=2)
    top = [np.sort(np.argsort(a, axis=1)[:, :5], axis=1) for a in (approx.numpy(), exact)]
    assert (top[0] != top[1]).any(axis=1).all()
    dist, sq_diff, fallback = search(Q, index, 5)
    assert fallback.any()
    assert_same_bits((dist, sq_diff), exhaustive(Q, index, 5))
    assert_same_bits((dist, sq_diff), search(Q, NeighbourIndex(R, proposal="float32"), 5)[:2])


def worst_rounding(d: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """``q = x 1``, ``r = sign x 1`` with ``x`` just below a bf16 rounding tie: every
    coordinate loses 2^-8 of itself, the products 2^-7 each, all the same way, and
    ``d = 257`` rounds the float32 sum (257) down to bf16 (256): each of the three
    roundings the bound charges ``2^-8 |q| |r|`` is reached."""
    x = 1.0 + 2.0**-8 - 2.0**-20
    others = np.random.default_rng(10).uniform(-1.0, 1.0, size=(40, d))  # shorter than r
    return np.full((1, d), x), np.vstack([np.full((1, d), sign * x), others])


@pytest.mark.parametrize(
    "case", ["blobs", "uniform far", "worst rounding", "worst rounding, opposite"]
)
def test_torchs_bf16_product_is_within_the_bound_and_the_bound_is_tight(case):
    """The actual product on this CPU (native or emulated), against the exact
    ``|q - r|^2``: within ``error_bound``; on the worst case, within 10% of it."""
    if case == "blobs":
        R, Q = blobs(3000, 50), blobs(256, 50, seed=8)
    elif case == "uniform far":
        rng = np.random.default_rng(9)
        R, Q = rng.normal(size=(2000, 50)), rng.uniform(-10, 0, size=(64, 50))
    else:
        Q, R = worst_rounding(257, -1.0 if "opposite" in case else 1.0)
    index = NeighbourIndex(R, proposal="bf16")
    d = R.shape[1]
    out = torch.empty((len(Q), len(R)))
    neighbours.approximate(Q, index, out)
    q_sq = np.einsum("ij,ij->i", Q, Q)
    exact = ((Q[:, None, :] - R[None, :, :]) ** 2).sum(axis=2)
    cross = bf16_cross(d, neighbours.rounding_unit())
    eps = np.array([error_bound(s, index.r_max, d, 2.0**-24, cross) for s in q_sq])
    ratio = np.abs(q_sq[:, None] + out.numpy() - exact) / eps[:, None]
    assert ratio.max() <= 1.0
    if case.startswith("worst"):
        assert ratio[0, 0] > 0.9


def test_bf16_ties_and_duplicates_fall_back_and_stay_exact():
    R = np.repeat(blobs(40, 6), BF16_CAND + 8, axis=0)  # ties beyond the bf16 margin
    Q = np.vstack([R[::97], blobs(20, 6, seed=3)])
    index = NeighbourIndex(R, proposal="bf16")
    dist, sq_diff, fallback = search(Q, index, 5)
    assert fallback[: len(R[::97])].all()
    assert_same_bits((dist, sq_diff), exhaustive(Q, index, 5))
    assert_same_bits((dist, sq_diff), search(Q, NeighbourIndex(R, proposal="float32"), 5)[:2])
    loo, _, _ = search(R, index, 5, skip_self=True)
    np.testing.assert_array_equal(loo, 0.0)


def test_bf16_huge_rows_are_exact_and_rows_beyond_float32_skip_the_product():
    """bf16 has float32's exponent range (its largest finite value is a little
    smaller): rows of ~1e16 still use the product, rows of 1e19 (squares beyond
    float32) or 1e40 (beyond even the rows' own float32) are scanned exactly."""
    for scale, all_fall_back in ((1e16, False), (1e19, True)):
        R, Q = blobs(300, 5) * scale, blobs(20, 5, seed=4) * scale
        index = NeighbourIndex(R, proposal="bf16")
        dist, sq_diff, fallback = search(Q, index, 3)
        assert fallback.all() if all_fall_back else not fallback.all()
        assert np.isfinite(dist).all()
        assert_same_bits((dist, sq_diff), exhaustive(Q, index, 3))
        assert_same_bits((dist, sq_diff), search(Q, NeighbourIndex(R, proposal="float32"), 3)[:2])
    beyond = np.vstack([blobs(3, 5, seed=5) * 1e40, blobs(3, 5, seed=6)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = search(beyond, index, 3)
    assert_same_bits(got[:2], exhaustive(beyond, index, 3))


def test_the_proposal_can_be_forced(monkeypatch):
    for chosen in neighbours.PROPOSALS:
        monkeypatch.setenv(neighbours.PROPOSAL_VARIABLE, chosen.upper())
        index = NeighbourIndex(blobs(50, 3))
        assert index.proposal == chosen and index.probe_fallback is None
        assert index.RT.dtype == (torch.bfloat16 if chosen == "bf16" else torch.float32)
    monkeypatch.setenv(neighbours.PROPOSAL_VARIABLE, "fp8")
    with pytest.raises(ValueError, match="TRIPWIRE_KNN_PROPOSAL"):
        NeighbourIndex(blobs(50, 3))
    with pytest.raises(ValueError, match="proposal"):
        NeighbourIndex(blobs(50, 3), proposal="fp8")


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_chosen_where_native_and_where_it_certifies_the_rows(monkeypatch, native):
    """The automatic choice on any CPU (native bf16 pretended or denied): bf16 for
    centred Gaussian rows (the tutorial's), float32 for rows whose neighbours are
    close compared with the bf16 bound (blobs far from the origin) and for rows
    that are all ties; never bf16 on a CPU without native bf16 products, and no
    probe there."""
    monkeypatch.delenv(neighbours.PROPOSAL_VARIABLE)
    monkeypatch.setattr(neighbours, "native_bf16", lambda: native)
    gaussian = np.random.default_rng(12).normal(size=(2000, 50))
    separated = NeighbourIndex(gaussian)
    close = NeighbourIndex(blobs(2000, 20) + 30.0)
    ties = NeighbourIndex(np.repeat(blobs(40, 6), 30, axis=0))
    if not native:
        assert {i.proposal for i in (separated, close, ties)} == {"float32"}
        assert {i.probe_fallback for i in (separated, close, ties)} == {None}
        return
    assert separated.proposal == "bf16" and separated.probe_fallback <= 0.1
    assert close.proposal == "float32" and close.probe_fallback > 0.1
    assert ties.proposal == "float32" and ties.probe_fallback > 0.1
    assert close.RT.dtype == torch.float32  # the probe's bf16 copy is not kept
    Q = np.random.default_rng(13).normal(size=(64, 50))
    forced = NeighbourIndex(gaussian, proposal="float32")
    assert_same_bits(search(Q, separated, 5)[:2], search(Q, forced, 5)[:2])


def test_the_cpu_check_agrees_with_cpuinfo_where_there_is_one():
    path = "/proc/cpuinfo"
    try:
        with open(path) as f:
            flags = {w for line in f if line.startswith("flags") for w in line.split()}
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert neighbours.native_bf16() == bool(flags & neighbours.BF16_FLAGS)


def test_without_torchs_query_the_cpuinfo_flags_decide(monkeypatch, tmp_path):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not neighbours.native_bf16(str(cpuinfo))
    for flag in sorted(neighbours.BF16_FLAGS):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu avx2 {flag} avx512f\n")
        assert neighbours.native_bf16(str(cpuinfo))
    assert not neighbours.native_bf16(str(tmp_path / "missing"))


# -- the kernel's pieces against plain definitions ---------------------------------
def reference_rows(approx, Q, R, r_max, k, drop, n_cand, unit):
    """The kernel's rule in plain Python: ``tau`` the ``(n_cand + 1)``-th smallest
    group minimum, candidates every column below it, certified when ``|q|^2 + tau -
    eps`` exceeds the ``k``-th recomputed distance, else the pruned exact scan."""
    m, d = R.shape
    kk = k + drop
    width = max(n_cand + 1, -(-m // kernels.GROUP_SIZE))
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
            got = kernels._kth_smallest(scratch, n, rank)
            assert got == np.sort(values)[rank]


@pytest.mark.parametrize("n", list(range(1, 21)))
def test_rows_recomputed_together_are_the_sequential_sums(n):
    R, q = blobs(50, 50), blobs(1, 50, seed=8)[0] * 3.0
    idx = np.random.default_rng(n).integers(0, 50, size=n + 3)
    out = np.full(n + 3, -1.0)
    kernels._sq_dists(q, R, idx, n, out)
    expected = [kernels._sq_dist(q, R, j) for j in idx[:n]]
    assert out[:n].tobytes() == np.array(expected).tobytes()
    assert np.all(out[n:] == -1.0)  # nothing written past n
