"""Row-by-row forward passes of the torch detectors' networks, the same bits in any batch.

Training runs in torch; scoring does not. A BLAS matrix multiply gives a row
different last bits depending on where the row sits in memory (oneMKL's SGEMM on
AMD EPYC sums a row's products in an order that depends on the row's address
modulo 16 bytes, and uses yet another order for a one-row batch), so a row's score
would depend on its batch. Here every row goes through the same loop nest,
compiled once by numba:

* the row loop is outermost, and nothing inside it depends on the row's index,
  on the batch size or on any address: each row runs the same instructions on
  its own values and the shared weights;
* a linear layer is ``out[j] = b[j]``, then ``out[j] += x[k] * w[k, j]`` for
  ``k = 0, 1, ...`` in order: each output is a sequence of IEEE-754 float32
  multiplies and adds in a fixed order. The compiler vectorises it across ``j``
  (independent outputs), never across ``k``; without ``fastmath`` it may neither
  reorder the sums nor contract a multiply and an add into an FMA, so the vector
  body and the scalar remainder give identical bits, on any x86-64 CPU;
* activations are scalar libm calls in float64, rounded to float32 (the same
  function for every row on a given machine; libm may pick a variant by CPU);
* sums over features (a row's score) are sequential float64 loops.

Batch norm layers (eval mode) are folded into the linear layer before them when
the network is packed. :func:`pack` turns modules into a :class:`Packed`
network; :func:`forward_rows` runs one (the kernels of the detectors call the
same inner function).

>>> import numpy as np, torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)).eval()
>>> x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
>>> out = forward_rows(pack(net), x)
>>> with torch.inference_mode():
...     bool(np.allclose(out, net(torch.from_numpy(x)).numpy(), atol=1e-6))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
from torch import nn

from tripwire.core.errors import DetectorError

#: Activation codes understood by the kernels.
IDENTITY, RELU, LEAKY_RELU, ELU, GELU, TANH, SIGMOID = range(7)
_CODES: dict[type[nn.Module], int] = {
    nn.ReLU: RELU,
    nn.LeakyReLU: LEAKY_RELU,
    nn.ELU: ELU,
    nn.GELU: GELU,
    nn.Tanh: TANH,
    nn.Sigmoid: SIGMOID,
}
_SQRT_HALF = math.sqrt(0.5)
F = TypeVar("F", bound=Callable[..., Any])
#: Outputs are computed in groups of this many float32 (zero weights beyond
#: ``n_out``): a whole number of 512-bit vectors, so no scalar remainder loop runs.
LANES = 16


@dataclass(frozen=True)
class Packed:
    """A stack of dense layers, each followed by an activation, as kernel arrays.

    Attributes
    ----------
    weights : ndarray of shape (n_layers, max_in, max_out), float32
        ``weights[l, k, j]`` = weight from input ``k`` to output ``j`` of layer
        ``l`` (zero-padded).
    biases : ndarray of shape (n_layers, max_out), float32
    shapes : ndarray of shape (n_layers, 4), int64
        ``(n_in, n_out, activation code, n_out rounded up to a multiple of LANES)``
        per layer.
    """

    weights: np.ndarray
    biases: np.ndarray
    shapes: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.shapes[0, 0])

    @property
    def n_out(self) -> int:
        return int(self.shapes[-1, 1])


def pack(*modules: nn.Module) -> Packed:
    """Pack the eval-mode forward pass of ``modules``, applied in order.

    Understood: ``nn.Linear`` (with or without bias), eval-mode ``nn.BatchNorm1d``
    right after a linear layer (folded into it), the activations of
    :data:`tripwire.training.detectors.deep.ACTIVATIONS` with their default parameters,
    ``nn.Dropout`` in eval mode (the identity) and nested ``nn.Sequential``.

    Raises
    ------
    DetectorError
        Any other module, or an activation that does not follow a linear layer.
    """
    layers: list[list[np.ndarray | int]] = []  # [weight (in, out), bias (out,), code]
    for module in _leaves(modules):
        if isinstance(module, nn.Linear):
            w = module.weight.detach().double().numpy().T
            b = module.bias.detach().double().numpy() if module.bias is not None else 0 * w[0]
            layers.append([w, b, IDENTITY])
        elif isinstance(module, nn.Dropout) and not module.training:
            continue
        elif not layers or layers[-1][2] != IDENTITY:
            raise DetectorError(f"cannot pack {module!r}: it does not follow a linear layer")
        elif isinstance(module, nn.BatchNorm1d) and not module.training:
            layers[-1][:2] = _fold_batch_norm(module, *layers[-1][:2])  # type: ignore[arg-type]
        elif type(module) in _CODES and _default_parameters(module):
            layers[-1][2] = _CODES[type(module)]
        else:
            raise DetectorError(f"cannot pack {module!r}")
    if not layers:
        raise DetectorError("cannot pack a network without a linear layer")
    return _arrays(layers)


def _fold_batch_norm(
    bn: nn.BatchNorm1d, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``bn(x @ w + b)`` as one affine map (in float64, rounded once when packed)."""
    assert bn.running_mean is not None and bn.running_var is not None
    scale = 1.0 / np.sqrt(bn.running_var.double().numpy() + bn.eps)
    shift = -bn.running_mean.double().numpy() * scale
    if bn.affine:
        gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
        scale, shift = scale * gamma, shift * gamma + beta
    return w * scale, b * scale + shift


