"""train(): honest splits, calibration, evaluation in row order, publishing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tripwire.core.config import load_env
from tripwire.core.errors import ConfigError, DataError
from tripwire.core.registry import load_scorer
from tripwire.training.data import Dataset, load_data
from tripwire.training.evaluate import evaluate
from tripwire.training.pipeline import split_dataset, train
from tripwire.training.registry import Registry
from tripwire.training.settings import TrainSettings


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tracked(n_normal: int, n_anom: int, labelled: bool = True) -> Dataset:
    """Rows whose only feature is their row number, anomalies spread through the file."""
    n = n_normal + n_anom
    y = np.zeros(n, np.int8)
    y[np.random.default_rng(0).choice(n, n_anom, replace=False)] = 1
    X = np.arange(n, dtype=np.float32).reshape(-1, 1)
    return Dataset(X, y if labelled else None, None, ("row",), "mem", "0" * 64)


@pytest.fixture
def labelled_npz(tmp_path: Path) -> Path:
    """Normal rows near a 2-D plane in 8-D, anomalies scattered: an AE separates them."""
    rng = np.random.default_rng(0)
    n, n_anom = 600, 100
    basis = rng.normal(size=(2, 8))
    normal = rng.normal(size=(n, 2)) @ basis + 0.1 * rng.normal(size=(n, 8))
    anomalies = rng.uniform(-6, 6, size=(n_anom, 8))
    X = np.vstack([normal, anomalies]).astype(np.float32)
    y = np.r_[np.zeros(n), np.ones(n_anom)].astype(np.int8)
    order = rng.permutation(len(X))
    path = tmp_path / "labelled.npz"
    np.savez(path, X=X[order], y=y[order])
    return path


def settings_for(tmp_path: Path, data: Path, **kw: object) -> TrainSettings:
    base = TrainSettings(
        data=str(data), registry=str(tmp_path / "reg"), model="ae", epochs=15, seed=0
    )
    return replace(base, **kw)  # type: ignore[arg-type]


# -- splitting -------------------------------------------------------------------


def test_split_keeps_anomalies_out_of_training_and_test_out_of_everything() -> None:
    ds = tracked(800, 200)
    assert ds.y is not None
    s = split_dataset(ds, test_size=0.2, calibration_size=0.2, seed=3)
    rows = {k: set(v[:, 0].astype(int)) for k, v in
            [("train", s.train), ("cal", s.calibration), ("val", s.val_anomalies)]}  # fmt: skip
    assert s.test_X is not None and s.test_y is not None and s.test_index is not None
    rows["test"] = set(s.test_X[:, 0].astype(int))
    normal, anomalous = set(np.flatnonzero(ds.y == 0)), set(np.flatnonzero(ds.y == 1))
    assert rows["train"] <= normal and rows["cal"] <= normal and rows["val"] <= anomalous
    for a in rows:
        for b in rows:
            assert a == b or not rows[a] & rows[b], (a, b)
    assert set().union(*rows.values()) == set(range(1000))
    assert (len(rows["train"]), len(rows["cal"]), len(rows["val"]), len(rows["test"])) == (
        480, 160, 160, 200,
    )  # fmt: skip
    # the test split keeps file order and its own labels
    assert np.all(np.diff(s.test_index) > 0)
    np.testing.assert_array_equal(s.test_X[:, 0], s.test_index)
    np.testing.assert_array_equal(s.test_y, ds.y[s.test_index])
    again = split_dataset(ds, 0.2, 0.2, seed=3)
    np.testing.assert_array_equal(again.train, s.train)
    assert not np.array_equal(split_dataset(ds, 0.2, 0.2, seed=4).train, s.train)


def test_unlabelled_data_has_no_test_split() -> None:
    s = split_dataset(tracked(100, 0, labelled=False), 0.2, 0.25, seed=0)
    assert s.test_X is None and s.test_y is None and len(s.val_anomalies) == 0
    assert (len(s.train), len(s.calibration)) == (75, 25)


def test_too_few_rows_is_a_data_error() -> None:
    with pytest.raises(DataError, match="too few normal rows"):
        split_dataset(tracked(2, 0), 0.2, 0.2, seed=0)


# -- settings --------------------------------------------------------------------


def test_demo_defaults_to_f1_unless_a_threshold_is_given() -> None:
    assert TrainSettings(demo=True).threshold_spec() == "f1"
    assert TrainSettings(data="x.csv").threshold_spec() == "fpr:0.01"
    assert TrainSettings(demo=True, threshold="fpr:0.05").threshold_spec() == "fpr:0.05"
    env = load_env(TrainSettings, {"TRIPWIRE_DEMO": "1", "TRIPWIRE_THRESHOLD": "pot:1e-3"})
    assert env.threshold_spec() == "pot:1e-3"


def test_detector_params_pass_only_what_was_given() -> None:
    s = TrainSettings(data="x", epochs=3, hidden="16,4", params='{"dropout": 0.1}')
    assert s.detector_params() == {"epochs": 3, "hidden_sizes": "16,4", "dropout": 0.1}
    assert TrainSettings(data="x").detector_params() == {}
    with pytest.raises(ConfigError, match="JSON"):
        TrainSettings(data="x", params="{oops").detector_params()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"data": None}, "exactly one of"),
        ({"demo": True}, "exactly one of"),
        ({"test_size": 0.0}, "--test-size"),
        ({"calibration_size": 0.5, "test_size": 0.5}, "too few training rows"),
        ({"name": "bad name!"}, "--name"),
        ({"promote": "latest"}, "--promote"),
        ({"threshold": "fpr:2"}, r"in \(0, 1\)"),
    ],
)
def test_bad_settings_fail_before_anything_is_loaded(tmp_path: Path, kw: dict, message: str):
    s = replace(settings_for(tmp_path, tmp_path / "does-not-exist.csv"), **kw)
    with pytest.raises(ConfigError, match=message):
        train(s)


# -- training end to end -----------------------------------------------------------


def test_published_metrics_are_the_published_models_scores_on_the_test_rows(
    tmp_path: Path, labelled_npz: Path
) -> None:
    result = train(settings_for(tmp_path, labelled_npz, threshold="f1", promote="staging"))
    ds = load_data(labelled_npz)
    assert ds.y is not None and result.metrics is not None
    idx = result.splits.test_index
    assert idx is not None
    scorer = load_scorer(tmp_path / "reg", f"{result.name}@staging")
    scores = scorer.score(ds.X[idx]).scores
    np.testing.assert_allclose(scores, result.test_scores, rtol=1e-6)
    recomputed = evaluate(scores, ds.y[idx], scorer.threshold)
    assert recomputed == result.metrics
    assert result.metrics["recall"] > 0.9 and result.metrics["roc_auc"] > 0.95
    # Regression (tutorial bug): scores in another order than the labels give other metrics.
    shuffled = evaluate(np.random.default_rng(0).permutation(scores), ds.y[idx], scorer.threshold)
    assert shuffled["roc_auc"] < 0.8 and shuffled["f1"] < result.metrics["f1"]

    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["metrics"] == result.metrics
    assert manifest["threshold"] == {"method": "f1", "params": {}, "value": scorer.threshold}
    assert manifest["training_data"]["sha256"] == ds.sha256
    assert manifest["training_data"]["rows"] == result.rows
    assert result.rows == {"train": 360, "calibration": 120, "validation_anomalies": 80,
                           "test": 140}  # fmt: skip
    assert manifest["detector"]["kind"] == "ae" and manifest["detector"]["params"]["epochs"] == 15
    assert manifest["features"] == {"count": 8, "names": [f"f{i}" for i in range(8)]}
    assert result.plot == result.path / "scores.png" and "scores.png" in manifest["artifacts"]
    assert Registry(tmp_path / "reg").alias_version("default", "staging") == result.version


def test_unlabelled_data_publishes_without_metrics(tmp_path: Path, labelled_npz: Path) -> None:
    X = np.load(labelled_npz)["X"]
    path = tmp_path / "plain.npz"
    np.savez(path, X=X)
    plot = tmp_path / "out" / "plot.png"
    result = train(settings_for(tmp_path, path, name="plain", plot=str(plot)))
    assert result.metrics is None and result.test_scores is None
    assert result.rows["test"] == 0 and result.rows["train"] + result.rows["calibration"] == 700
    assert result.threshold["method"] == "fpr" and result.plot == plot and plot.is_file()
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["metrics"] is None and "scores.png" not in manifest["artifacts"]
    assert result.version == "1"


def test_f1_without_labels_fails_and_publishes_nothing(tmp_path: Path, labelled_npz: Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, X=np.load(labelled_npz)["X"])
    with pytest.raises(ConfigError, match="labelled anomalies"):
        train(settings_for(tmp_path, path, threshold="f1", epochs=2, plot="none"))
    assert not (tmp_path / "reg").exists()


def test_fpr_calibration_pools_held_out_and_leave_one_out_scores(
    tmp_path: Path, labelled_npz: Path
) -> None:
    """The kNN's leave-one-out scores of its training rows join the held-out split:
    the threshold rests on both, the manifest says how many, and it is the quantile
    of exactly those scores."""
    settings = settings_for(tmp_path, labelled_npz, model="ensemble", threshold="fpr:0.05")
    result = train(replace(settings, epochs=None))
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["threshold"]["rows"] == result.rows["calibration"] + result.rows["train"]
    ensemble = load_scorer(tmp_path / "reg", f"{result.name}@1").detector
    cal = ensemble.score(result.splits.calibration)
    refit = type(ensemble)(**ensemble.get_params()).fit(result.splits.train)
    loo = refit.held_out_scores()
    assert loo is not None and len(loo) == result.rows["train"]
    expected = np.quantile(np.r_[cal, loo], 0.95, method="higher")
    assert manifest["threshold"]["value"] == pytest.approx(expected, rel=1e-12)


def test_a_sparse_reference_round_trips_through_the_registry_and_calibrates_on_held_out_rows(
    tmp_path: Path, labelled_npz: Path
) -> None:
    """``reference="sparse"`` with ``scale_k``: the manifest records both, the loaded
    model is the refitted one (same rows, same effective k, same scores), and the
    threshold rests on the calibration split plus the held-out training rows."""
    params = '{"max_reference": 100, "reference": "sparse", "scale_k": true}'
    settings = settings_for(tmp_path, labelled_npz, model="ensemble", threshold="fpr:0.05")
    result = train(replace(settings, epochs=None, params=params))
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["detector"]["params"]["reference"] == "sparse"
    assert manifest["detector"]["params"]["scale_k"] is True
    assert manifest["threshold"]["rows"] == result.rows["calibration"] + 100
    loaded = load_scorer(tmp_path / "reg", f"{result.name}@1").detector
    refit = type(loaded)(**loaded.get_params()).fit(result.splits.train)
    assert [m.k_ for m in loaded.members_] == [1, 1]  # round(5 x 100 / 360)
    for a, b in zip(loaded.members_, refit.members_, strict=True):
        np.testing.assert_array_equal(a.reference_, b.reference_)
    X = result.splits.calibration
    np.testing.assert_allclose(loaded.score(X), refit.score(X), rtol=1e-12)


def test_few_calibration_rows_are_recorded_and_warned_about(
    tmp_path: Path, labelled_npz: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A detector without leave-one-out scores calibrates on the held-out split alone;
    120 rows at fpr:0.01 is 1.2 expected exceedances: a warning says so."""
    with caplog.at_level("WARNING", logger="tripwire.training.thresholds.fpr"):
        result = train(settings_for(tmp_path, labelled_npz, threshold="fpr:0.01", epochs=2))
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["threshold"]["rows"] == result.rows["calibration"] == 120
    assert any("rests on 120 out-of-sample normal scores" in r.message for r in caplog.records)
