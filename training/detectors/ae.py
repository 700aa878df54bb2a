"""Autoencoder detector (kind ``ae``): reconstruction error in standardised space.

The founding design's model, generalised: an MLP encoder down to a bottleneck and
a mirrored decoder, trained with mean squared error on normal rows only.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 6)).astype("float32")
>>> det = AutoEncoder(seed=0, epochs=3).fit(X)
>>> det.score(X[:4]).shape
(4,)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tripwire.training.detectors.deep import DeepDetector, LossTerms, RowScorer, mlp
from tripwire.training.detectors.layers import forward, jit, pack


def default_hidden_sizes(n_features: int) -> list[int]:
    """Encoder sizes for ``n_features`` inputs: ``[max(d//2, 4), max(d//4, 2)]``.

    The last size is the bottleneck. For the founding tutorial's 50 features this
    is ``[25, 12]``.
    """
    return [max(n_features // 2, 4), max(n_features // 4, 2)]


class _AENet(nn.Module):
    """Encoder ``d -> h1 -> ... -> code`` and mirrored decoder ``code -> ... -> h1 -> d``.

    The code layer and the output are linear: a ReLU on a narrow bottleneck can
    die and leave the model unable to reconstruct anything.
    """

    def __init__(self, n_features: int, hidden: list[int], activation: str, dropout: float):
        super().__init__()
        enc = [n_features, *hidden]
        dec = enc[::-1]
        self.encoder = nn.Sequential(
            mlp(enc[:-1], activation, dropout), nn.Linear(enc[-2], enc[-1])
        )
        self.decoder = nn.Sequential(
            mlp(dec[:-1], activation, dropout), nn.Linear(dec[-2], dec[-1])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AutoEncoder(DeepDetector):
    """MLP autoencoder; score = mean squared reconstruction error of standardised rows.

    Hyperparameters are those of :class:`~tripwire.training.detectors.deep.DeepDetector`
    (``hidden_sizes`` are the encoder sizes ending in the bottleneck; the decoder
    mirrors them; default :func:`default_hidden_sizes`).

    ``score`` is higher for more anomalous rows; the contribution of feature ``j``
    is its squared error, so contributions of a row average to its score.
    """

    kind = "ae"

    def _sizes(self, n_features: int) -> list[int]:
        return self.hidden_sizes or default_hidden_sizes(n_features)

    def _build_module(self, n_features: int) -> nn.Module:
        return _AENet(n_features, self._sizes(n_features), self.activation, self.dropout)

    def _loss(self, module: nn.Module, batch: torch.Tensor) -> LossTerms:
        return {"loss": torch.mean((module(batch) - batch) ** 2)}

    def _row_scorer(self, module: nn.Module) -> RowScorer:
        assert isinstance(module, _AENet)
        net = pack(module.encoder, module.decoder)  # = module.forward

        def score_rows(Z: np.ndarray, scores: np.ndarray, contrib: np.ndarray) -> None:
            _score_rows(Z, net.weights, net.biases, net.shapes, scores, contrib)

        return score_rows

    def _extra_state(self) -> dict[str, Any]:
        return {"hidden_sizes": self._sizes(self.n_features_)}


@jit
def _score_rows(
    Z: np.ndarray,
    weights: np.ndarray,
    biases: np.ndarray,
    shapes: np.ndarray,
    scores: np.ndarray,
    contrib: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Squared errors (n, d) and their row means (n,) of rows ``Z``, one row at a time."""
    n, d = Z.shape
    buf = np.zeros((2, weights.shape[1]), dtype=np.float32)
    for r in range(n):
        for j in range(d):
            buf[0, j] = Z[r, j]
        out = forward(buf, weights, biases, shapes)
        total = 0.0
        for j in range(d):
            err = buf[out, j] - Z[r, j]
            err = err * err
            contrib[r, j] = err
            total += err
        scores[r] = total / d
