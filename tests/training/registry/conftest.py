"""Registry test helpers: a tiny real detector and a publishing factory.

``MeanDetector`` is a complete ``Detector`` (fit/score/save/load without pickle), so
these tests exercise the registry end to end without waiting on the real models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from training.detectors.base import Detector
from training.errors import DetectorError
from training.registry import Registry


class MeanDetector(Detector):
    """Squared distance to the training mean; higher = more anomalous."""

    kind = "test-mean"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def get_params(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def fit(self, X: np.ndarray) -> Self:
        self.mean_ = np.asarray(X, np.float64).mean(axis=0)
        return self

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise DetectorError(f"expected {self.mean_.shape[0]} features, got shape {X.shape}")
        contrib = self.scale * (X - self.mean_) ** 2
        return contrib.sum(axis=1), contrib

    def save(self, directory: Path) -> list[str]:
        np.save(directory / "mean.npy", self.mean_, allow_pickle=False)
        return ["mean.npy"]

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        det = cls(**params)
        det.mean_ = np.load(directory / "mean.npy", allow_pickle=False)
        if det.mean_.shape != (state["n_features"],):
            raise DetectorError(f"mean.npy has shape {det.mean_.shape}")
        return det

    def get_state(self) -> dict[str, Any]:
        return {"n_features": int(self.mean_.shape[0])}


LOADED: list[str] = []


class SpyDetector(MeanDetector):
    """A MeanDetector that records every load, to prove hashes are checked first."""

    kind = "test-spy"

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        LOADED.append(str(directory))
        return super().load(directory, params, state)


KINDS: dict[str, type[Detector]] = {c.kind: c for c in (MeanDetector, SpyDetector)}


def lookup(kind: str) -> type[Detector]:
    """The ``detector_class`` for these tests."""
    try:
        return KINDS[kind]
    except KeyError:
        raise DetectorError(f"unknown detector {kind!r}") from None


def manifest_for(
    det: Detector, names: list[str], threshold: float = 1.0, metrics: dict | None = None
) -> dict[str, Any]:
    """The caller's part of a manifest, as the train pipeline builds it."""
    return {
        "detector": {"kind": det.kind, "params": det.get_params(), "state": det.get_state()},
        "features": {"count": len(names), "names": names},
        "threshold": {"method": "fpr", "params": {"rate": 0.01}, "value": threshold},
        "metrics": metrics,
        "training_data": {"source": "test", "sha256": "0" * 64, "rows": {"train": 50}},
    }


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def publish_mean(registry: Registry) -> Callable[..., str]:
    """``publish_mean(name="demo", n_features=3, threshold=1.0, ...) -> version``."""

    def publish(
        name: str = "demo",
        n_features: int = 3,
        threshold: float = 1.0,
        metrics: dict | None = None,
        seed: int = 0,
        cls: type[MeanDetector] = MeanDetector,
    ) -> str:
        X = np.random.default_rng(seed).normal(size=(50, n_features))
        det = cls().fit(X)
        names = [f"f{i}" for i in range(n_features)]
        return registry.publish(name, det.save, manifest_for(det, names, threshold, metrics))

    return publish
