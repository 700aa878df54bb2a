"""The shared torch training loop, exercised through the autoencoder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.ae import AutoEncoder
from tripwire.training.detectors.deep import WEIGHTS_FILE


def low_rank(n: int = 400, d: int = 8, seed: int = 0) -> np.ndarray:
    """Easy data: 2 latent factors plus a little noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) + 0.05 * rng.normal(size=(n, d))
    return X.astype(np.float32)


def test_early_stopping_stops_before_max_epochs_and_restores_best_weights():
    X = low_rank()
    det = AutoEncoder(seed=0, epochs=1000, patience=3, min_delta=0.0, batch_size=64).fit(X)
    assert det.epochs_trained_ < 1000
    assert det.epochs_trained_ == det.best_epoch_ + 3
    val_losses = [h["val_loss"] for h in det.history_]
    assert det.best_epoch_ == int(np.argmin(val_losses)) + 1
    # the module now holds the best epoch's weights, not the last epoch's
    Z = det.scaler_.transform(X)
    _, val_idx = det._split(len(X))
    with torch.no_grad():
        zv = torch.from_numpy(Z[val_idx])
        loss = float(torch.mean((det.module_(zv) - zv) ** 2))
    assert loss == pytest.approx(det.history_[det.best_epoch_ - 1]["val_loss"], rel=1e-5)
    assert loss < det.history_[-1]["val_loss"]


def test_training_reduces_the_loss():
    det = AutoEncoder(seed=0, epochs=60, batch_size=64, lr=3e-3).fit(low_rank())
    assert det.history_[-1]["loss"] < 0.5 * det.history_[0]["loss"]


def test_without_validation_split_training_loss_is_monitored():
    det = AutoEncoder(seed=0, epochs=5, validation_fraction=0.0).fit(low_rank(n=50))
    assert all(h["val_loss"] == h["loss"] for h in det.history_)


def test_dropout_only_applies_while_training():
    X = low_rank()
    det = AutoEncoder(seed=0, epochs=5, dropout=0.3).fit(X)
    np.testing.assert_array_equal(det.score(X), det.score(X))


def test_summary_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="tripwire.training.detectors.deep"):
        AutoEncoder(seed=0, epochs=3).fit(low_rank(n=100))
    assert any("trained 3 epochs" in r.getMessage() for r in caplog.records)


def test_hidden_sizes_accept_a_comma_separated_string():
    det = AutoEncoder(hidden_sizes="6, 3", epochs=2)
    assert det.get_params()["hidden_sizes"] == [6, 3]
    det.fit(low_rank())
    assert det.get_state()["hidden_sizes"] == [6, 3]


@pytest.mark.parametrize(
    "params",
    [
        {"activation": "swish-ish"},
        {"dropout": 1.0},
        {"epochs": 0},
        {"patience": 0},
        {"lr": 0.0},
        {"validation_fraction": 1.0},
        {"hidden_sizes": "a,b"},
        {"hidden_sizes": [8, 0]},
        {"hidden_sizes": []},
    ],
)
def test_invalid_hyperparameters_raise(params):
    with pytest.raises(DetectorError):
        AutoEncoder(**params)


@pytest.mark.parametrize(
    "X",
    [
        np.zeros((1, 4), dtype=np.float32),
        np.zeros((10,), dtype=np.float32),
        np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]),
    ],
)
def test_unusable_training_data_raises(X):
    with pytest.raises(DetectorError):
        AutoEncoder(epochs=1).fit(X)


def test_scoring_needs_a_fitted_model_and_the_right_width():
    with pytest.raises(DetectorError, match="not fitted"):
        AutoEncoder().score(np.zeros((2, 8)))
    det = AutoEncoder(epochs=1).fit(low_rank())
    with pytest.raises(DetectorError, match=r"\(n, 8\)"):
        det.score(np.zeros((2, 7)))
    assert det.score(np.zeros((0, 8))).shape == (0,)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[AutoEncoder, Path]:
    det = AutoEncoder(seed=0, epochs=2).fit(low_rank())
    det.save(tmp_path)
    return det, tmp_path


def test_weights_are_plain_safetensors(saved):
    from safetensors.torch import load_file

    det, path = saved
    tensors = load_file(str(path / WEIGHTS_FILE))
    assert set(tensors) == set(det.module_.state_dict())


def test_load_rejects_missing_or_mismatched_files(saved):
    det, path = saved
    params = det.get_params()
    state = json.loads(json.dumps(det.get_state()))
    with pytest.raises(DetectorError, match="invalid detector state"):
        AutoEncoder.load(path, params, {k: v for k, v in state.items() if k != "scaler"})
    with pytest.raises(DetectorError, match="cannot load weights"):
        AutoEncoder.load(path, {**params, "hidden_sizes": [5, 2]}, state)
    with pytest.raises(DetectorError, match="scaler does not match"):
        AutoEncoder.load(path, params, {**state, "n_features": 9})
    (path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(DetectorError, match="cannot load weights"):
        AutoEncoder.load(path, params, state)
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(DetectorError, match="cannot load weights"):
        AutoEncoder.load(path, params, state)


def test_load_rejects_unknown_parameters(saved):
    det, path = saved
    with pytest.raises(DetectorError, match="invalid parameters"):
        AutoEncoder.load(path, {**det.get_params(), "layers": 3}, det.get_state())
