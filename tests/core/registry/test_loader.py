"""load_scorer refuses every broken version with a precise reason (issue 6, scenario 6)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures import toy_registry as conftest
from tests.fixtures.toy_registry import SpyDetector, lookup
from tripwire.core.errors import ModelLoadError
from tripwire.core.registry import load_scorer
from tripwire.training.registry import Registry


def _edit_manifest(reg: Registry, version: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = reg.version_dir("demo", version) / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _load_error(reg: Registry, ref: str) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        load_scorer(reg.root, ref, detector_class=lookup)
    assert info.value.ref.startswith(ref)
    return info.value


def test_load_through_an_alias(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean(seed=1, threshold=0.25)
    publish_mean(seed=2, threshold=0.75)
    registry.promote("demo", "production", "1")
    for ref in ("demo", "demo@production"):
        scorer = load_scorer(registry.root, ref, detector_class=lookup)
        assert (scorer.version, scorer.threshold) == ("1", 0.25)
    assert load_scorer(registry.root, "demo@latest", detector_class=lookup).threshold == 0.75


def test_scores_and_decisions(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean(n_features=2, threshold=4.0)
    scorer = load_scorer(registry.root, "demo@1", detector_class=lookup)
    mean = np.load(registry.version_dir("demo", "1") / "mean.npy")
    X = np.array([mean, mean + [3.0, 0.0], mean + [1.0, 0.0]], dtype=np.float32)
    result = scorer.score(X)
    np.testing.assert_allclose(result.scores, [0.0, 9.0, 1.0], atol=1e-5)
    assert result.is_anomaly.tolist() == [False, True, False]
    top = scorer.top_features(X[1], result.contributions[1], k=1)
    assert top[0].name == "f0"


def test_sha_mismatch_names_the_file_and_loads_nothing(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean(cls=SpyDetector)
    path = registry.version_dir("demo", "1") / "mean.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    conftest.LOADED.clear()
    err = _load_error(registry, "demo@1")
    assert "mean.npy: sha256 mismatch" in err.problem
    assert conftest.LOADED == []  # verified before any deserialisation
    # restored to the published bytes, the same version loads
    path.write_bytes(bytes(data[:-1] + bytes([data[-1] ^ 0x01])))
    assert load_scorer(registry.root, "demo@1", detector_class=lookup).version == "1"
    assert len(conftest.LOADED) == 1


def test_missing_version(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean()
    err = _load_error(registry, "demo@4")
    assert err.problem.endswith("has no version 4 (versions: 1)")
    assert str(err).startswith("cannot load model demo@4: ")


def test_alias_at_a_missing_version(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean()
    publish_mean()
    registry.promote("demo", "production", "2")
    shutil.rmtree(registry.version_dir("demo", "2"))
    assert "points at version 2, which does not exist" in _load_error(registry, "demo").problem


def test_half_written_version(registry: Registry, publish_mean: Callable[..., str]) -> None:
    """A version dir copied in by hand without its manifest (or with a file missing)."""
    publish_mean()
    half = registry.version_dir("demo", "2")
    half.mkdir()
    shutil.copy(registry.version_dir("demo", "1") / "mean.npy", half)
    assert "manifest.json: missing: half-written" in _load_error(registry, "demo@2").problem

    shutil.copy(registry.version_dir("demo", "1") / "manifest.json", half)
    _edit_manifest(registry, "2", lambda m: m.update(version="2"))
    (half / "mean.npy").unlink()
    assert "mean.npy: listed in the manifest but missing" in _load_error(registry, "demo@2").problem


def test_truncated_manifest(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean()
    path = registry.version_dir("demo", "1") / "manifest.json"
    path.write_bytes(path.read_bytes()[:40])
    assert "manifest.json: not valid JSON" in _load_error(registry, "demo@1").problem


def test_newer_schema_is_refused(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean()
    _edit_manifest(registry, "1", lambda m: m.update(schema_version=2, detector="new shape"))
    problem = _load_error(registry, "demo@1").problem
    assert "schema_version 2 was written by a newer Tripwire" in problem
    assert "detector" not in problem  # the other keys of a newer schema are not judged


def test_inconsistent_feature_count_is_refused(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean(n_features=3)
    _edit_manifest(registry, "1", lambda m: m["features"].update(count=4))
    problem = _load_error(registry, "demo@1").problem
    assert "feature count mismatch: 'features.count' is 4 but 'features.names' has 3" in problem


def test_feature_count_the_detector_rejects(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    """A self-consistent manifest whose feature list disagrees with the weights."""
    publish_mean(n_features=3)
    _edit_manifest(
        registry, "1", lambda m: m.update(features={"count": 4, "names": ["a", "b", "c", "d"]})
    )
    problem = _load_error(registry, "demo@1").problem
    assert "feature count mismatch" in problem and "expected 3 features" in problem


def test_manifest_that_describes_another_version(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean()
    shutil.copytree(registry.version_dir("demo", "1"), registry.version_dir("demo", "2"))
    assert "describes demo@1 but lives in demo/2/" in _load_error(registry, "demo@2").problem


def test_unlisted_file_is_refused(registry: Registry, publish_mean: Callable[..., str]) -> None:
    publish_mean()
    (registry.version_dir("demo", "1") / "extra.pkl").write_bytes(b"\x80\x04")
    problem = _load_error(registry, "demo@1").problem
    assert "extra.pkl: file not listed in the manifest's artifacts" in problem


def test_artifact_path_escaping_the_version_is_refused(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean()
    _edit_manifest(registry, "1", lambda m: m["artifacts"].update({"../../x": "0" * 64}))
    assert "not a plain relative path" in _load_error(registry, "demo@1").problem


def test_unknown_kind_with_the_default_lookup(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean()
    _edit_manifest(registry, "1", lambda m: m["detector"].update(kind="no-such-kind"))
    with pytest.raises(ModelLoadError, match="unknown detector kind 'no-such-kind'"):
        load_scorer(registry.root, "demo@1")  # tripwire.training.detectors.detector_class


def test_detector_files_that_fail_to_load(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean(n_features=3)
    _edit_manifest(registry, "1", lambda m: m["detector"]["state"].update(n_features=5))
    problem = _load_error(registry, "demo@1").problem
    assert "detector 'test-mean' failed to load: mean.npy has shape (3,)" in problem


def test_missing_registry(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="registry directory .* does not exist"):
        load_scorer(tmp_path / "none", "demo", detector_class=lookup)


def test_symlinked_artifact_is_refused(
    registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    """Even with identical bytes: a link could later point anywhere."""
    publish_mean()
    path = registry.version_dir("demo", "1") / "mean.npy"
    outside = tmp_path / "outside.npy"
    shutil.move(path, outside)
    path.symlink_to(outside)
    assert "mean.npy: is a symlink" in _load_error(registry, "demo@1").problem
