"""The detector base class owns get_params and the fitted check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError


class Base(Detector):
    """Squared distance to the mean; higher = more anomalous."""

    kind = "test-base"
    fitted_attribute = "mean_"

    def __init__(self, seed: int = 0, scale: float = 1.0, names: tuple[str, ...] = ("a",)) -> None:
        self.seed, self.scale, self.names = seed, scale, tuple(names)

    def fit(self, X: np.ndarray) -> Self:
        self.mean_ = X.mean(axis=0)
        return self

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_fitted()
        return self.scale * ((X - self.mean_) ** 2).sum(axis=1), None

    def save(self, directory: Path) -> list[str]:
        self._check_fitted()
        return []

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        return cls(**params)


class Child(Base):
    """Adds ``shift`` and a new default for ``scale``; the rest passes through."""

    kind = "test-child"

    def __init__(self, shift: float = 0.5, scale: float = 2.0, **kwargs: Any) -> None:
        self.shift = shift
        super().__init__(scale=scale, **kwargs)


class Wrapper(Detector):
    """Takes any parameters (another library's), as the PyOD wrapper does."""

    kind = "test-wrapper"
    fitted_attribute = "model_"

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed, self.params = seed, params

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), **self.params}

    fit = Base.fit
    score_and_explain = Base.score_and_explain
    save = Base.save
    load = Base.load


def test_params_are_those_of_init_base_first_each_once() -> None:
    assert Base.param_names() == (("seed", "scale", "names"), False)
    assert Child.param_names() == (("seed", "scale", "names", "shift"), False)
    assert Wrapper.param_names() == (("seed",), True)


def test_get_params_reads_them_back_as_json_has_them() -> None:
    det = Child(shift=1.5, seed=4, names=("x", "y"))
    assert det.get_params() == {"seed": 4, "scale": 2.0, "names": ["x", "y"], "shift": 1.5}
    again = Child(**json.loads(json.dumps(det.get_params())))
    assert again.get_params() == det.get_params()
    assert Wrapper(seed=1, n_bins=5).get_params() == {"seed": 1, "n_bins": 5}


def test_an_unfitted_detector_says_so_and_a_fitted_one_scores() -> None:
    det = Child()
    for call in (lambda: det.score(np.zeros((1, 2))), lambda: det.save(Path("."))):
        with pytest.raises(DetectorError, match=r"^test-child: detector is not fitted$"):
            call()
    assert det.fit(np.ones((3, 2))).score(np.ones((1, 2))).tolist() == [0.0]
