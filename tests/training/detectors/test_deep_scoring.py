"""The torch detectors' scoring path against the straightforward reference, bit for bit.

The reference is what the scoring used to be: the ``nn.Module`` called on each
256-row chunk, zero-padded, and the score formulas written out plainly. The fast
path (compiled layers, one buffer per call, in-place steps) must give the very
same float64 arrays, so equality here is ``np.array_equal``, never a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tripwire.training.detectors.ae import AutoEncoder
from tripwire.training.detectors.deep import DeepDetector
from tripwire.training.detectors.vae import VAE, gaussian_nll_terms

from .test_deep import low_rank

SIZES = [1, 255, 256, 257, 3000]
ChunkFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def ae_chunk(module: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sq = (module(batch) - batch) ** 2
    return sq.mean(dim=1), sq


def vae_chunk(module: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = batch.shape
    n_samples = module.score_noise.shape[0]
    mu_z, log_var_z = module.encode(batch)
    z = mu_z[:, None, :] + torch.exp(0.5 * log_var_z)[:, None, :] * module.score_noise
    mu_x, log_var_x = module.decode(z.reshape(n * n_samples, -1))
    mu_x, log_var_x = mu_x.reshape(n, n_samples, d), log_var_x.reshape(n, n_samples, d)
    x = batch[:, None, :]
    log_p = -gaussian_nll_terms(x, mu_x, log_var_x).sum(dim=-1)
    raw = -(torch.logsumexp(log_p, dim=1) - math.log(n_samples))
    contrib = 0.5 * ((x - mu_x) ** 2 * torch.exp(-log_var_x)).mean(dim=1)
    return raw, contrib


def reference(det: DeepDetector, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and contributions from the module called on each zero-padded chunk."""
    chunk_fn: ChunkFn = {"ae": ae_chunk, "vae": vae_chunk}[det.kind]
    Z = det.scaler_.transform(X)
    step = 256
    scores, contrib = np.empty(len(Z)), np.empty(Z.shape)
    with torch.inference_mode():
        for start in range(0, len(Z), step):
            chunk = Z[start : start + step]
            padded = np.zeros((step, Z.shape[1]), dtype=np.float32)
            padded[: len(chunk)] = chunk
            s, c = chunk_fn(det.module_, torch.from_numpy(padded))
            scores[start : start + len(chunk)] = s[: len(chunk)].numpy()
            contrib[start : start + len(chunk)] = c[: len(chunk)].numpy()
    return det._finish_scores(scores), contrib


def wide(n: int, d: int = 50, seed: int = 1) -> np.ndarray:
    """Rows shaped like the stream's: 50 features, a few latent factors."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)) @ rng.normal(size=(5, d)) + 0.3 * rng.normal(size=(n, d))
    return X.astype(np.float32)


DETECTORS: dict[str, Callable[[], DeepDetector]] = {
    "ae-50": lambda: AutoEncoder(seed=0, epochs=4).fit(wide(600)),
    "ae-8-gelu-dropout": lambda: AutoEncoder(
        seed=1, epochs=4, activation="gelu", dropout=0.2, hidden_sizes=[6, 4, 2]
    ).fit(low_rank()),
    "vae-50": lambda: VAE(seed=0, epochs=4).fit(wide(600)),
    "vae-8-elu": lambda: VAE(seed=2, epochs=4, activation="elu", n_samples=5).fit(low_rank()),
}


@pytest.fixture(scope="module", params=list(DETECTORS))
def det(request: pytest.FixtureRequest) -> DeepDetector:
    return DETECTORS[request.param]()


@pytest.fixture(scope="module")
def rows(det: DeepDetector) -> np.ndarray:
    X = wide(max(SIZES), d=det.n_features_, seed=7)
    return 2 * X  # wider than the training rows: scores far from zero too


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(int(request.param))
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("n", SIZES)
def test_scores_and_contributions_are_bitwise_the_reference(det, rows, n, threads):
    X = rows[:n]
    scores, contrib = det.score_and_explain(X)
    ref_scores, ref_contrib = reference(det, X)
    assert scores.dtype == np.float64 and scores.shape == (n,)
    assert contrib is not None and contrib.dtype == np.float32 and contrib.shape == X.shape
    assert np.array_equal(scores, ref_scores)
    assert np.array_equal(contrib, ref_contrib)


def test_rows_with_nan_or_inf_match_the_reference_too(det, rows):
    X = rows[:300].copy()
    X[3, 0], X[260, -1], X[7, 1] = np.nan, np.inf, -np.inf
    scores, contrib = det.score_and_explain(X)
    ref_scores, ref_contrib = reference(det, X)
    assert np.array_equal(scores, ref_scores, equal_nan=True)
    assert np.array_equal(contrib, ref_contrib, equal_nan=True)
    assert not np.isfinite(scores[[3, 7, 260]]).any()


def test_a_row_scores_the_same_bits_in_any_batch(det, rows):
    rng = np.random.default_rng(3)
    X = rows[:600]
    alone = [det.score_and_explain(X[i : i + 1]) for i in range(0, 600, 41)]
    perm = rng.permutation(len(X))
    s_perm, c_perm = det.score_and_explain(X[perm])
    scores, contrib = np.empty(len(X)), np.empty(X.shape)
    scores[perm], contrib[perm] = s_perm, c_perm
    assert np.array_equal(np.concatenate([s for s, _ in alone]), scores[::41])
    assert np.array_equal(np.concatenate([c for _, c in alone]), contrib[::41])


def test_scoring_leaves_the_input_alone_and_handles_no_rows(det, rows):
    X = rows[:512].copy()
    det.score_and_explain(X)
    assert np.array_equal(X, rows[:512])
    scores, contrib = det.score_and_explain(X[:0])
    assert scores.shape == (0,) and contrib is not None and contrib.shape == (0, X.shape[1])


def test_a_new_module_is_compiled_again():
    X = low_rank()
    det = AutoEncoder(seed=0, epochs=2).fit(X)
    first = det.score(X)
    det.fit(X[::-1].copy())  # a new module_, other weights
    assert not np.array_equal(det.score(X), first)
    assert np.array_equal(det.score(X), reference(det, X)[0])


def test_a_loaded_detector_matches_the_reference(tmp_path: Path):
    X = wide(400)
    det = VAE(seed=0, epochs=3).fit(X)
    det.save(tmp_path)
    loaded = VAE.load(tmp_path, det.get_params(), det.get_state())
    scores, contrib = loaded.score_and_explain(X)
    assert np.array_equal(scores, reference(loaded, X)[0])
    assert np.array_equal(scores, det.score(X))
    assert np.array_equal(contrib, reference(det, X)[1])
