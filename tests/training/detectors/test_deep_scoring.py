"""The torch detectors' scoring path: the module's function, and a row's bits in any batch.

Scoring runs a numba kernel one row at a time (``tripwire.training.detectors.layers``).
Two kinds of check here: the kernel computes what the ``nn.Module`` computes (up
to float32 rounding: the kernel sums in its own fixed order, not BLAS's), and a
row's score and contributions are the same bits whatever the batch it arrives in,
its position in that batch and its alignment in memory (``np.array_equal``, never
a tolerance). The second held only by luck with BLAS: oneMKL's SGEMM rounds a
row's dot products differently depending on its address modulo 16 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    """Scores and contributions from the module called on 256-row chunks (the old path)."""
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


def assert_close_to_reference(det: DeepDetector, X: np.ndarray, scores, contrib) -> None:
    ref_scores, ref_contrib = reference(det, X)
    # the VAE's raw score is a log-likelihood: compare it before the offset is taken off
    np.testing.assert_allclose(scores, ref_scores, rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(contrib, ref_contrib, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("n", SIZES)
def test_scores_and_contributions_are_the_modules(det, rows, n, threads):
    X = rows[:n]
    scores, contrib = det.score_and_explain(X)
    assert scores.dtype == np.float64 and scores.shape == (n,)
    assert contrib is not None and contrib.dtype == np.float32 and contrib.shape == X.shape
    assert_close_to_reference(det, X, scores, contrib)


def test_rows_with_nan_or_inf_give_non_finite_scores(det, rows):
    X = rows[:300].copy()
    X[3, 0], X[260, -1], X[7, 1] = np.nan, np.inf, -np.inf
    scores, contrib = det.score_and_explain(X)
    assert not np.isfinite(scores[[3, 7, 260]]).any()
    ok = np.ones(len(X), dtype=bool)
    ok[[3, 7, 260]] = False
    assert np.isfinite(scores[ok]).all()
    assert_close_to_reference(det, X[ok], scores[ok], contrib[ok])
    alone = det.score_and_explain(X[[3, 7, 260]])
    assert np.array_equal(alone[0], scores[[3, 7, 260]], equal_nan=True)
    assert np.array_equal(alone[1], contrib[[3, 7, 260]], equal_nan=True)


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
    np.testing.assert_allclose(det.score(X), reference(det, X)[0], rtol=2e-5, atol=1e-6)


def test_a_loaded_detector_matches_the_reference(tmp_path: Path):
    X = wide(400)
    det = VAE(seed=0, epochs=3).fit(X)
    det.save(tmp_path)
    loaded = VAE.load(tmp_path, det.get_params(), det.get_state())
    scores, contrib = loaded.score_and_explain(X)
    assert np.array_equal(scores, det.score(X))
    assert np.array_equal(contrib, det.score_and_explain(X)[1])
    assert_close_to_reference(loaded, X, scores, contrib)


#: The detector and rows fixtures are module-scoped: the same for every example.
FIXTURES = HealthCheck.function_scoped_fixture


def misaligned_copy(X: np.ndarray, offset: int) -> np.ndarray:
    """``X`` copied into a buffer ``offset`` float32 values past an aligned address."""
    buf = np.zeros(X.size + 16, dtype=np.float32)
    start = (-(buf.ctypes.data // 4) + offset) % 16
    view = buf[start : start + X.size].reshape(X.shape)
    view[:] = X
    assert view.ctypes.data % 64 == 4 * offset
    return view


@settings(max_examples=40, deadline=None, suppress_health_check=[FIXTURES])
@given(
    n=st.integers(1, 700),
    where=st.floats(0, 1, exclude_max=True),
    offset=st.integers(0, 15),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_row_scores_the_same_bits_at_any_position_alignment_and_batch_size(
    det, rows, n, where, offset, seed
):
    """The probe row, alone, and in a batch of n random rows at a random position of
    a buffer at a random alignment: the same score and contributions, bit for bit."""
    rng = np.random.default_rng(seed)
    probe = rows[rng.integers(len(rows))]
    batch = rows[rng.integers(len(rows), size=n)] * rng.uniform(0.5, 2.0, size=(n, 1))
    position = int(where * n)
    batch[position] = probe
    scores, contrib = det.score_and_explain(misaligned_copy(batch.astype(np.float32), offset))
    alone_scores, alone_contrib = det.score_and_explain(probe[None, :])
    assert scores[position].tobytes() == alone_scores[0].tobytes()
    assert contrib[position].tobytes() == alone_contrib[0].tobytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[FIXTURES])
@given(n=st.integers(1, 300), offset=st.integers(0, 15), seed=st.integers(0, 2**32 - 1))
def test_the_kernel_alone_ignores_where_its_rows_are(det, rows, n, offset, seed):
    """Below the standardiser (which copies its input): the kernel's own input at any
    alignment, rows in any order, give every row the same bits."""
    rng = np.random.default_rng(seed)
    Z = det.scaler_.transform(rows[rng.integers(len(rows), size=n)])
    score_rows = det._compiled_scorer()
    expected_s, expected_c = np.empty(n), np.empty(Z.shape, dtype=np.float32)
    score_rows(Z, expected_s, expected_c)
    perm = rng.permutation(n)
    got_s, got_c = np.empty(n), np.empty(Z.shape, dtype=np.float32)
    score_rows(misaligned_copy(Z[perm], offset), got_s, got_c)
    assert got_s.tobytes() == expected_s[perm].tobytes()
    assert got_c.tobytes() == expected_c[perm].tobytes()
