"""The drift reference as a published, hashed artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tripwire.core.drift.artifact import load_reference
from tripwire.core.drift.reference import REFERENCE_FILE
from tripwire.core.errors import RegistryError
from tripwire.core.registry import load_scorer
from tripwire.core.registry.manifest import validate_manifest
from tripwire.training.pipeline import train
from tripwire.training.registry import Registry
from tripwire.training.settings import TrainSettings


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A kNN model trained on unlabelled rows, published by ``train``."""
    tmp = tmp_path_factory.mktemp("drift-artifact")
    rng = np.random.default_rng(0)
    np.savez(tmp / "rows.npz", X=rng.normal(size=(800, 5)).astype(np.float32))
    settings = TrainSettings(
        data=str(tmp / "rows.npz"), registry=str(tmp / "reg"), model="knn", name="m",
        plot="none", seed=0,
    )  # fmt: skip
    result = train(settings)
    return tmp / "reg", f"m@{result.version}"


def test_train_publishes_a_verified_reference(published: tuple[Path, str]) -> None:
    root, ref = published
    reference, label, names = load_reference(root, ref)
    assert reference is not None and label == ref and len(names) == 5
    manifest = json.loads((root / "m" / "1" / "manifest.json").read_text())
    section = manifest["drift_reference"]
    assert section["artifact"] == REFERENCE_FILE and REFERENCE_FILE in manifest["artifacts"]
    # the scores the threshold rests on: the held-out 20 % of 800 rows and the kNN's
    # leave-one-out scores of its 640 training rows (pooled calibration)
    assert section["calibration_rows"] == reference.calibration_rows == 160 + 640
    assert section["reference_rows"] == reference.reference_rows == 640
    assert reference.threshold == load_scorer(root, ref).threshold
    # the fpr:0.01 threshold is the 99 % quantile of these very scores
    assert reference.calibration_alerts == int((reference.scores > reference.threshold).sum())
    assert 0 < reference.calibration_alerts <= 8  # 1 % of 800
    assert Registry(root).verify("m") == []


def test_tampered_reference_is_refused(published: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = published
    copy = tmp_path / "reg"
    shutil.copytree(root, copy)
    path = copy / "m" / "1" / REFERENCE_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        load_reference(copy, "m@1")
    assert any(REFERENCE_FILE in str(p) for p in Registry(copy).verify("m"))


def test_version_without_reference_turns_drift_off(
    registry_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pub = registry_factory(name="old", kind="ae")
    caplog.set_level("INFO", logger="tripwire.core.drift.artifact")
    reference, label, names = load_reference(pub.root, f"old@{pub.version}")
    assert reference is None and label == f"old@{pub.version}" and names == pub.feature_names
    assert "no drift reference" in caplog.text and "drift monitoring off" in caplog.text


def test_manifest_section_must_name_an_artifact(published: tuple[Path, str]) -> None:
    root, _ = published
    manifest = json.loads((root / "m" / "1" / "manifest.json").read_text())
    assert validate_manifest(manifest) == []
    manifest["drift_reference"] = {"artifact": "elsewhere.safetensors"}
    assert validate_manifest(manifest) == [
        "'drift_reference.artifact' must name one of the manifest's artifacts"
    ]
    manifest["drift_reference"] = "x"
    assert len(validate_manifest(manifest)) == 1
