"""Nothing is loaded from outside the registry (issue 11 §4), on real registry dirs.

Each test builds the escape on a real registry and loads through ``load_scorer``
(what ``tripwire score`` and the worker run). On main before the fix, the
symlinked version, model, alias and manifest cases loaded, the PyOD case
unpickled a file from outside the registry, and the swap case scored the swapped
bytes.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from tests.fixtures.registry import Published, forge_outside, symlinked_pickle
from tests.fixtures.toy_registry import MeanDetector, lookup, manifest_for
from tripwire.core.errors import ModelLoadError
from tripwire.core.registry import RegistryReader, load_scorer
from tripwire.training.registry import Registry


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leaks() -> Iterator[None]:
    """Every descriptor the registry opens is closed, refusal or not."""
    before = _open_fds()
    yield
    assert _open_fds() <= before


def _load_error(root: Path, ref: str, **kwargs: Any) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_scorer(root, ref, **{"detector_class": lookup, **kwargs})
    return info.value.problem


def test_a_version_dir_symlinked_outside_is_refused(
    registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    publish_mean()
    one = Published(registry.root, "demo", "1", ("f0", "f1", "f2"), 1.0)
    outside = forge_outside(one, tmp_path / "elsewhere", "2")
    registry.version_dir("demo", "2").symlink_to(outside, target_is_directory=True)
    problem = _load_error(registry.root, "demo@2")
    assert f"demo/2: is a symlink (to {outside}), not a directory" in problem
    assert "is a symlink" in _load_error(registry.root, "demo@latest")


def test_a_pyod_version_outside_the_registry_is_never_unpickled(
    registry_factory: Callable[..., Published], tmp_path: Path
) -> None:
    """The reproduction of the issue: on main this created the marker."""
    pub = registry_factory(kind="pyod:IForest", promote=None)
    marker = tmp_path / "pickle-was-executed"
    symlinked_pickle(pub, tmp_path / "evil", "2", marker)
    for ref in (f"{pub.name}@2", f"{pub.name}@latest"):
        with pytest.raises(ModelLoadError, match="is a symlink"):
            load_scorer(pub.root, ref)
    assert not marker.exists()


def test_a_model_dir_symlinked_outside_is_refused(
    registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    publish_mean()
    registry.promote("demo", "production", "1")
    shutil.copytree(registry.model_dir("demo"), tmp_path / "other-model")
    (registry.root / "other").symlink_to(tmp_path / "other-model")
    for ref in ("other", "other@1", "other@latest"):
        assert "other: is a symlink" in _load_error(registry.root, ref), ref
    assert registry.models() == ["demo"]  # a symlink is not a model


@pytest.mark.parametrize("entry", ["aliases", "aliases/production.json", "1/manifest.json"])
def test_symlinked_aliases_and_manifests_are_refused(
    entry: str, registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    """Same bytes, but through a link that could be re-pointed at any time."""
    publish_mean()
    registry.promote("demo", "production", "1")
    inside = registry.model_dir("demo") / entry
    outside = tmp_path / "outside" / inside.name
    outside.parent.mkdir()
    shutil.move(inside, outside)
    inside.symlink_to(outside)
    ref = "demo@1" if entry.startswith("1/") else "demo@production"
    assert "is a symlink" in _load_error(registry.root, ref)


def test_a_symlinked_dir_inside_a_version_is_refused(
    registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    """An unlisted entry the old file walk skipped: os.walk lists a dir link as a dir."""
    publish_mean()
    (tmp_path / "payload").mkdir()
    (registry.version_dir("demo", "1") / "sub").symlink_to(tmp_path / "payload")
    problem = _load_error(registry.root, "demo@1")
    assert "sub: file not listed in the manifest's artifacts (a symlink" in problem


def test_an_artifact_hard_linked_to_a_file_elsewhere_is_refused(
    registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    publish_mean()
    os.link(registry.version_dir("demo", "1") / "mean.npy", tmp_path / "second-name.npy")
    assert "mean.npy: has 2 hard links" in _load_error(registry.root, "demo@1")


def test_a_fifo_artifact_is_refused_without_blocking(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    """Opening a FIFO for reading blocks until a writer comes: never open one."""
    publish_mean()
    path = registry.version_dir("demo", "1") / "mean.npy"
    path.unlink()
    os.mkfifo(path)
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(_load_error(registry.root, "demo@1")))
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():  # unblock it before failing, so no thread leaks
        with open(path, "wb"):
            pass
        thread.join()
        pytest.fail("the loader blocked on a FIFO")
    assert "mean.npy: is a special file (FIFO, socket or device), not a regular file" in result[0]


def test_the_registry_root_may_be_a_symlink(
    registry: Registry, publish_mean: Callable[..., str], tmp_path: Path
) -> None:
    publish_mean()
    registry.promote("demo", "production", "1")
    link = tmp_path / "link-to-registry"
    link.symlink_to(registry.root)
    assert load_scorer(link, "demo", detector_class=lookup).version == "1"
    assert Registry(link).verify() == []


class _SwapDuringLoad(MeanDetector):
    """Replaces the registry's artifact after it was hashed, before it is read."""

    kind = "test-swap"
    victim: Path

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        np.save(cls.victim, np.full(state["n_features"], 1e6), allow_pickle=False)
        return super().load(directory, params, state)


def test_a_file_replaced_after_the_check_does_not_reach_the_detector(
    registry: Registry,
) -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    det = _SwapDuringLoad().fit(X)
    registry.publish("demo", det.save, manifest_for(det, ["a", "b", "c"]))
    _SwapDuringLoad.victim = registry.version_dir("demo", "1") / "mean.npy"
    scorer = load_scorer(registry.root, "demo@1", detector_class=lambda k: _SwapDuringLoad)
    np.testing.assert_array_equal(scorer.detector.mean_, det.mean_)  # the hashed bytes
    assert "sha256 mismatch" in _load_error(registry.root, "demo@1")  # the swap is seen next


def test_a_huge_manifest_is_refused_unread(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean()
    with open(registry.version_dir("demo", "1") / "manifest.json", "r+b") as f:
        f.truncate(1 << 40)  # sparse: a terabyte that takes no disk
    assert "manifest.json: is larger than 16777216 bytes" in _load_error(registry.root, "demo@1")


def test_a_deeply_nested_manifest_is_a_problem_not_a_crash(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean()
    (registry.version_dir("demo", "1") / "manifest.json").write_text("[" * 100_000)
    assert "not valid JSON: ValueError: nested too deeply" in _load_error(registry.root, "demo@1")
    manifest, problems = RegistryReader(registry.root).check("demo", "1")
    assert manifest is None and "nested too deeply" in problems[0][1]


def test_file_names_in_refusals_are_escaped(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    publish_mean()
    (registry.version_dir("demo", "1") / "x\nCRITICAL forged").write_bytes(b"")
    problem = _load_error(registry.root, "demo@1")
    assert "\n" not in problem and "x\\nCRITICAL forged: file not listed" in problem