def _default_parameters(module: nn.Module) -> bool:
    """The activation uses the parameters the kernels implement."""
    if isinstance(module, nn.LeakyReLU):
        return module.negative_slope == 0.01
    if isinstance(module, nn.ELU):
        return module.alpha == 1.0
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return True


def _arrays(layers: list[list[np.ndarray | int]]) -> Packed:
    n = len(layers)
    shapes = np.zeros((n, 4), dtype=np.int64)
    for i, (w, _, code) in enumerate(layers):
        n_in, n_out = np.shape(w)
        shapes[i] = (n_in, n_out, code, -(-n_out // LANES) * LANES)
    if np.any(shapes[1:, 0] != shapes[:-1, 1]):
        raise DetectorError(f"layer sizes do not chain: {shapes[:, :2].tolist()}")
    width = int(shapes[:, [0, 3]].max())
    weights = np.zeros((n, width, width), dtype=np.float32)
    biases = np.zeros((n, width), dtype=np.float32)
    for i, (w, b, _) in enumerate(layers):
        weights[i, : shapes[i, 0], : shapes[i, 1]] = w
        biases[i, : shapes[i, 1]] = b
    return Packed(weights, biases, shapes)


def _leaves(modules: Iterable[nn.Module]) -> Iterator[nn.Module]:
    for module in modules:
        if isinstance(module, nn.Sequential):
            yield from _leaves(module)
        else:
            yield module


def forward_rows(net: Packed, X: np.ndarray) -> np.ndarray:
    """Outputs (n, net.n_out) float32 of rows ``X`` (n, net.n_in), one row at a time."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != net.n_in:
        raise DetectorError(f"expected rows of {net.n_in} values, got an array of {X.shape}")
    out = np.empty((X.shape[0], net.n_out), dtype=np.float32)
    _forward_rows(X, net.weights, net.biases, net.shapes, out)
    return out


# -- kernels ------------------------------------------------------------------------
def jit(func: F, **options: Any) -> F:
    """``numba.njit`` without fastmath, cached on disk where a cache directory is writable.

    ``fastmath=False`` is numba's default, spelt out: fastmath would allow
    reordering and FMA contraction, i.e. results that depend on the vector split.
    ``options`` go to ``numba.njit`` as well (e.g. ``inline="always"``).
    """
    for cache in (True, False):
        try:
            compiled = numba.njit(
                func, cache=cache, nogil=True, fastmath=False, boundscheck=False,
                error_model="numpy", **options,
            )  # fmt: skip
            break
        except RuntimeError:  # no writable cache directory: compile in each process
            continue
    return cast(F, compiled)


@jit
def activate(v: np.float32, code: np.int64) -> np.float32:  # pragma: no cover - compiled
    """One activation value; NaN stays NaN (``v < 0`` is false for NaN)."""
    if code == IDENTITY:
        return v
    if code == RELU:
        return np.float32(0.0) if v < 0 else v
    if code == LEAKY_RELU:
        return np.float32(v * np.float32(0.01)) if v < 0 else v
    x = np.float64(v)
    if code == ELU:
        return v if v > 0 else np.float32(math.expm1(x))
    if code == GELU:
        return np.float32(0.5 * x * (1.0 + math.erf(x * _SQRT_HALF)))
    if code == TANH:
        return np.float32(math.tanh(x))
    return np.float32(1.0 / (1.0 + math.exp(-x)))  # SIGMOID


@jit
def forward(
    buf: np.ndarray, weights: np.ndarray, biases: np.ndarray, shapes: np.ndarray
) -> int:  # pragma: no cover - compiled
    """Run the layers on ``buf[0, :n_in]``; returns the row of ``buf`` holding the output.

    ``buf`` (2, width) float32 holds one row's activations, ping-ponging between
    its two rows: the order of operations is the module docstring's. Outputs
    ``n_out:lanes`` are computed too (from zero weights) and never read.
    """
    cur = 0
    for layer in range(shapes.shape[0]):
        n_in, n_out, code, lanes = shapes[layer]
        nxt = 1 - cur
        for j in range(lanes):
            buf[nxt, j] = biases[layer, j]
        for k in range(n_in):
            xk = buf[cur, k]
            for j in range(lanes):
                buf[nxt, j] += xk * weights[layer, k, j]
        if code == RELU:  # its own loop: the compiler vectorises it
            for j in range(n_out):
                if buf[nxt, j] < 0:
                    buf[nxt, j] = 0
        elif code != IDENTITY:
            for j in range(n_out):
                buf[nxt, j] = activate(buf[nxt, j], code)
        cur = nxt
    return cur


@jit
def _forward_rows(
    X: np.ndarray, weights: np.ndarray, biases: np.ndarray, shapes: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    buf = np.zeros((2, weights.shape[1]), dtype=np.float32)
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            buf[0, j] = X[r, j]
        cur = forward(buf, weights, biases, shapes)
        for j in range(out.shape[1]):
            out[r, j] = buf[cur, j]
