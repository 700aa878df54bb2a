"""Publishing: round trip, numbering, validation, cleanup and concurrent publishers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.toy_registry import MeanDetector, lookup, manifest_for
from tests.training.registry.publisher import manifest as simple_manifest
from tests.training.registry.publisher import write_artifacts
from tripwire.core.errors import RegistryError
from tripwire.core.registry import SCHEMA_VERSION, load_scorer
from tripwire.core.registry.manifest import sha256_file
from tripwire.training.registry import Registry, _fs

REPO = Path(__file__).resolve().parents[3]


def test_publish_then_load_round_trip(registry: Registry) -> None:
    X = np.random.default_rng(1).normal(size=(40, 4))
    det = MeanDetector(scale=2.0).fit(X)
    names = ["a", "b", "c", "d"]
    version = registry.publish("demo", det.save, manifest_for(det, names, threshold=3.5))

    scorer = load_scorer(registry.root, f"demo@{version}", detector_class=lookup)

    assert (scorer.name, scorer.version, scorer.feature_names) == ("demo", "1", tuple(names))
    assert scorer.threshold == 3.5
    np.testing.assert_array_equal(scorer.score(X).scores, det.score(X.astype(np.float32)))
    assert scorer.manifest["detector"]["params"] == {"scale": 2.0}


def test_publish_fills_manifest(registry: Registry, publish_mean: Callable[..., str]) -> None:
    version = publish_mean()
    m = registry.manifest("demo", version)
    vdir = registry.version_dir("demo", version)

    assert m["schema_version"] == SCHEMA_VERSION
    assert (m["name"], m["version"]) == ("demo", "1")
    assert m["created_at"].endswith("Z")
    assert m["artifacts"] == {"mean.npy": sha256_file(vdir / "mean.npy")}
    assert set(m["environment"]) == {"python", "torch", "numpy", "pyod", "tripwire"}
    assert m["environment"]["numpy"] == np.__version__
    assert sorted(p.name for p in vdir.iterdir()) == ["manifest.json", "mean.npy"]
    assert registry.temp_dirs("demo") == []


def test_versions_increment_in_numeric_order(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    published = [publish_mean(seed=i) for i in range(11)]
    assert published == [str(i) for i in range(1, 12)]
    assert registry.versions("demo") == published  # "10" after "9", not after "1"
    assert registry.models() == ["demo"]
    publish_mean(name="other")
    assert registry.models() == ["demo", "other"]
    assert registry.versions("other") == ["1"]


def test_numpy_values_in_manifest_are_stored_as_json(registry: Registry) -> None:
    det = MeanDetector().fit(np.ones((3, 2)))
    m = manifest_for(det, ["x", "y"], threshold=np.float64(0.5), metrics={"f1": np.float32(1)})
    version = registry.publish("demo", det.save, m)
    stored = registry.manifest("demo", version)
    assert stored["threshold"]["value"] == 0.5 and stored["metrics"] == {"f1": 1.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("detector"), "'detector' must be an object"),
        (lambda m: m["features"].update(count=5), "feature count mismatch"),
        (lambda m: m["threshold"].update(value=float("nan")), "finite number"),
    ],
)
def test_invalid_manifest_is_refused_and_leaves_nothing(
    registry: Registry, change: Callable[[dict], object], message: str
) -> None:
    det = MeanDetector().fit(np.ones((3, 2)))
    m = manifest_for(det, ["x", "y"])
    change(m)
    with pytest.raises(RegistryError, match=message):
        registry.publish("demo", det.save, m)
    assert registry.versions("demo") == [] and registry.temp_dirs("demo") == []


def test_failing_write_artifacts_leaves_nothing(registry: Registry) -> None:
    def explode(directory: Path) -> list[str]:
        (directory / "half.bin").write_bytes(b"x" * 100)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        registry.publish("demo", explode, simple_manifest("t"))
    assert registry.versions("demo") == [] and registry.temp_dirs("demo") == []


@pytest.mark.parametrize(
    ("files", "listed", "message"),
    [
        (["a.bin", "b.bin"], ["a.bin"], "unlisted entries: b.bin: file not listed"),
        (["a.bin"], ["a.bin", "missing.bin"], "artifact missing.bin was not written"),
        (["a.bin"], ["../a.bin"], "not a plain relative path"),
        (["a.bin"], ["manifest.json"], "reserved"),
    ],
)
def test_artifact_list_must_match_the_files(
    registry: Registry, files: list[str], listed: list[str], message: str
) -> None:
    def write(directory: Path) -> list[str]:
        for f in files:
            (directory / f).write_bytes(b"data")
        return listed

    with pytest.raises(RegistryError, match=message):
        registry.publish("demo", write, simple_manifest("t"))
    assert registry.versions("demo") == []


def test_invalid_model_name_is_refused(registry: Registry) -> None:
    for bad in ("../x", ".hidden", "a/b", "a@b", ""):
        with pytest.raises(RegistryError, match="invalid model name"):
            registry.publish(bad, write_artifacts, simple_manifest("t"))


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "fallback"])
def test_rename_noreplace_refuses_an_existing_empty_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renameat2: bool
) -> None:
    """Plain rename(2) would replace an empty dir; a publish must never clobber."""
    if renameat2 and not _fs._load_renameat2():
        pytest.skip("libc without renameat2")
    if not renameat2:
        monkeypatch.setattr(_fs, "_renameat2", False)  # as on a libc without it
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "manifest.json").write_text("{}")
    dst.mkdir()
    with pytest.raises(FileExistsError):
        _fs.rename_noreplace(src, dst)
    assert list(dst.iterdir()) == [] and (src / "manifest.json").exists()
    _fs.rename_noreplace(src, tmp_path / "free")
    assert (tmp_path / "free" / "manifest.json").exists() and not src.exists()


def test_publisher_that_loses_the_race_takes_the_next_number(
    registry: Registry, publish_mean: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale listing makes publish try a taken number; it must retry, not clobber."""
    publish_mean(seed=1)
    publish_mean(seed=2)
    real_versions = Registry.versions
    calls = []

    def stale_once(self: Registry, name: str) -> list[str]:
        calls.append(name)
        return ["1"] if len(calls) == 1 else real_versions(self, name)

    monkeypatch.setattr(Registry, "versions", stale_once)
    assert registry.publish("demo", write_artifacts, simple_manifest("late")) == "3"
    monkeypatch.undo()
    assert registry.manifest("demo", "2")["detector"]["kind"] == "test-mean"  # intact
    assert registry.manifest("demo", "3")["training_data"]["source"] == "late"
    assert registry.verify() == []


