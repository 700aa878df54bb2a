"""Compiled forward passes give exactly what calling the modules gives."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tripwire.training.detectors.deep import ACTIVATIONS, mlp
from tripwire.training.detectors.layers import compile_layers, run_layers


def _input(d: int, rows: int = 256, seed: int = 0) -> torch.Tensor:
    return 3 * torch.randn(rows, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_compiled_mlp_is_bitwise_the_module(activation):
    torch.manual_seed(0)
    net = nn.Sequential(mlp([7, 16, 8], activation, dropout=0.3), nn.Linear(8, 7)).eval()
    x = _input(7)
    with torch.inference_mode():
        expected = net(x)
        got = run_layers(compile_layers(net), x)
    assert torch.equal(got, expected)


def test_linear_without_bias_nested_sequentials_and_several_modules():
    torch.manual_seed(1)
    first = nn.Sequential(nn.Sequential(nn.Linear(5, 9, bias=False), nn.ReLU()), nn.Linear(9, 3))
    second = nn.Sequential(nn.Linear(3, 9), nn.Tanh(), nn.Linear(9, 5, bias=False))
    x = _input(5)
    with torch.inference_mode():
        expected = second(first(x))
        got = run_layers(compile_layers(first.eval(), second.eval()), x)
    assert torch.equal(got, expected)


def test_a_relu_on_the_input_does_not_overwrite_it():
    x = _input(4)
    before = x.clone()
    with torch.inference_mode():
        out = run_layers(compile_layers(nn.ReLU(), nn.Dropout(0.5).eval(), nn.ReLU()), x)
    assert torch.equal(x, before)
    assert torch.equal(out, torch.relu(before))


def test_dropout_is_left_out_only_in_eval_mode():
    drop = nn.Dropout(0.5)
    assert compile_layers(drop.eval()) == []
    assert compile_layers(drop.train()) == [drop]


def test_in_place_weight_updates_are_seen():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    layers = compile_layers(net)
    x = _input(4)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(-2.0)
    with torch.inference_mode():
        assert torch.equal(run_layers(layers, x), net(x))
