"""Exact k-nearest-neighbour search whose results do not depend on the batch.

Used by :class:`~tripwire.training.detectors.knn.KNN`. Two stages per chunk of
query rows:

1. **Propose** (fast, batch-dependent): one matrix product through torch against
   the reference rows gives approximate squared distances
   ``a_j = |r_j|^2 - 2 q.r_j`` (plus ``|q|^2``, the same for the whole row); a
   blocked selection per row (``_propose``: group minima in one vectorised pass;
   ``tau``, the ``(k + margin + 1)``-th smallest minimum, by bisection on the
   minima's order keys, a branch-free pass per step; the candidates, every column
   below ``tau``, found by a branch-free compare per column of the groups with
   smaller minima) bounds every other reference row's approximation from below
   by ``tau``. No sort or partition of the whole matrix, no sorted insertion. BLAS
   picks kernels (and summation orders) by shape and address, so these values can
   differ with the batch. The product is float32 (``addmm``), or bf16 where the
   CPU multiplies bf16 natively (see below).
2. **Recompute and certify** (exact, per row): the squared distances of the
   candidates are recomputed in float64 from the coordinate differences, each
   summed in the fixed order ``t = 0 .. d - 1`` (a numba kernel without
   fastmath; eight candidates' sums interleaved, none reassociated). Every
   approximation is within ``eps`` of the recomputed value (:func:`error_bound`).
   If ``|q|^2 + tau - eps`` exceeds the ``k``-th smallest recomputed distance, no
   other reference row can be among the ``k`` nearest nor tie with the ``k``-th,
   so the candidates hold the exact answer. Otherwise the row falls back to an
   exact scan of every reference row whose approximation does not rule it out
   (all of them when the product could overflow: ``(|q| + max|r|)^2 >= 1e36``).

The answer is the ``k`` reference rows with the smallest recomputed squared
distance, ties broken by the lower row index, whichever stage or product
produced it: a function of the row and the reference alone, the same bits in any
batch, at any position and alignment, on any CPU (the proposal only decides how
much work the exact stage does).

**float32 proposals** (``CANDIDATE_MARGIN`` = 8 spare candidates):
``eps = 4 (d + 4) u (|q| + max_j |r_j|)^2``, ``u = 2^-24`` (the standard bound for
a float32 dot product in any summation order, doubled; a looser ``u`` when the
caller allowed reduced-precision float32 products, :func:`rounding_unit`).

**bf16 proposals** (``BF16_CANDIDATE_MARGIN`` = 8): ``q`` and ``R`` rounded to
bf16 (through float32), ``P = torch.mm`` of the two, which on CPU returns bf16
(float32 accumulation rounded to nearest), then ``a = fl32(fl32(|r|^2) - 2 P)``
(``P`` copied to float32, exactly, then ``torch.add``). Write ``v = 2^-8``
(bf16), ``u = 2^-24`` (float32), ``w = 2^-53`` (float64) and
``S = sum_t |q_t r_t| <= |q| |r| <= |q| max|r|`` (Cauchy-Schwarz):

* each coordinate becomes ``x (1 + e)``, ``|e| <= delta = (1 + u)(1 + v) - 1``,
  so the exact dot product of the rounded rows is within ``((1 + delta)^2 - 1) S``
  of ``q.r``;
* the float32 sum of those products (exact in float32: 8 x 8 significant bits;
  rounded ones are covered too), in any order or tree, adds at most
  ``gamma_d = d u / (1 - d u)`` times ``(1 + delta)^2 S``;
* the bf16 result adds ``v`` of its own magnitude. Altogether
  ``|P - q.r| <= c1 S``, ``1 + c1 = (1 + delta)^2 (1 + gamma_d)(1 + v)``;
* ``-2 P`` is exact; ``fl32(|r|^2)`` is within ``(u + 2 d w) |r|^2`` of ``|r|^2``,
  the float32 subtraction within ``u (|r|^2 (1 + u) + 2 (1 + c1) S)``;
* the kernel's float64 ``|q|^2``, recomputed distance and comparison add at most
  ``(2 d + 8) w (|q| + max|r|)^2``.

So ``|(|q|^2 + a_j) - D_j| <= c |q| max|r| + 3 u (|q| + max|r|)^2`` with
``c = 2 ((1 + c1)(1 + u) - 1)`` (:func:`bf16_cross`, 0.02354 at d = 50, i.e.
``~ 2 (3 v + 3 v^2 + (d + 3) u)``): the bf16 path's ``eps`` is the float32 path's
(``4 (d + 4) u >= 3 u`` covers every term but the cross one) plus
``c |q| max|r|``. The bound is reached within 2.5% (``|q| = |r|``, every
coordinate just below a bf16 rounding tie, d = 257). An absolute term
``2^-100 (d + 1)(1 + |q| + max|r|)`` covers underflow on both paths (bf16 kernels
may treat subnormal inputs as zero and flush subnormal results: at most
``2^-126 (1 + |q_t| + |r_t|)`` per coordinate, so at most
``2^-125 (d + sqrt(d) (|q| + max|r|))`` after the factor -2). bf16 has
float32's exponent range (its largest finite value is ~0.4% smaller): under the
overflow guard, every coordinate is below ``1e18`` and every partial sum below
``1e36``, so nothing overflows.

Which product (``NeighbourIndex.proposal``): bf16 only where the CPU has native
bf16 dot products (AVX512-BF16 or AMX; torch's CPU query, else
``/proc/cpuinfo``): elsewhere oneDNN emulates them, slower than float32 (still
exact). And only where bf16 proposals certify the index's own rows: a probe of
256 reference rows, searched leave-one-out, must fall back at most 10% of the
time. bf16's bound is 500-2,500x float32's (d = 50 to 6), so on data whose nearest neighbours are
close compared with ``|q| max|r| / 40`` (duplicates, a few discrete features)
most rows would fall back, and the exact scan costs more than the product saves.
``TRIPWIRE_KNN_PROPOSAL=float32|bf16`` or ``NeighbourIndex(R, proposal=...)``
forces either (the tests run both on any CPU).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import torch

from tripwire.training.detectors.layers import jit

#: Candidates beyond ``k`` whose distances are recomputed exactly (float32 proposals).
CANDIDATE_MARGIN = 8
#: The same for bf16 proposals: 8 is about the fastest (benchmarks/knn_bf16.py).
BF16_CANDIDATE_MARGIN = 8
#: float32 values in one chunk's matrix product (4 MiB): bounds memory for any batch.
CHUNK_VALUES = 1 << 20
#: Columns per group in the blocked selection (see ``_propose``).
GROUP_SIZE = 16
#: Most query rows per matrix product.
MAX_CHUNK_ROWS = 256
#: The proposal products, and the variable that overrides the CPU's choice.
PROPOSALS = ("float32", "bf16")
PROPOSAL_VARIABLE = "TRIPWIRE_KNN_PROPOSAL"
#: /proc/cpuinfo flags of native bf16 dot products (AVX512-BF16, AMX-BF16).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: bf16's unit roundoff.
BF16_UNIT = 2.0**-8
#: The automatic choice's probe (see ``NeighbourIndex``): rows, neighbours, and the
#: largest share of them falling back with which bf16 proposals are still used.
PROBE_ROWS = 256
PROBE_K = 5
PROBE_MAX_FALLBACK = 0.1

log = logging.getLogger(__name__)


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 dot products natively (AVX512-BF16 or AMX-BF16).

    torch's own query where it has one (``torch.cpu._is_avx512_bf16_supported``,
    ``_is_amx_tile_supported``), else the flags of ``cpuinfo``. Without them oneDNN
    emulates bf16 products, slower than float32 ones.
    """
    queries = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    found = [getattr(torch.cpu, name, None) for name in queries]
    if all(callable(f) for f in found):
        return any(bool(f()) for f in found)  # type: ignore[misc]
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            flags = {w for line in f if line.startswith("flags") for w in line.split()}
    except OSError:
        return False
    return bool(flags & BF16_FLAGS)


