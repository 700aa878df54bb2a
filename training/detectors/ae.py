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

import torch
from torch import nn

from tripwire.training.detectors.deep import ChunkScorer, DeepDetector, LossTerms, mlp
from tripwire.training.detectors.layers import compile_layers, run_layers


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

    def _chunk_scorer(self, module: nn.Module) -> ChunkScorer:
        assert isinstance(module, _AENet)
        layers = compile_layers(module.encoder, module.decoder)  # = module.forward

        def score_chunk(batch: torch.Tensor, scores: torch.Tensor, contrib: torch.Tensor) -> None:
            # (module(batch) - batch) ** 2 and its row means, written in place
            sq = torch.sub(run_layers(layers, batch), batch, out=contrib).square_()
            torch.mean(sq, dim=1, out=scores)

        return score_chunk

    def _extra_state(self) -> dict[str, Any]:
        return {"hidden_sizes": self._sizes(self.n_features_)}