def _check_every_publish_kept(registry: Registry, tags: set[str]) -> None:
    versions = registry.versions("m")
    assert versions == [str(i) for i in range(1, len(tags) + 1)]
    stored = {registry.manifest("m", v)["training_data"]["source"] for v in versions}
    assert stored == tags
    assert all(registry.manifest("m", v)["version"] == v for v in versions)
    assert registry.verify() == []
    assert registry.temp_dirs("m") == []


def test_concurrent_publishing_threads_never_clobber(registry: Registry) -> None:
    threads, per_thread = 4, 6
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def publisher(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                registry.publish("m", write_artifacts, simple_manifest(f"t{t}-{i}"))
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=publisher, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    _check_every_publish_kept(
        registry, {f"t{t}-{i}" for t in range(threads) for i in range(per_thread)}
    )


def test_concurrent_publishing_processes_never_clobber(registry: Registry) -> None:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.training.registry.publisher",
                str(registry.root),
                "m",
                "5",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(3)
    ]
    pids = [p.pid for p in procs]
    for p in procs:
        p.communicate(timeout=60)
        assert p.returncode == 0
    _check_every_publish_kept(registry, {f"{pid}-{i}" for pid in pids for i in range(5)})


def test_manifest_json_is_sorted_and_readable(
    registry: Registry, publish_mean: Callable[..., str]
) -> None:
    version = publish_mean()
    text = (registry.version_dir("demo", version) / "manifest.json").read_text()
    assert json.loads(text)["version"] == version and text.endswith("\n")