def proposal_override() -> str | None:
    """``TRIPWIRE_KNN_PROPOSAL`` (one of :data:`PROPOSALS`), or None: choose per index."""
    chosen = os.environ.get(PROPOSAL_VARIABLE, "").strip().lower()
    if not chosen:
        return None
    if chosen not in PROPOSALS:
        names = ", ".join(PROPOSALS)
        raise ValueError(f"{PROPOSAL_VARIABLE} must be one of {names}, got {chosen!r}")
    return chosen

F = TypeVar("F", bound=Callable[..., Any])


def _inlined(func: F) -> F:
    """:func:`~tripwire.training.detectors.layers.jit`'s compilation (no fastmath), and
    inlined by numba into its jitted callers: a call would count references to each
    array argument (atomic updates), on every row. Still callable from Python."""
    for cache in (True, False):
        try:
            compiled = numba.njit(
                func, inline="always", cache=cache, nogil=True, fastmath=False,
                boundscheck=False, error_model="numpy",
            )  # fmt: skip
            break
        except RuntimeError:  # no writable cache directory: compile in each process
            continue
    return cast(F, compiled)


class NeighbourIndex:
    """Reference rows ``R`` (m, d), float64, prepared for :func:`nearest`.

    ``proposal``: the product that proposes candidates, ``"float32"`` or
    ``"bf16"``; the answer is the same. When None, :func:`proposal_override`, else
    bf16 if the CPU has native bf16 products (:func:`native_bf16`) and a probe
    (``probe_fallback``: the share of up to ``PROBE_ROWS`` evenly spaced reference
    rows, searched leave-one-out for ``PROBE_K`` neighbours with bf16 proposals,
    that fell back) is at most ``PROBE_MAX_FALLBACK``; else float32.
    """

    def __init__(self, R: np.ndarray, proposal: str | None = None) -> None:
        chosen = proposal_override() if proposal is None else proposal
        if chosen is not None and chosen not in PROPOSALS:
            raise ValueError(f"proposal must be one of {', '.join(PROPOSALS)}, got {proposal!r}")
        self.R = np.ascontiguousarray(R, dtype=np.float64)
        self.r_sq = np.einsum("ij,ij->i", self.R, self.R)
        self.r_max = float(np.sqrt(self.r_sq.max())) if len(self.R) else 0.0
        with np.errstate(over="ignore"):  # huge rows: the kernel then skips the product
            self.r_sq32 = torch.from_numpy(self.r_sq.astype(np.float32))
            # (d, m): the product's right-hand side, contiguous
            self.RT32 = torch.from_numpy(np.ascontiguousarray(self.R.T, dtype=np.float32))
        self.probe_fallback: float | None = None
        if chosen is None:
            self.probe_fallback = self._probe() if native_bf16() and len(self.R) > 2 else None
            ok = self.probe_fallback is not None and self.probe_fallback <= PROBE_MAX_FALLBACK
            chosen = "bf16" if ok else "float32"
        self._use(chosen)
        log.debug(
            "neighbour index: %d x %d rows, %s proposals (bf16 probe fell back: %s)",
            *self.R.shape, self.proposal, self.probe_fallback,
        )  # fmt: skip

    def _use(self, proposal: str) -> None:
        self.proposal = proposal
        # (d, m): the product's right-hand side in the proposal's dtype (bf16 from
        # float32, rounded to nearest even)
        self.RT = self.RT32.bfloat16() if proposal == "bf16" else self.RT32

    def _probe(self) -> float:
        self._use("bf16")
        rows = self.R[:: max(1, len(self.R) // PROBE_ROWS)][:PROBE_ROWS]
        return float(search(rows, self, min(PROBE_K, len(self.R) - 2), skip_self=True)[2].mean())


def rounding_unit() -> float:
    """Unit roundoff assumed for torch's float32 products.

    ``2^-24`` at torch's default ``"highest"`` float32 matmul precision; a much
    looser bound when a caller allowed reduced-precision (bf16/TF32) products,
    through torch or oneDNN's ``ONEDNN_DEFAULT_FPMATH_MODE``.
    """
    strict = os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT").upper() == "STRICT"
    highest = torch.get_float32_matmul_precision() == "highest"
    return 2.0**-24 if strict and highest else 2.0**-7


def nearest(
    Q: np.ndarray, index: NeighbourIndex, k: int, skip_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances to the ``k`` nearest reference rows and mean squared differences.

    Parameters
    ----------
    Q : ndarray of shape (n, d), float64
        Query rows (finite).
    index : NeighbourIndex
        Over the reference rows R (m, d).
    k : int
        Neighbours per row, ``1 <= k <= m`` (``<= m - 1`` with ``skip_self``).
    skip_self : bool
        ``Q`` is R: drop each row's closest match, itself (leave-one-out).

    Returns
    -------
    dist : ndarray of shape (n, k)
        Distances to the nearest rows, ascending.
    sq_diff : ndarray of shape (n, d)
        Per feature, the squared difference to the ``k`` neighbours, averaged.
    """
    dist, sq_diff, _ = search(Q, index, k, skip_self)
    return dist, sq_diff


def bf16_cross(d: int, unit: float) -> float:
    """Coefficient ``c`` of the bf16 bound's cross term ``c |q| max_j |r_j|``.

    ``2 ((1 + delta)^2 (1 + gamma_d) (1 + 2^-8) (1 + 2^-24) - 1)``: rounding ``q``
    and ``r`` to bf16 through float32 (``delta = (1 + 2^-24) (1 + 2^-8) - 1`` each),
    their float32 sum in any order (``gamma_d = d unit / (1 - d unit)``), the bf16
    result (``2^-8``) and the float32 addition of ``|r|^2`` (``2^-24``); see the
    module docstring. Infinite (every row falls back) when ``d unit >= 1/2``.
    """
    if d * unit >= 0.5:
        return math.inf
    delta = (1.0 + 2.0**-24) * (1.0 + BF16_UNIT) - 1.0
    gamma = d * unit / (1.0 - d * unit)
    return 2.0 * ((1.0 + delta) ** 2 * (1.0 + gamma) * (1.0 + BF16_UNIT) * (1.0 + 2.0**-24) - 1.0)


def approximate(
    q: np.ndarray, index: NeighbourIndex, out: torch.Tensor, prod: torch.Tensor | None = None
) -> None:
    """``|r_j|^2 - 2 q.r_j`` into ``out`` (len(q), m), float32, by the index's product.

    ``prod``: a bf16 buffer of ``out``'s shape for a bf16 proposal (else made here).
    """
    with np.errstate(over="ignore"):  # such rows skip the product (see the kernel)
        q32 = torch.from_numpy(q.astype(np.float32))
    if index.proposal == "bf16":  # a bf16 product, then |r|^2 - 2 q.r in float32
        prod = torch.mm(q32.bfloat16(), index.RT, out=prod)
        out.copy_(prod)  # exact; a mixed-dtype add costs 1.4-1.8x copy + add
        torch.add(index.r_sq32, out, alpha=-2.0, out=out)
    else:
        torch.addmm(index.r_sq32, q32, index.RT, alpha=-2.0, out=out)


def search(
    Q: np.ndarray, index: NeighbourIndex, k: int, skip_self: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nearest`, plus a bool (n,) per row: it fell back to the exact scan."""
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    m, d = index.R.shape
    drop = int(skip_self)
    bf16 = index.proposal == "bf16"
    n_cand = k + drop + (BF16_CANDIDATE_MARGIN if bf16 else CANDIDATE_MARGIN)
    step = max(1, min(MAX_CHUNK_ROWS, CHUNK_VALUES // max(m, 1)))
    dist = np.empty((len(Q), k))
    sq_diff = np.empty(Q.shape)
    fallback = np.zeros(len(Q), dtype=np.bool_)
    unit = rounding_unit()
    cross = bf16_cross(d, unit) if bf16 else 0.0
    use_product = n_cand < m
    buf = torch.empty((min(step, len(Q)), m if use_product else 0))
    prod = torch.empty(buf.shape, dtype=torch.bfloat16) if bf16 else None
    for start in range(0, len(Q), step):
        q = Q[start : start + step]
        approx = buf[: len(q)]
        if use_product:
            approximate(q, index, approx, None if prod is None else prod[: len(q)])
        rows = slice(start, start + len(q))
        _search_rows(
            approx.numpy(), q, index.R, index.r_max, k, drop, n_cand, unit,
            dist[rows], sq_diff[rows], fallback[rows], cross,
        )  # fmt: skip
    return dist, sq_diff, fallback


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
