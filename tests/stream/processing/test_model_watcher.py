"""Model start-up and hot reload against real registry directories, faults included."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.fixtures.registry import FAULTS, Published, corrupt_weights, manifest, point_alias
from tripwire.core.errors import ModelLoadError
from tripwire.core.registry import load_scorer
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.model_watcher import ModelWatcher, load_initial
from tripwire.training.detectors import Detector, detector_class
from tripwire.training.registry import Registry


def sample(metrics: Metrics, metric: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def served(registry_factory: Callable[..., Published]) -> Published:
    return registry_factory()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def watcher(served: Published, metrics: Metrics, clock: Clock) -> ModelWatcher:
    scorer = load_initial(str(served.root), f"{served.name}@production")
    return ModelWatcher(
        str(served.root), served.name, "production", scorer, metrics, retry_after=60, clock=clock
    )


def test_start_sets_model_metrics(
    watcher: ModelWatcher, metrics: Metrics, served: Published
) -> None:
    assert sample(metrics, "tripwire_model_info", name="demo", version=served.version) == 1
    assert sample(metrics, "tripwire_threshold") == pytest.approx(served.threshold)
    assert watcher.check() is None  # alias unchanged: nothing to do


def test_new_version_is_swapped_in(
    watcher: ModelWatcher,
    metrics: Metrics,
    served: Published,
    registry_factory: Callable[..., Published],
) -> None:
    new = registry_factory(root=served.root, seed=1, threshold=5.0)
    assert watcher.check() == "success"
    assert watcher.current.version == new.version != served.version
    assert watcher.current.threshold == 5.0
    assert sample(metrics, "tripwire_model_reloads_total", result="success") == 1
    assert sample(metrics, "tripwire_model_info", name="demo", version=new.version) == 1
    assert sample(metrics, "tripwire_model_info", name="demo", version=served.version) == 0
    assert sample(metrics, "tripwire_threshold") == 5.0


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("missing version", "no version 9"),
        ("half-written", "weights.safetensors"),
        ("sha256 mismatch", "sha256"),
        ("newer schema", "newer"),
        ("feature count", "feature count 6 != serving model's 8"),
        ("feature names", "feature names differ"),
    ],
)
def test_broken_versions_are_refused_and_the_old_one_keeps_serving(
    fault: str,
    why: str,
    watcher: ModelWatcher,
    metrics: Metrics,
    served: Published,
    registry_factory: Callable[..., Published],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish = functools.partial(registry_factory, root=served.root, promote=None)
    if fault == "missing version":
        point_alias(served, "9")
    elif fault == "feature count":
        point_alias(served, publish(n_features=6).version)
    elif fault == "feature names":
        point_alias(served, publish(feature_names=[f"g{i}" for i in range(8)]).version)
    else:
        bad = publish(seed=1)
        FAULTS[fault](bad)
        point_alias(served, bad.version)
    with caplog.at_level(logging.ERROR, logger="tripwire.stream.processing.model_watcher"):
        assert watcher.check() == "failure"
    assert watcher.current.version == served.version
    assert sample(metrics, "tripwire_model_reloads_total", result="failure") == 1
    assert sample(metrics, "tripwire_model_info", name="demo", version=served.version) == 1
    assert why in caplog.text and "still serving version" in caplog.text


def test_refused_version_is_retried_after_a_while(
    watcher: ModelWatcher, metrics: Metrics, served: Published, clock: Clock,
    registry_factory: Callable[..., Published],
) -> None:  # fmt: skip
    bad = registry_factory(root=served.root, seed=1, promote=None)
    weights = bad.registry.version_dir(bad.name, bad.version) / "weights.safetensors"
    good_bytes = weights.read_bytes()
    corrupt_weights(bad)
    point_alias(served, bad.version)
    assert watcher.check() == "failure"
    clock.t = 30.0
    assert watcher.check() is None  # not hammering a broken version
    weights.write_bytes(good_bytes)  # repaired
    clock.t = 61.0
    assert watcher.check() == "success" and watcher.current.version == bad.version
    assert sample(metrics, "tripwire_model_reloads_total", result="failure") == 1


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("garbage JSON", "cannot be read: JSONDecodeError"),
        ("not an alias record", "is malformed: expected version and history"),
        ("newer alias schema", "written by a newer Tripwire"),
        ("alias file removed", "the alias is unset"),
        ("alias file is a symlink", "is a symlink (to "),
    ],
)
def test_every_unreadable_alias_counts_and_logs_a_failed_reload(
    fault: str,
    why: str,
    watcher: ModelWatcher,
    metrics: Metrics,
    served: Published,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """Issue 11 §4: on main a garbage alias was neither counted nor logged as a failure."""
    path = served.registry.alias_path(served.name, "production")
    good = path.read_bytes()
    if fault == "garbage JSON":
        path.write_text("{not json")
    elif fault == "not an alias record":
        path.write_text('{"version": 2}')
    elif fault == "newer alias schema":
        path.write_text('{"schema_version": 99, "version": "1", "history": []}')
    elif fault == "alias file removed":
        path.unlink()
    else:
        outside = tmp_path / "outside.json"
        outside.write_bytes(good)
        path.unlink()
        path.symlink_to(outside)
    with caplog.at_level(logging.ERROR, logger="tripwire.stream.processing.model_watcher"):
        assert watcher.check() == "failure"
        assert watcher.check() is None  # the same failure is not counted on every poll
    assert watcher.current.version == served.version
    assert sample(metrics, "tripwire_model_reloads_total", result="failure") == 1
    (line,) = caplog.messages
    assert why in line and line.endswith(f"still serving version {served.version}"), line
    clock.t = 61.0  # still broken a retry period later: counted again, so the alert stays on
    assert watcher.check() == "failure"
    assert sample(metrics, "tripwire_model_reloads_total", result="failure") == 2
    path.unlink(missing_ok=True)
    path.write_bytes(good)  # repaired
    assert watcher.check() is None and watcher.current.version == served.version


def test_any_exception_while_loading_counts_as_a_failed_reload(
    served: Published,
    metrics: Metrics,
    registry_factory: Callable[..., Published],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_loader(root: str, ref: str) -> Any:
        raise MemoryError("no room")

    scorer = load_initial(str(served.root), served.name)
    watcher = ModelWatcher(
        str(served.root), served.name, "production", scorer, metrics, loader=broken_loader
    )
    registry_factory(root=served.root, seed=1)  # promoted: the alias moves
    with caplog.at_level(logging.ERROR, logger="tripwire.stream.processing.model_watcher"):
        assert watcher.check() == "failure"
    assert sample(metrics, "tripwire_model_reloads_total", result="failure") == 1
    assert "MemoryError: no room" in caplog.text and "still serving version 1" in caplog.text


class _BatchDependent(Detector):
    """A real (tiny) detector whose score of a row depends on its batch."""

    kind = "test-batch-dependent"
    batch_independent = False

    def get_params(self) -> dict[str, Any]:
        return {}

    def fit(self, X: np.ndarray) -> Self:
        return self

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return np.abs(X - X.mean(axis=0)).sum(axis=1).astype(np.float64), None

    def save(self, directory: Path) -> list[str]:
        (directory / "none.json").write_text("{}")
        return ["none.json"]

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        return cls()


def _lookup(kind: str) -> type[Detector]:
    return _BatchDependent if kind == _BatchDependent.kind else detector_class(kind)


def test_batch_dependent_detectors_are_refused_at_start_and_on_reload(
    tmp_path: Path, watcher: ModelWatcher, served: Published
) -> None:
    loader = functools.partial(load_scorer, detector_class=_lookup)
    reg = Registry(tmp_path / "reg")
    det = _BatchDependent()
    v = reg.publish("bd", det.save, manifest(det, [f"f{i}" for i in range(8)], 1.0))
    reg.promote("bd", "production", v)
    with pytest.raises(ModelLoadError, match="not batch independent"):
        load_initial(str(reg.root), "bd", loader)

    served_reg = served.registry
    v2 = served_reg.publish(served.name, det.save, manifest(det, list(served.feature_names), 1.0))
    point_alias(served, v2)
    watcher._loader = loader
    assert watcher.check() == "failure" and watcher.current.version == served.version


def test_start_refuses_a_model_that_cannot_load(served: Published) -> None:
    with pytest.raises(ModelLoadError, match="no alias 'staging'"):
        load_initial(str(served.root), f"{served.name}@staging")
    corrupt_weights(served)
    with pytest.raises(ModelLoadError, match="sha256"):
        load_initial(str(served.root), served.name)
