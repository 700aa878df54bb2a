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

import numpy as np
import torch

from tripwire.training.detectors.kernels import _search_rows

#: Candidates beyond ``k`` whose distances are recomputed exactly (float32 proposals).
CANDIDATE_MARGIN = 8
#: The same for bf16 proposals: 8 is about the fastest (benchmarks/knn_bf16.py).
BF16_CANDIDATE_MARGIN = 8
#: float32 values in one chunk's matrix product (4 MiB): bounds memory for any batch.
CHUNK_VALUES = 1 << 20
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
