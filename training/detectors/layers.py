"""Eval-mode forward passes of the torch detectors as plain tensor functions.

Scoring a big batch runs a small network once per 256-row chunk (see
``tripwire.training.detectors.deep``), so ``nn.Module``'s per-call machinery (hook
dispatch, ``Sequential`` iteration, ``F.linear``) cost more than the matrix
multiplies themselves. :func:`compile_layers` turns the modules into a flat list
of the very kernels they call, once per fitted module, with the same operands:
the results are the same bit for bit, not merely close.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)).eval()
>>> x = torch.randn(256, 3)
>>> with torch.inference_mode():
...     torch.equal(run_layers(compile_layers(net), x), net(x))
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

import torch
from torch import nn

#: One step of a compiled forward pass.
Layer = Callable[[torch.Tensor], torch.Tensor]


def compile_layers(*modules: nn.Module) -> list[Layer]:
    """The eval-mode forward pass of ``modules``, applied in order, on 2-D inputs.

    ``nn.Linear`` becomes ``torch.addmm(bias, x, weight.t())`` (``torch.mm`` without
    a bias), which is what ``F.linear`` dispatches to for a 2-D input: the same GEMM
    kernel with the same operand layout. A ReLU on a tensor a previous step made runs
    in place (the same clamp kernel, one allocation less); eval-mode dropout is the
    identity and is left out; ``nn.Sequential`` is flattened; any other module is
    called as it is. The steps hold views of the parameters, so in-place weight
    updates (``load_state_dict``) are seen; replacing a parameter object is not.

    Returns
    -------
    list of callables
        Apply them with :func:`run_layers`.
    """
    layers: list[Layer] = []
    owned = False  # the current tensor was made by a previous step, not passed in
    for module in _leaves(modules):
        if isinstance(module, nn.Linear):
            weight_t = module.weight.detach().t()
            if module.bias is None:
                layers.append(partial(torch.mm, mat2=weight_t))
            else:
                layers.append(partial(torch.addmm, module.bias.detach(), mat2=weight_t))
            owned = True
        elif isinstance(module, nn.ReLU) and owned:
            layers.append(torch.relu_)
        elif not (isinstance(module, nn.Dropout) and not module.training):
            layers.append(module)
            owned = False  # a module may return its input or a view of it
    return layers


def run_layers(layers: list[Layer], x: torch.Tensor) -> torch.Tensor:
    """Apply compiled ``layers`` to ``x`` of shape (rows, d_in) in order."""
    for layer in layers:
        x = layer(x)
    return x


def _leaves(modules: Iterable[nn.Module]) -> Iterator[nn.Module]:
    for module in modules:
        if isinstance(module, nn.Sequential):
            yield from _leaves(module)
        else:
            yield module
