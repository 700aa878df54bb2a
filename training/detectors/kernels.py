"""The numba kernels of the exact kNN search (:mod:`~tripwire.training.detectors.neighbours`).

Per query row: the blocked selection of candidates below ``tau`` from the row's
proposal (``_propose``), their float64 recomputation, each distance summed in the
fixed order ``t = 0 .. d - 1`` (``_sq_dist``, ``_sq_dists``), the certification
against :func:`error_bound` and the exact fallback scan (``_search_rows``). The
algorithm, and why its answer never depends on the batch or the CPU, is described
in :mod:`~tripwire.training.detectors.neighbours`. Compiled without fastmath.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tripwire.training.detectors.layers import jit

#: Columns per group in the blocked selection (see ``_propose``).
GROUP_SIZE = 16

F = TypeVar("F", bound=Callable[..., Any])


def _inlined(func: F) -> F:
    """:func:`~tripwire.training.detectors.layers.jit`'s compilation (no fastmath), and
    inlined by numba into its jitted callers: a call would count references to each
    array argument (atomic updates), on every row. Still callable from Python."""
    return jit(func, inline="always")


# -- kernels ------------------------------------------------------------------------
@_inlined
def _sq_dist(q: np.ndarray, R: np.ndarray, j: int) -> float:  # pragma: no cover
    """``sum_t (q[t] - R[j, t])^2`` in float64, sequentially: the exact distance."""
    s = 0.0
    for t in range(q.shape[0]):
        diff = q[t] - R[j, t]
        s += diff * diff
    return s


@jit
def error_bound(
    q_sq: float, r_max: float, d: int, unit: float, cross: float = 0.0
) -> float:  # pragma: no cover
    """Bound on ``|approximation - recomputed distance|`` for a row with ``|q|^2 = q_sq``.

    ``4 (d + 4) unit (|q| + r_max)^2``, plus ``cross |q| r_max`` for bf16 products
    (:func:`bf16_cross`; 0 for float32 ones), plus an absolute term for
    underflow; callable from Python (tests) and from the kernels.
    """
    span = math.sqrt(q_sq) + r_max
    bound = 4.0 * (d + 4) * unit * span * span + 2.0**-100 * (d + 1) * (1.0 + span)
    return bound + cross * math.sqrt(q_sq) * r_max


@_inlined
def _insert(
    vals: np.ndarray, idx: np.ndarray, n: int, v: float, j: int
) -> int:  # pragma: no cover - compiled
    """Insert ``(v, j)`` into the ascending buffer holding ``n`` pairs; the new count.

    Ordered by value then index; a full buffer drops its largest pair.
    """
    cap = vals.shape[0]
    if n == cap and not (v < vals[cap - 1] or (v == vals[cap - 1] and j < idx[cap - 1])):
        return n
    p = min(n, cap - 1)
    while p > 0 and (v < vals[p - 1] or (v == vals[p - 1] and j < idx[p - 1])):
        vals[p] = vals[p - 1]
        idx[p] = idx[p - 1]
        p -= 1
    vals[p] = v
    idx[p] = j
    return min(n + 1, cap)


@_inlined
def _order_key(bits: np.int32) -> np.int32:  # pragma: no cover - compiled
    """An int32 whose order is that of the float32 with these ``bits`` (not NaN; an
    involution: it also maps a key back to the bits)."""
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@_inlined
def _kth_smallest(values: np.ndarray, n: int, rank: int) -> np.float32:  # pragma: no cover
    """The ``rank``-th smallest (0-based, repeats counted) of ``values[:n]`` (float32,
    no NaN). ``values`` is scratch: left holding their order keys, then (padding,
    so that the passes below are whole vectors) the largest int32.

    Bisection on the keys, each step one branch-free pass (a count and the nearest
    keys either side of the split) instead of a sorted insertion per value; the
    bounds snap to keys present, so it ends once one distinct key is left. Keys
    order ``-0.0`` before ``0.0``; either is an equal float, so the value is the
    same.
    """
    keys = values.view(np.int32)
    lowest, highest = np.int32(-(2**31)), np.int32(2**31 - 1)  # highest: no float's key
    lo = hi = _order_key(keys[0])
    for g in range(n):  # in place: each float's bits -> its order key
        key = _order_key(keys[g])
        keys[g] = key
        lo = min(lo, key)
        hi = max(hi, key)
    keys[n:] = highest  # never <= mid (< hi), never below `above` (<= hi)
    # invariant: lo <= the answer's key <= hi, both keys present
    while lo < hi:
        mid = np.int32(lo + (hi - lo) // 2)  # lo <= mid < hi
        count = np.int32(0)
        below, above = lowest, highest
        for g in range(keys.shape[0]):
            key = keys[g]
            inside = key <= mid
            count += np.int32(inside)
            below = max(below, key if inside else lowest)
            above = min(above, highest if inside else key)
        if count > rank:
            hi = below  # the largest key <= mid
        else:
            lo = above  # the smallest key > mid
    return np.int32(_order_key(hi)).view(np.float32)


@jit
def _propose(
    row: np.ndarray,
    group_min: np.ndarray,
    groups: np.ndarray,
    group_val: np.ndarray,
    cand_idx: np.ndarray,
) -> tuple[int, np.float32]:  # pragma: no cover - compiled
    """Columns of ``row`` that may be among its smallest, into ``cand_idx``; ``(count, tau)``.

    Blocked, so that the full row is only read by a vectorised elementwise min:
    column ``j`` belongs to group ``j % W`` (``W = len(group_min)``). ``tau`` is the
    ``(n + 1)``-th smallest group minimum (``n = len(groups) - 1``): every column
    of the other groups is ``>= tau``, so the candidates, every column below
    ``tau``, lie in the at most ``n`` groups whose minimum is below ``tau``; those
    are scanned with a branch-free compare per column. ``tau`` bounds every other
    column from below. ``group_min`` and ``group_val`` are scratch.
    """
    return _select(row, group_min, group_min.shape[0], groups, cand_idx)


@_inlined
def _select(
    row: np.ndarray, scratch: np.ndarray, width: int, groups: np.ndarray, cand_idx: np.ndarray
) -> tuple[int, np.float32]:  # pragma: no cover - compiled
    """:func:`_propose` with ``W = width <= len(scratch)`` (float32 scratch, longer
    when padded to whole vectors)."""
    _group_minima(row, scratch, width)
    tau = _kth_smallest(scratch, width, groups.shape[0] - 1)
    return _columns_below(row, scratch[:width].view(np.int32), tau, groups, cand_idx), tau


@_inlined
def _group_minima(row: np.ndarray, scratch: np.ndarray, width: int) -> None:  # pragma: no cover
    """``scratch[g] = min(row[g::W])`` for ``g < W = width <= len(row)``.

    A block whose next columns exist is read as wide as ``scratch`` allows, up to
    whole vectors: the extra lanes (the next block's first columns) land in
    ``scratch[W:]``, padding that is then overwritten.
    """
    m = row.shape[0]
    wide = min(scratch.shape[0], -(-width // 8) * 8)
    scratch[:wide] = np.float32(np.inf)
    for lo in range(0, m - width + 1, width):
        span = wide if lo + wide <= m else width
        block = row[lo : lo + span]  # a slice: the loop below vectorises
        for g in range(span):
            x, y = block[g], scratch[g]
            scratch[g] = x if x < y else y
    tail = m - m % width
    for g in range(m - tail):
        x, y = row[tail + g], scratch[g]
        scratch[g] = x if x < y else y


@_inlined
def _columns_below(
    row: np.ndarray, keys: np.ndarray, tau: np.float32, groups: np.ndarray, cand_idx: np.ndarray
) -> int:  # pragma: no cover - compiled
    """The columns of ``row`` below ``tau`` into ``cand_idx``; their count.

    ``keys``: the order keys of the group minima (``_kth_smallest``), of which at
    most ``len(groups) - 1`` are below ``tau``'s: only those groups are scanned,
    with a branch-free compare per column.
    """
    # unsigned indices: no wraparound handling for negative ones in the loops
    m, width = np.uint64(row.shape[0]), np.uint64(keys.shape[0])
    tau_key = _order_key(np.float32(tau).view(np.int32))
    last = np.uint64(groups.shape[0] - 1)
    n_below = np.uint64(0)  # groups with a smaller key: a superset of the groups
    for g in range(width):  # with a smaller minimum (-0.0 against 0.0)
        groups[min(n_below, last)] = g  # at most last of them (a safeguard)
        n_below += np.uint64(keys[g] < tau_key)
    full, extra = m // width, m % width  # group g has full + (g < extra) columns
    nb = np.uint64(0)
    for c in range(min(n_below, last)):
        first = np.uint64(groups[c])
        for b in range(full + np.uint64(first < extra)):
            j = first + np.uint64(b) * width
            cand_idx[nb] = j  # never past the end: nb <= the columns before j
            nb += np.uint64(row[j] < tau)
    return int(nb)


@_inlined
def _sq_dists(
    q: np.ndarray, R: np.ndarray, idx: np.ndarray, n: int, out: np.ndarray
) -> None:  # pragma: no cover
    """``out[c] = _sq_dist(q, R, idx[c])`` for ``c < n``, the same bits.

    Eight (then four) rows at a time, so that their sums, each still taken in the
    order ``t = 0 .. d - 1``, overlap instead of waiting on one another.
    """
    c = 0
    while c + 4 < n:
        _sq_dists8(q, R, idx, c, n, out)
        c += 8
    if c < n:
        _sq_dists4(q, R, idx, c, n, out)


@_inlined
def _sq_dists8(
    q: np.ndarray, R: np.ndarray, idx: np.ndarray, c: int, n: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """:func:`_sq_dists` for ``idx[c : c + 8]`` (past ``n``: row ``idx[n - 1]`` again).

    Plain 2-d indexing, no row views (each would cost reference counting).
    """
    last = n - 1
    j0, j1, j2, j3 = idx[c], idx[min(c + 1, last)], idx[min(c + 2, last)], idx[min(c + 3, last)]
    j4, j5 = idx[min(c + 4, last)], idx[min(c + 5, last)]
    j6, j7 = idx[min(c + 6, last)], idx[min(c + 7, last)]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for t in range(q.shape[0]):
        qt = q[t]
        x0, x1, x2, x3 = qt - R[j0, t], qt - R[j1, t], qt - R[j2, t], qt - R[j3, t]
        x4, x5, x6, x7 = qt - R[j4, t], qt - R[j5, t], qt - R[j6, t], qt - R[j7, t]
        s0 += x0 * x0
        s1 += x1 * x1
        s2 += x2 * x2
        s3 += x3 * x3
        s4 += x4 * x4
        s5 += x5 * x5
        s6 += x6 * x6
        s7 += x7 * x7
    for i, s in enumerate((s0, s1, s2, s3, s4, s5, s6, s7)):
        if c + i < n:
            out[c + i] = s


@_inlined
def _sq_dists4(
    q: np.ndarray, R: np.ndarray, idx: np.ndarray, c: int, n: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """:func:`_sq_dists` for ``idx[c : c + 4]`` (past ``n``: row ``idx[n - 1]`` again)."""
    last = n - 1
    j0, j1, j2, j3 = idx[c], idx[min(c + 1, last)], idx[min(c + 2, last)], idx[min(c + 3, last)]
    s0 = s1 = s2 = s3 = 0.0
    for t in range(q.shape[0]):
        qt = q[t]
        x0, x1, x2, x3 = qt - R[j0, t], qt - R[j1, t], qt - R[j2, t], qt - R[j3, t]
        s0 += x0 * x0
        s1 += x1 * x1
        s2 += x2 * x2
        s3 += x3 * x3
    for i, s in enumerate((s0, s1, s2, s3)):
        if c + i < n:
            out[c + i] = s


@jit
def _search_rows(
    approx: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    r_max: float,
    k: int,
    drop: int,
    n_cand: int,
    unit: float,
    dist: np.ndarray,
    sq_diff: np.ndarray,
    fallback: np.ndarray,
    cross: float = 0.0,
) -> None:  # pragma: no cover - compiled
    m, d = R.shape
    kk = k + drop
    # about GROUP_SIZE columns per group, and at least n_cand + 1 groups
    width = max(n_cand + 1, -(-m // GROUP_SIZE))
    scratch = np.empty(-(-width // 32) * 32, dtype=np.float32)  # whole vectors
    groups = np.zeros(n_cand + 1, dtype=np.int64)
    # every column of the n_cand chosen groups, at most
    cand_idx = np.zeros(n_cand * (-(-m // width)), dtype=np.int64)
    cand_sq = np.empty(cand_idx.shape[0])
    best = np.empty(kk)
    best_idx = np.zeros(kk, dtype=np.int64)
    contrib = np.empty(d)
    for i in range(Q.shape[0]):
        q = Q[i]
        q_sq = 0.0
        for t in range(d):
            q_sq += q[t] * q[t]
        span = math.sqrt(q_sq) + r_max
        eps = error_bound(q_sq, r_max, d, unit, cross)
        use_approx = n_cand < m and span * span < 1e36  # no float32 overflow
        limit = np.inf
        certified = False
        if use_approx:
            n_found, tau = _select(approx[i], scratch, width, groups, cand_idx)
            _sq_dists(q, R, cand_idx, n_found, cand_sq)
            nk = 0
            for c in range(n_found):
                nk = _insert(best, best_idx, nk, cand_sq[c], cand_idx[c])
            if nk == kk:  # else tied group minima left too few: scan everything
                limit = best[kk - 1]
                certified = q_sq + tau - eps > limit
        fallback[i] = not certified
        if not certified:
            nk = 0
            for j in range(m):
                if nk == kk and best[kk - 1] < limit:
                    limit = best[kk - 1]
                if use_approx and q_sq + approx[i, j] - eps > limit:
                    continue
                nk = _insert(best, best_idx, nk, _sq_dist(q, R, j), j)
        for c in range(k):
            dist[i, c] = math.sqrt(best[drop + c])
        # per feature, the sum over the k neighbours in order c = 0 .. k - 1, as
        # one row-major pass per neighbour (vectorised over the features)
        contrib[:] = 0.0
        for c in range(k):
            j = best_idx[drop + c]
            for t in range(d):
                diff = q[t] - R[j, t]
                contrib[t] += diff * diff
        for t in range(d):
            sq_diff[i, t] = contrib[t] / k
