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

from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from tripwire.training.detectors.deep import DeepDetector, LossTerms, RowScorer, mlp, parse_sizes
from tripwire.training.detectors.layers import forward, jit, pack

#: Encoder sizes without ``hidden_sizes``: the last is the code. Not a bottleneck
#: narrower than the input: see docs/autoencoders.md for why.
DEFAULT_HIDDEN_SIZES = (64, 32)


def default_hidden_sizes(n_features: int) -> list[int]:
    """Encoder sizes for ``n_features`` inputs: ``[64, 32]`` whatever ``n_features``.

    Kept a function of the feature count so that a rule can replace the constant
    without changing callers.
    """
    return list(DEFAULT_HIDDEN_SIZES)


class _AENet(nn.Module):
    """Encoder ``d -> h1 -> ... -> code`` and mirrored decoder ``code -> ... -> h1 -> d``.

    With ``batch_norm`` every hidden layer, the code included, is linear, batch norm,
    activation (PyOD's ``LinearBlock``); batch norm keeps the ReLUs of the code from
    dying. Without it (models saved before batch norm existed) the code layer is
    linear: a ReLU on a narrow bottleneck can die. The output is linear.
    """

    def __init__(
        self, n_features: int, hidden: list[int], activation: str, dropout: float,
        batch_norm: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        enc = [n_features, *hidden]
        dec = enc[::-1]
        if batch_norm:
            self.encoder = mlp(enc, activation, dropout, batch_norm=True)
        else:
            self.encoder = nn.Sequential(
                mlp(enc[:-1], activation, dropout), nn.Linear(enc[-2], enc[-1])
            )
        self.decoder = nn.Sequential(
            mlp(dec[:-1], activation, dropout, batch_norm), nn.Linear(dec[-2], dec[-1])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AutoEncoder(DeepDetector):
    """MLP autoencoder; score = mean squared reconstruction error of standardised rows.

    Parameters
    ----------
    batch_norm : bool
        Batch norm before the activation of every hidden layer (folded into the
        linear layer for scoring). ``False`` is the architecture of models saved
        without this parameter.
    batch_size : int
        Rows per optimiser step (smaller than the other torch detectors' default).
    **kwargs
        The other hyperparameters of :class:`~tripwire.training.detectors.deep.DeepDetector`
        (``hidden_sizes`` are the encoder sizes ending in the code; the decoder
        mirrors them; default :data:`DEFAULT_HIDDEN_SIZES`).

    ``score`` is higher for more anomalous rows; the contribution of feature ``j``
    is its squared error, so contributions of a row average to its score.
    """

    kind = "ae"

    def __init__(self, batch_norm: bool = True, batch_size: int = 64, **kwargs: Any) -> None:
        self.batch_norm = bool(batch_norm)
        super().__init__(batch_size=batch_size, **kwargs)

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """As :meth:`DeepDetector.load`; a manifest without ``batch_norm`` predates it."""
        return super().load(directory, {"batch_norm": False, **params}, state)

    def _sizes(self, n_features: int) -> list[int]:
        return self.hidden_sizes or default_hidden_sizes(n_features)

    def _build_module(self, n_features: int) -> nn.Module:
        hidden = self._sizes(n_features)
        return _AENet(n_features, hidden, self.activation, self.dropout, self.batch_norm)

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

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        # the sizes the weights were saved with, even if the default has changed since
        if self.hidden_sizes is None and "hidden_sizes" in state:
            self.hidden_sizes = parse_sizes(state["hidden_sizes"], "hidden_sizes")


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
