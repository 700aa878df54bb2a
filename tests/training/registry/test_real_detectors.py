"""The registry with the real detectors, found through ``detector_class``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.toy_registry import manifest_for
from tripwire.core.errors import ModelLoadError
from tripwire.core.registry import load_scorer
from tripwire.training.detectors import make_detector
from tripwire.training.registry import Registry


@pytest.fixture
def X() -> np.ndarray:
    torch.set_num_threads(1)
    return np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)


@pytest.mark.parametrize(("spec", "params"), [("ae", {"epochs": 2}), ("pyod:IForest", {})])
def test_publish_and_load_a_real_detector(
    registry: Registry, X: np.ndarray, spec: str, params: dict
) -> None:
    det = make_detector(spec, seed=0, **params).fit(X)
    version = registry.publish("real", det.save, manifest_for(det, ["a", "b", "c", "d"]))
    scorer = load_scorer(registry.root, f"real@{version}")  # default detector lookup
    assert type(scorer.detector) is type(det)
    np.testing.assert_array_equal(scorer.score(X).scores, det.score(X))
    assert registry.verify() == []


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_swapped_pickle_is_refused_before_it_is_unpickled(
    registry: Registry, X: np.ndarray, tmp_path: Path
) -> None:
    det = make_detector("pyod:IForest", seed=0).fit(X)
    version = registry.publish("real", det.save, manifest_for(det, ["a", "b", "c", "d"]))
    files = registry.manifest("real", version)["artifacts"]
    pkl = next(f for f in files if f.endswith(".pkl"))
    marker = tmp_path / "pickle-was-executed"
    (registry.version_dir("real", version) / pkl).write_bytes(pickle.dumps(_Payload(marker)))

    with pytest.raises(ModelLoadError, match=f"{pkl}: sha256 mismatch"):
        load_scorer(registry.root, f"real@{version}")
    assert not marker.exists()


#: ``detector.params`` of manifest.json (written with sorted keys) for these settings,
#: as recorded before the detector base class derived ``get_params`` from ``__init__``,
#: plus the kNN's ``reference`` and ``scale_k`` (added with the reduced default reference).
RECORDED_PARAMS = [
    ("ensemble", {"k": 3, "scalings": "standard"},
     '{"k": 3, "max_reference": 2000, "reference": "sparse", "scale_k": true, '
     '"scalings": ["standard"], "seed": 3}'),
    ("knn", {},
     '{"k": 5, "max_reference": 10000, "reference": "uniform", "scale_k": false, '
     '"scaling": "standard", "seed": 3}'),
    ("ae", {"epochs": 2, "hidden_sizes": "8,2", "batch_norm": False},
     '{"activation": "relu", "batch_norm": false, "batch_size": 64, "dropout": 0.0, "epochs": 2, '
     '"hidden_sizes": [8, 2], "lr": 0.001, "min_delta": 0.0001, "patience": 10, "seed": 3, '
     '"validation_fraction": 0.1, "weight_decay": 0.0}'),
    ("vae", {"epochs": 2, "latent_dim": 3, "beta": 0.5, "hidden_sizes": [6]},
     '{"activation": "relu", "batch_size": 256, "beta": 0.5, "dropout": 0.0, "epochs": 2, '
     '"hidden_sizes": [6], "latent_dim": 3, "lr": 0.003, "min_delta": 0.0001, "n_samples": 4, '
     '"patience": 10, "seed": 3, "validation_fraction": 0.1, "weight_decay": 0.0}'),
    ("pyod:HBOS", {"n_bins": 5}, '{"n_bins": 5, "seed": 3}'),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "params", "recorded"), RECORDED_PARAMS)
def test_the_manifest_records_the_same_params_for_the_same_settings(
    registry: Registry, X: np.ndarray, spec: str, params: dict, recorded: str
) -> None:
    det = make_detector(spec, seed=3, **params).fit(X)
    version = registry.publish("real", det.save, manifest_for(det, ["a", "b", "c", "d"]))
    text = (registry.version_dir("real", version) / "manifest.json").read_text()
    assert json.dumps(json.loads(text)["detector"]["params"], sort_keys=True) == recorded
    loaded = load_scorer(registry.root, f"real@{version}").detector
    assert json.dumps(loaded.get_params(), sort_keys=True) == recorded
