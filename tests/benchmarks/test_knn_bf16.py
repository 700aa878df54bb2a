"""The bf16 what-if: its rounding bound holds for torch's bf16 product, and its share."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import knn_bf16
from tripwire.training.detectors.knn import KNN


def test_the_bound_covers_torchs_bf16_product() -> None:
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 300.0):
        Z = scale * rng.normal(size=(64, 50))
        R = scale * rng.standard_t(3, size=(500, 50))  # heavy tails: uneven row norms
        approx = -2.0 * (torch.from_numpy(Z).bfloat16() @ torch.from_numpy(R.T).bfloat16())
        err = np.abs(approx.double().numpy() - (-2.0 * Z @ R.T))
        eps = knn_bf16.bf16_bound(Z, R)
        assert np.all(err <= eps[:, None])
        assert err.max() > eps.max() / 50  # the bound is not vacuously loose


def test_ties_never_certify_and_separated_rows_always_do() -> None:
    X = np.repeat(
        np.random.default_rng(1).normal(size=(20, 3)), 20, axis=0
    )  # 20 copies > k + margin
    det = KNN(k=5).fit(X.astype(np.float32))
    assert knn_bf16.certified_share(det, X[:20].astype(np.float32), margin=8) == 0.0
    far = (10.0 * np.eye(20)).astype(np.float32)  # squared gaps of 200 between rows
    close = KNN(k=1, scaling="none").fit(far)
    assert knn_bf16.certified_share(close, far + 0.01, margin=1) == 1.0
