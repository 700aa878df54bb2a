"""Packed row-by-row forward passes: the modules' function, in the documented order."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tripwire.core.errors import DetectorError
from tripwire.training.detectors import layers
from tripwire.training.detectors.deep import ACTIVATIONS, mlp
from tripwire.training.detectors.layers import Packed, forward_rows, pack


def _input(d: int, rows: int = 64, seed: int = 0) -> np.ndarray:
    return (3 * np.random.default_rng(seed).normal(size=(rows, d))).astype(np.float32)


def _module_output(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def reference_activation(v: np.float32, code: int) -> np.float32:
    """The kernel's activations written out in Python (libm through ``math``)."""
    x = float(v)
    if code == layers.IDENTITY:
        return v
    if code == layers.RELU:
        return np.float32(0.0) if v < 0 else v
    if code == layers.LEAKY_RELU:
        return np.float32(v * np.float32(0.01)) if v < 0 else v
    if code == layers.ELU:
        return v if v > 0 else np.float32(math.expm1(x))
    if code == layers.GELU:
        return np.float32(0.5 * x * (1.0 + math.erf(x * math.sqrt(0.5))))
    if code == layers.TANH:
        return np.float32(math.tanh(x))
    return np.float32(1.0 / (1.0 + math.exp(-x)))


def reference_forward(net: Packed, row: np.ndarray) -> list[np.float32]:
    """One row through ``net`` with numpy float32 scalars: a multiply, then an add,
    for inputs k = 0, 1, ... in order, each rounded to float32 (no FMA)."""
    x = [np.float32(v) for v in row]
    for (n_in, n_out, code, _), w, b in zip(net.shapes, net.weights, net.biases, strict=True):
        out = [b[j] for j in range(n_out)]
        for k in range(n_in):
            for j in range(n_out):
                out[j] = out[j] + x[k] * w[k, j]
        x = [reference_activation(v, int(code)) for v in out]
    return x


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_packed_mlp_computes_the_module(activation):
    torch.manual_seed(0)
    net = nn.Sequential(mlp([7, 16, 8], activation, dropout=0.3), nn.Linear(8, 7)).eval()
    x = _input(7)
    np.testing.assert_allclose(forward_rows(pack(net), x), _module_output(net, x), atol=2e-6)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_packed_mlp_is_bitwise_the_written_out_order(activation):
    torch.manual_seed(1)
    net = nn.Sequential(mlp([5, 19, 3], activation, dropout=0.0), nn.Linear(3, 6)).eval()
    packed = pack(net)
    x = _input(5, rows=4, seed=1)
    got = forward_rows(packed, x)
    expected = np.array([reference_forward(packed, row) for row in x], dtype=np.float32)
    assert np.array_equal(got, expected)


def test_batch_norm_is_folded_into_the_linear_layer_before_it():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 9), nn.BatchNorm1d(9), nn.ReLU(), nn.Linear(9, 6))
    net.train()
    with torch.no_grad():  # give the running statistics something to hold
        for _ in range(5):
            net(torch.randn(64, 6) * 4 + 1)
    net.eval()
    x = _input(6)
    np.testing.assert_allclose(forward_rows(pack(net), x), _module_output(net, x), atol=1e-5)


def test_linear_without_bias_nested_sequentials_and_several_modules():
    torch.manual_seed(3)
    first = nn.Sequential(nn.Sequential(nn.Linear(5, 9, bias=False), nn.ReLU()), nn.Linear(9, 3))
    second = nn.Sequential(nn.Linear(3, 9), nn.Tanh(), nn.Linear(9, 5, bias=False))
    x = _input(5)
    expected = _module_output(nn.Sequential(first, second).eval(), x)
    got = forward_rows(pack(first.eval(), second.eval()), x)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize(
    "modules",
    [
        (nn.ReLU(),),  # no linear layer before it
        (nn.Linear(3, 3), nn.ReLU(), nn.Tanh()),  # two activations in a row
        (nn.Linear(3, 3), nn.Dropout(0.5).train()),  # training-mode dropout is random
        (nn.Linear(3, 3), nn.BatchNorm1d(3).train()),  # batch statistics: batch-dependent
        (nn.Linear(3, 3), nn.LeakyReLU(0.2)),  # parameters the kernel does not implement
        (nn.Linear(3, 3), nn.GELU(approximate="tanh")),
        (nn.Linear(3, 3), nn.Softmax(dim=1)),
        (nn.Linear(3, 4), nn.Linear(5, 3)),  # sizes do not chain
        (),
    ],
)
def test_what_cannot_be_packed_is_refused(modules):
    with pytest.raises(DetectorError):
        pack(*modules)


def test_nan_and_inf_propagate_like_the_module():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    x = _input(4, rows=3)
    x[0, 1], x[1, 0], x[2, 3] = np.nan, np.inf, -np.inf
    got = forward_rows(pack(net), x)
    expected = _module_output(net, x)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert not np.isfinite(got).all(axis=1).any()


def test_wrong_input_width_is_refused():
    with pytest.raises(DetectorError, match="rows of 3 values"):
        forward_rows(pack(nn.Linear(3, 2)), np.zeros((2, 4), dtype=np.float32))


FMA_CHECK = r"""
import json, re, sys
import numpy as np
from torch import nn
from tripwire.training.detectors import ae, layers, vae

x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
net = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 5)).eval()
layers.forward_rows(layers.pack(net), x)
for kind in (ae.AutoEncoder, vae.VAE):
    kind(seed=0, epochs=1).fit(x).score(x)
fma = re.compile(r"\bv?f(n)?m(add|sub)\d*[sp][sd]\b")
found = {}
for name in ("layers.forward", "layers.activate", "layers._forward_rows", "ae._score_rows",
             "vae._score_rows"):
    module, attr = name.split(".")
    kernel = getattr(sys.modules["tripwire.training.detectors." + module], attr)
    asm = "".join(kernel.inspect_asm(sig) for sig in kernel.signatures)
    found[name] = {"fma": sorted(set(m.group(0) for m in fma.finditer(asm))),
                   "adds": len(re.findall(r"\bv?add[sp][sd]\b", asm))}
print(json.dumps(found))
"""


def test_no_kernel_contracts_a_multiply_and_an_add_into_an_fma(tmp_path):
    """A fused multiply-add rounds once instead of twice: if the compiler used one
    in the vector body and not in the remainder, a value's bits would depend on
    where it falls in the vector split. Compiled without fastmath, it may not.

    Run in a fresh process with an empty numba cache: code loaded from the cache
    cannot be inspected.
    """
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", FMA_CHECK], env=env, capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(found) == 5
    for name, asm in found.items():
        assert asm["adds"] > 0, f"no float additions in {name}: inspection did not work"
        assert asm["fma"] == [], f"{name} uses FMA instructions {asm['fma']}"
