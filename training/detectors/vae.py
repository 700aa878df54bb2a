"""Variational autoencoder scored by reconstruction probability (kind ``vae``).

Follows An & Cho (2015), "Variational Autoencoder based Anomaly Detection using
Reconstruction Probability":

* the encoder gives q(z|x) = N(mu_z, diag(sigma_z^2));
* the decoder gives p(x|z) = N(mu_x, diag(sigma_x^2)): a mean **and** a variance
  per feature (log-variance clamped to ``[LOG_VAR_MIN, LOG_VAR_MAX]`` so a feature
  the decoder reproduces perfectly cannot drive its variance to zero);
* training minimises the negative ELBO, Gaussian NLL + ``beta`` * KL(q(z|x) || N(0, I)),
  with the KL term really in the loss (no clamping);
* the score of a row is ``-log( (1/L) sum_l p(x | z_l) )`` with z_l ~ q(z|x),
  computed with log-sum-exp, minus a constant ``score_offset`` (the smallest raw
  score over the training rows) so that typical scores and thresholds are
  positive: the stream worker reports severity = score / threshold.

Scoring is deterministic per row: the L standard-normal draws come from a fixed
buffer of shape (L, latent_dim), drawn from ``seed`` when the model is built and
saved with the weights, so z_l = mu_z + sigma_z * eps_l for every row, and a row's
score never depends on the other rows of its batch.

Contributions: for feature j, the mean over the L samples of
``0.5 * (x_j - mu_x_j)^2 / sigma_x_j^2`` — the data-dependent part of that
feature's Gaussian NLL term (the squared z-score under the decoder). The
``log sigma`` part is left out because it measures the decoder's confidence, not
the row's deviation; the terms are non-negative without any shift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from tripwire.core.errors import DetectorError
from tripwire.training.detectors.deep import DeepDetector, LossTerms, RowScorer, mlp
from tripwire.training.detectors.layers import forward, jit, pack

LOG_VAR_MIN = -6.0  # sigma >= 0.05 of a standardised feature
LOG_VAR_MAX = 6.0
_LATENT_LOG_VAR_BOUND = 10.0  # keeps exp() finite early in training
_LOG_2PI = math.log(2 * math.pi)
#: Interleaved partial sums of a sample's NLL (see ``_score_rows``).
PARTS = 8


def default_sizes(n_features: int) -> tuple[list[int], int]:
    """Default hidden sizes and latent dimension: ``[max(d//2, 4)]`` and ``max(d//4, 2)``."""
    return [max(n_features // 2, 4)], max(n_features // 4, 2)


class _VAENet(nn.Module):
    """Gaussian encoder and Gaussian decoder, plus the fixed scoring noise buffer."""

    def __init__(
        self,
        n_features: int,
        hidden: list[int],
        latent_dim: int,
        activation: str,
        dropout: float,
        noise: torch.Tensor,
    ) -> None:
        super().__init__()
        self.encoder = mlp([n_features, *hidden], activation, dropout)
        self.encoder_out = nn.Linear(hidden[-1], 2 * latent_dim)
        self.decoder = mlp([latent_dim, *hidden[::-1]], activation, dropout)
        self.decoder_out = nn.Linear(hidden[0], 2 * n_features)
        self.score_noise: torch.Tensor
        self.register_buffer("score_noise", noise)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return posterior(self.encoder_out(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return likelihood(self.decoder_out(self.decoder(z)))


def posterior(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and clamped log-variance of q(z|x) from the encoder's output layer."""
    mu, log_var = out.chunk(2, dim=-1)
    return mu, log_var.clamp(-_LATENT_LOG_VAR_BOUND, _LATENT_LOG_VAR_BOUND)


def likelihood(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and clamped log-variance of p(x|z) from the decoder's output layer."""
    mu, log_var = out.chunk(2, dim=-1)
    return mu, log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX)


def gaussian_nll_terms(x: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Per-feature ``-log N(x; mu, exp(log_var))``, same shape as ``mu``."""
    return 0.5 * (_LOG_2PI + log_var + (x - mu) ** 2 * torch.exp(-log_var))


def kl_standard_normal(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(log_var)) || N(0, I)) per row, shape (n,)."""
    return 0.5 * torch.sum(mu**2 + torch.exp(log_var) - 1.0 - log_var, dim=-1)


class VAE(DeepDetector):
    """Gaussian-decoder VAE; score = negative log reconstruction probability (shifted).

    Parameters
    ----------
    latent_dim : int or None
        Size of z; ``None`` uses ``max(d // 4, 2)``.
    beta : float
        Weight of the KL term in the loss (1.0 = the ELBO).
    n_samples : int
        L, latent samples per row when scoring.
    lr : float
        Adam learning rate; higher than the autoencoder's default because the
        VAE otherwise lingers on the collapsed-posterior plateau early in training.
    **kwargs
        The training hyperparameters of :class:`~tripwire.training.detectors.deep.DeepDetector`
        (``hidden_sizes`` are the encoder's hidden layers, default ``[max(d//2, 4)]``).

    Higher score = more anomalous (less probable under the model).
    """

    kind = "vae"

    def __init__(
        self,
        latent_dim: int | None = None,
        beta: float = 1.0,
        n_samples: int = 4,
        lr: float = 3e-3,
        **kwargs: Any,
    ) -> None:
        self.latent_dim = None if latent_dim is None else int(latent_dim)
        self.beta = float(beta)
        self.n_samples = int(n_samples)
        super().__init__(lr=lr, **kwargs)
        if self.latent_dim is not None and self.latent_dim < 1:
            raise DetectorError("vae: latent_dim must be >= 1")
        if self.beta < 0 or self.n_samples < 1:
            raise DetectorError("vae: beta must be >= 0 and n_samples >= 1")

    def _sizes(self, n_features: int) -> tuple[list[int], int]:
        hidden, latent = default_sizes(n_features)
        return self.hidden_sizes or hidden, self.latent_dim or latent

    def _build_module(self, n_features: int) -> nn.Module:
        hidden, latent = self._sizes(n_features)
        # Its own generator: the scoring noise is a function of the seed alone.
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(self.n_samples, latent, generator=gen)
        return _VAENet(n_features, hidden, latent, self.activation, self.dropout, noise)

    def _loss(self, module: nn.Module, batch: torch.Tensor) -> LossTerms:
        assert isinstance(module, _VAENet)
        mu_z, log_var_z = module.encode(batch)
        z = mu_z
        if module.training:  # validation uses the posterior mean: a deterministic criterion
            z = mu_z + torch.exp(0.5 * log_var_z) * torch.randn_like(mu_z)
        mu_x, log_var_x = module.decode(z)
        nll = gaussian_nll_terms(batch, mu_x, log_var_x).sum(dim=-1).mean()
        kl = kl_standard_normal(mu_z, log_var_z).mean()
        return {"loss": nll + self.beta * kl, "nll": nll, "kl": kl}

    def _row_scorer(self, module: nn.Module) -> RowScorer:
        assert isinstance(module, _VAENet)
        enc = pack(module.encoder, module.encoder_out)  # = module.encode, before posterior()
        dec = pack(module.decoder, module.decoder_out)  # = module.decode, before likelihood()
        noise = module.score_noise.detach().numpy().astype(np.float32)

        def score_rows(Z: np.ndarray, scores: np.ndarray, contrib: np.ndarray) -> None:
            _score_rows(
                Z, enc.weights, enc.biases, enc.shapes, dec.weights, dec.biases, dec.shapes,
                noise, scores, contrib,
            )  # fmt: skip

        return score_rows

    def _after_fit(self, Z: np.ndarray) -> None:
        raw, _ = self._score_standardised(Z)
        self.score_offset_ = float(np.min(raw))

    def _finish_scores(self, raw: np.ndarray) -> np.ndarray:
        return raw - self.score_offset_

    def elbo_terms(self, X: np.ndarray) -> dict[str, float]:
        """Mean Gaussian NLL and KL over rows ``X`` of shape (n, n_features).

        A diagnostic: both terms of the training loss on given rows, evaluated
        as during validation (reconstruction from the posterior mean).
        """
        Z = torch.from_numpy(self._standardise(X))
        with torch.inference_mode():
            terms = self._loss(self.module_, Z)
        return {"nll": float(terms["nll"]), "kl": float(terms["kl"])}

    def _extra_state(self) -> dict[str, Any]:
        hidden, latent = self._sizes(self.n_features_)
        return {"hidden_sizes": hidden, "latent_dim": latent, "score_offset": self.score_offset_}

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        try:
            self.score_offset_ = float(state["score_offset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"vae: invalid detector state: {exc!r}") from exc


@jit
def _clamp(v: np.float32, low: float, high: float) -> np.float32:  # pragma: no cover
    """``v`` clamped to [low, high]; NaN stays NaN, as with ``torch.clamp``."""
    if v < low:
        return np.float32(low)
    if v > high:
        return np.float32(high)
    return v


@jit
def exp_small(x: float) -> float:  # pragma: no cover - compiled
    """``exp(x)`` for ``|x| <= 8`` from additions and multiplications alone.

    ``(e^(x/64))^64`` with a degree-7 Taylor polynomial for ``e^(x/64)``
    (relative error < 1e-9 after the six squarings, far below float32's
    resolution). Unlike a libm call it vectorises, and its result is the same on
    every CPU: the decoder's variance is needed for every feature of every sample.
    """
    t = x * (1.0 / 64.0)
    p = 1.0 + t * (
        1.0
        + t
        * (
            0.5
            + t * (1.0 / 6 + t * (1.0 / 24 + t * (1.0 / 120 + t * (1.0 / 720 + t * (1.0 / 5040)))))
        )
    )
    for _ in range(6):
        p = p * p
    return p


@jit
def _log_mean_exp(log_p: np.ndarray) -> float:  # pragma: no cover - compiled
    """``log(mean(exp(log_p)))`` of a float64 vector, in a fixed order."""
    top = log_p[0]
    for v in log_p:
        top = v if v > top or v != v else top  # NaN wins
    if top == -math.inf or top != top:
        return top
    total = 0.0
    for v in log_p:
        total += math.exp(v - top)
    return top + math.log(total / len(log_p))


@jit
def _score_rows(
    Z: np.ndarray,
    enc_w: np.ndarray,
    enc_b: np.ndarray,
    enc_s: np.ndarray,
    dec_w: np.ndarray,
    dec_b: np.ndarray,
    dec_s: np.ndarray,
    noise: np.ndarray,
    scores: np.ndarray,
    contrib: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Raw scores and contributions of rows ``Z`` (see the module docstring), row by row.

    The steps of ``_loss`` at scoring time: encode, z_l = mu + sigma * eps_l for
    the fixed noise rows eps_l, decode, Gaussian NLL per sample, log-mean-exp.
    A sample's NLL is summed in ``PARTS`` interleaved partial sums (feature j
    into part j % PARTS), then the parts in order: a fixed order, which the
    compiler can vectorise.
    """
    n, d = Z.shape
    n_samples, latent = noise.shape
    buf = np.zeros((2, max(enc_w.shape[1], dec_w.shape[1])), dtype=np.float32)
    mu, sd = np.empty(latent, dtype=np.float32), np.empty(latent, dtype=np.float32)
    padded = -(-d // PARTS) * PARTS
    terms = np.zeros(padded, dtype=np.float64)  # stays 0 beyond d
    parts = np.empty(PARTS, dtype=np.float64)
    sq_sum = np.empty(d, dtype=np.float32)
    log_p = np.empty(n_samples, dtype=np.float64)
    for r in range(n):
        for j in range(d):
            buf[0, j] = Z[r, j]
        out = forward(buf, enc_w, enc_b, enc_s)
        for i in range(latent):
            mu[i] = buf[out, i]
            log_var = _clamp(buf[out, latent + i], -_LATENT_LOG_VAR_BOUND, _LATENT_LOG_VAR_BOUND)
            sd[i] = math.exp(0.5 * np.float64(log_var))
        sq_sum[:] = 0
        for sample in range(n_samples):
            for i in range(latent):
                buf[0, i] = mu[i] + sd[i] * noise[sample, i]
            out = forward(buf, dec_w, dec_b, dec_s)
            for j in range(d):
                log_var = _clamp(buf[out, d + j], LOG_VAR_MIN, LOG_VAR_MAX)
                diff = Z[r, j] - buf[out, j]
                sq_z = diff * diff * np.float32(exp_small(-np.float64(log_var)))
                sq_sum[j] += sq_z
                terms[j] = (_LOG_2PI + log_var) + sq_z
            log_p[sample] = -0.5 * _sum_parts(terms, parts)
        scores[r] = -_log_mean_exp(log_p)
        for j in range(d):
            contrib[r, j] = np.float32(0.5) * sq_sum[j] / np.float32(n_samples)


@jit
def _sum_parts(terms: np.ndarray, parts: np.ndarray) -> float:  # pragma: no cover
    """Sum of ``terms`` (length a multiple of PARTS): PARTS interleaved sums, then theirs."""
    parts[:] = 0
    for start in range(0, len(terms), PARTS):
        for t in range(PARTS):
            parts[t] += terms[start + t]
    total = 0.0
    for t in range(PARTS):
        total += parts[t]
    return total
