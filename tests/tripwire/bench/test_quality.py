"""The quality benchmark end to end, and the protocol it promises."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from tripwire.bench import cli
from tripwire.bench.quality import QualitySettings, run_quality
from tripwire.core.errors import ConfigError
from tripwire.training.data import load_data
from tripwire.training.pipeline import split_dataset, train
from tripwire.training.settings import TrainSettings
from tripwire.training.thresholds import CalibrationData, parse_threshold

METRICS = ("roc_auc", "pr_auc", "fpr", "recall")


def _synthetic(path: Path, seed: int, n_normal: int, n_anomaly: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n_normal, d))
    anomalies = rng.normal(loc=3.0, size=(n_anomaly, d))
    X = np.vstack([normal, anomalies]).astype(np.float32)
    y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int32)
    order = rng.permutation(y.size)
    np.savez(path, X=X[order], y=y[order])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    _synthetic(d / "1_blobs.npz", seed=1, n_normal=2600, n_anomaly=40, d=4)
    _synthetic(d / "2_wide.npz", seed=2, n_normal=300, n_anomaly=15, d=12)
    return d


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tripwire")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_writes_markdown_and_json(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = _parser().parse_args(
        ["bench", "quality", "--datasets", str(folder), "--seeds", "0",
         "--detectors", "IForest,ECOD", "--out", str(out)]
    )  # fmt: skip
    assert args.func(args) == 0

    payload = json.loads((out / "quality.json").read_text())
    assert set(payload) == {"meta", "datasets", "runs", "summary"}
    assert list(payload["datasets"]) == ["1_blobs", "2_wide"]
    assert payload["meta"]["settings"]["detectors"] == ["IForest", "ECOD"]
    runs = payload["runs"]
    assert {(r["dataset"], r["detector"], r["seed"]) for r in runs} == {
        (d, det, 0) for d in ("1_blobs", "2_wide") for det in ("IForest", "ECOD")
    }
    for r in runs:
        assert r["error"] is None
        for m in METRICS:
            assert 0.0 <= r[m] <= 1.0, (r["dataset"], r["detector"], m)
        assert r["fit_seconds"] >= 0 and r["score_seconds"] >= 0
        # a PyOD baseline has no leave-one-out scores: its threshold rests on the split
        assert r["threshold_rows"] == r["n_calibration"] > 0
        info = payload["datasets"][r["dataset"]]
        assert r["n_test_anomaly"] == info["anomalies"]
        assert (
            r["n_fit"] + r["n_calibration"] + r["n_test_normal"] == info["rows"] - info["anomalies"]
        )
    # Blobs three standard deviations apart: any working detector separates them.
    assert all(r["roc_auc"] > 0.9 for r in runs)
    avg = payload["summary"]["averaged"]
    assert set(avg) == {"IForest", "ECOD"} and avg["ECOD"]["datasets_ok"] == 2

    md = (out / "quality.md").read_text()
    assert md == capsys.readouterr().out
    assert "| IForest (PyOD) |" in md and "| 2_wide |" in md
    assert "### Averaged over datasets" in md and "### Threshold calibration" in md
    # only 1_blobs has >= 500 normal rows in its test split (2600 * 0.2 = 520)
    assert "test split (1_blobs)" in md


def test_datasets_folder_from_env(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPWIRE_BENCH_DATASETS", str(folder))
    monkeypatch.setenv("TRIPWIRE_SEEDS", "9")  # not the benchmark's variable
    monkeypatch.setenv("TRIPWIRE_BENCH_SEEDS", "3,4")
    args = _parser().parse_args(["bench", "quality"])
    assert args.datasets == str(folder) and args.seeds == ("3", "4")


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        QualitySettings(seeds=("zero",))
    with pytest.raises(ConfigError, match="test_size"):
        QualitySettings(test_size=1.0)
    with pytest.raises(ConfigError, match="too few training rows"):
        QualitySettings(test_size=0.5, calibration_size=0.4)


def test_split_sizes_default_to_tripwire_trains() -> None:
    train = TrainSettings()
    bench = QualitySettings()
    assert (bench.test_size, bench.calibration_size) == (train.test_size, train.calibration_size)


class Spy:
    """Scores each row by a fixed hash of its id (column 0); records what it saw.

    With ``held_out``, it offers "leave-one-out" scores of its training rows (the
    hash of their ids + 50,000), as the kNN does.
    """

    seen: dict[str, list[np.ndarray]]

    def __init__(self, fail: bool = False, nan: bool = False, held_out: bool = False) -> None:
        self.fail, self.nan, self.held_out = fail, nan, held_out
        self.seen = {"fit": [], "score": []}

    def fit(self, X: np.ndarray) -> Spy:
        if self.fail:
            raise RuntimeError("boom")
        self.seen["fit"].append(X[:, 0].astype(int))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        ids = X[:, 0].astype(int)
        self.seen["score"].append(ids)
        scores = _hash(ids)
        return np.where(ids % 7 == 0, np.nan, scores) if self.nan else scores

    def held_out_scores(self) -> np.ndarray | None:
        return _hash(self.seen["fit"][-1] + 50_000) if self.held_out else None


def _hash(ids: np.ndarray) -> np.ndarray:
    return np.random.default_rng(12345).random(100_000)[ids]


def _ids(rows: np.ndarray) -> np.ndarray:
    return np.sort(rows[:, 0].astype(int))


@pytest.mark.parametrize("held_out", [False, True])
def test_rows_and_threshold_are_tripwire_trains(tmp_path: Path, held_out: bool) -> None:
    n = 3000
    y = (np.random.default_rng(0).random(n) < 0.1).astype(np.int8)
    X = np.c_[np.arange(n), np.zeros(n)]
    np.savez(tmp_path / "ids.npz", X=X, y=y)
    spies: list[Spy] = []

    def factory(name: str, seed: int) -> Spy:
        spies.append(Spy(held_out=held_out))
        return spies[-1]

    settings = QualitySettings(datasets=str(tmp_path), detectors=("spy",), seeds=("5",))
    (rec,) = run_quality(settings, factory=factory).runs
    # what tripwire train --seed 5 (default sizes) splits the same file into
    splits = split_dataset(load_data(tmp_path / "ids.npz"), 0.2, 0.2, 5)
    (spy,) = spies
    assert np.array_equal(np.sort(spy.seen["fit"][0]), _ids(splits.train))
    # the threshold: tripwire train's calibration, the held-out split pooled with the
    # detector's held-out scores when it has them
    normal = _hash(_ids(splits.calibration))
    if held_out:
        normal = np.r_[normal, _hash(_ids(splits.train) + 50_000)]
    threshold = parse_threshold("fpr:0.01").fit(CalibrationData(np.empty(0), normal)).value
    assert rec.threshold == threshold and rec.threshold_rows == normal.size
    # tested on the test split's normal rows and every anomaly
    assert splits.test_y is not None
    test_normal = _ids(splits.test_X[splits.test_y == 0])
    evaluated = np.sort(np.r_[_ids(splits.test_X), _ids(splits.val_anomalies)])
    assert any(np.array_equal(np.sort(s), evaluated) for s in spy.seen["score"])
    assert rec.fpr == np.mean(_hash(test_normal) > threshold)
    assert rec.recall == np.mean(_hash(np.flatnonzero(y == 1)) > threshold)
    # The check can fail: over all normal rows the rate is different.
    assert rec.fpr != np.mean(_hash(np.flatnonzero(y == 0)) > threshold)
    assert rec.n_test_normal == test_normal.size and rec.n_test_anomaly == y.sum()
    # then the scoring rate: batches of 256 evaluated rows, nothing else
    last = spy.seen["score"][-1]
    assert last.size == 256 and np.isin(last, evaluated).all()
    assert rec.score_rate is not None and rec.score_rate > 0


@pytest.mark.parametrize("model", ["knn", "ensemble"])
def test_the_threshold_is_what_tripwire_train_publishes(tmp_path: Path, model: str) -> None:
    """Same file, seed and split sizes: the bench's threshold is the trained model's."""
    data = tmp_path / "data"
    data.mkdir()
    _synthetic(data / "blobs.npz", seed=3, n_normal=1500, n_anomaly=30, d=5)
    settings = QualitySettings(datasets=str(data), detectors=(model,), seeds=("2",),
                               rate_batch=0)  # fmt: skip
    (rec,) = run_quality(settings).runs
    assert rec.ok, rec.error
    trained = train(TrainSettings(data=str(data / "blobs.npz"), registry=str(tmp_path / "reg"),
                                  model=model, seed=2, plot="none"))  # fmt: skip
    assert trained.threshold["method"] == "fpr" and trained.threshold["params"]["rate"] == 0.01
    assert rec.threshold == trained.threshold["value"]
    # the pooled rows: more than the held-out split (the leave-one-out scores)
    assert rec.threshold_rows == trained.threshold["rows"] > rec.n_calibration
    assert trained.metrics is not None and rec.fpr == trained.metrics["fpr"]


def test_a_failing_detector_is_recorded_not_raised(folder: Path, tmp_path: Path) -> None:
    def factory(name: str, seed: int) -> Spy:
        return Spy(fail=name == "broken", nan=name == "nan")

    X = np.c_[np.arange(400), np.zeros(400)]
    np.savez(folder / "3_ids.npz", X=X, y=np.r_[np.zeros(380), np.ones(20)])
    settings = QualitySettings(
        datasets=str(folder), datasets_glob="3_*.npz", detectors=("broken", "nan", "ok"),
        seeds=("0",),
    )  # fmt: skip
    runs = {r.detector: r for r in run_quality(settings, factory=factory).runs}
    assert runs["broken"].error == "RuntimeError: boom" and runs["broken"].roc_auc is None
    # tripwire train's calibration refuses the NaN scores, as it would for a user
    assert runs["nan"].error is not None and "scores contain NaN/inf" in runs["nan"].error
    assert runs["ok"].ok and runs["ok"].roc_auc is not None


def test_a_bad_dataset_is_skipped_with_its_error(folder: Path) -> None:
    np.savez(folder / "0_bad.npz", X=np.zeros((5, 2)))
    settings = QualitySettings(datasets=str(folder), detectors=("ECOD",), seeds=("0",))
    result = run_quality(settings)
    assert "missing key" in result.datasets["0_bad"]["error"]
    assert {r.dataset for r in result.runs} == {"1_blobs", "2_wide"}
