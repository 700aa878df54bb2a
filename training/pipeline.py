"""``train(settings)``: load, split, fit, calibrate, evaluate, publish.

Splitting is honest, as the founding design intended and its tutorial did not do:

* labelled data: anomalies never reach the detector. Normal rows are split into
  train / calibration (held out, for ``fpr`` and ``pot``) / test; anomalies into
  validation (for ``f1``) / test. The test split is used for nothing but the
  final evaluation and is scored in its original row order, against its own
  labels (the tutorial scored a shuffled loader against unshuffled labels).
* unlabelled data: every row is assumed normal and split into train /
  calibration; there is no evaluation (``metrics`` is ``None``).
* ``--demo``: PyOD's generated train set is split as labelled data without a test
  part, and the generated test set is the test split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.detector import Detector
from tripwire.core.drift.reference import DriftReference, reference_manifest, save_reference
from tripwire.core.errors import ConfigError, DataError
from tripwire.core.kinds import detector_class
from tripwire.core.registry.manifest import is_alias_name, is_model_name
from tripwire.core.scorer import Scorer
from tripwire.training.data import Dataset, demo_data, load_data
from tripwire.training.detectors import make_detector
from tripwire.training.evaluate import evaluate, plot_scores
from tripwire.training.registry import Registry
from tripwire.training.settings import TrainSettings
from tripwire.training.thresholds import CalibrationData, Threshold, parse_threshold

log = logging.getLogger(__name__)

PLOT_FILE = "scores.png"
#: A detector needs a few rows to learn anything; fewer is an input error.
MIN_TRAIN_ROWS = 2


@dataclass(frozen=True)
class Splits:
    """Rows for each stage; ``test_*`` are None when the data has no labels.

    Attributes
    ----------
    train : ndarray (n_train, d)
        Normal rows the detector is fitted on.
    calibration : ndarray (n_cal, d)
        Held-out normal rows for threshold calibration.
    val_anomalies : ndarray (n_val, d)
        Labelled anomalies for the ``f1`` threshold (never trained on).
    test_X, test_y : ndarray (n_test, d) and (n_test,), or None
        The evaluation split in original row order.
    test_index : ndarray (n_test,) or None
        Row numbers of the test rows in the source dataset.
    """

    train: np.ndarray
    calibration: np.ndarray
    val_anomalies: np.ndarray
    test_X: np.ndarray | None
    test_y: np.ndarray | None
    test_index: np.ndarray | None
    feature_names: tuple[str, ...]
    source: str
    sha256: str

    def rows(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "calibration": len(self.calibration),
            "validation_anomalies": len(self.val_anomalies),
            "test": 0 if self.test_X is None else len(self.test_X),
        }


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` published, and the test scores it evaluated."""

    name: str
    version: str
    path: Path
    detector: str
    threshold: dict[str, Any]
    metrics: dict[str, Any] | None
    rows: dict[str, int]
    plot: Path | None
    promoted: str | None
    test_scores: np.ndarray | None
    splits: Splits


def split_dataset(ds: Dataset, test_size: float, calibration_size: float, seed: int) -> Splits:
    """Split ``ds`` as the module docstring describes (``test_size=0``: no test split)."""
    rng = np.random.default_rng(seed)
    y = ds.y if ds.y is not None else np.zeros(ds.n_rows, dtype=np.int8)
    normal = rng.permutation(np.flatnonzero(y == 0))
    anomalies = rng.permutation(np.flatnonzero(y == 1))
    if ds.y is None:
        test_size = 0.0  # unlabelled: nothing to evaluate against, keep every row
    n_test_normal = int(round(test_size * len(normal)))
    n_test_anom = int(round(test_size * len(anomalies)))
    n_cal = max(1, int(round(calibration_size * len(normal))))
    cal_idx = np.sort(normal[n_test_normal : n_test_normal + n_cal])
    train_idx = np.sort(normal[n_test_normal + n_cal :])
    if len(train_idx) < MIN_TRAIN_ROWS or len(cal_idx) < 1:
        raise DataError(
            ds.source,
            f"too few normal rows ({len(normal)}) to train and calibrate "
            f"(need at least {MIN_TRAIN_ROWS + 1 + n_test_normal} with these split sizes)",
        )
    test_X = test_y = test_idx = None
    if ds.y is not None and test_size > 0:
        test_idx = np.sort(np.concatenate([normal[:n_test_normal], anomalies[:n_test_anom]]))
        if len(test_idx) == 0:
            raise DataError(ds.source, "the test split is empty; add rows or raise --test-size")
        test_X, test_y = ds.X[test_idx], ds.y[test_idx]
    return Splits(
        train=ds.X[train_idx],
        calibration=ds.X[cal_idx],
        val_anomalies=ds.X[np.sort(anomalies[n_test_anom:])],
        test_X=test_X,
        test_y=test_y,
        test_index=test_idx,
        feature_names=ds.feature_names,
        source=ds.source,
        sha256=ds.sha256,
    )


def load_splits(settings: TrainSettings) -> Splits:
    """Read the data the settings name and split it."""
    if settings.demo:
        train_ds, test_ds = demo_data(settings.seed)
        s = split_dataset(train_ds, 0.0, settings.calibration_size, settings.seed)
        assert test_ds.y is not None
        return Splits(
            s.train,
            s.calibration,
            s.val_anomalies,
            test_ds.X,
            test_ds.y,
            np.arange(test_ds.n_rows),
            s.feature_names,
            train_ds.source.removesuffix(":train"),
            train_ds.sha256,
        )
    assert settings.data is not None
    ds = load_data(settings.data, settings.label_col, settings.feature_cols or None)
    if ds.y is None:
        log.info("%s has no labels: all rows treated as normal, no evaluation", ds.source)
    return split_dataset(ds, settings.test_size, settings.calibration_size, settings.seed)


def calibration_data(detector: Detector, splits: Splits) -> CalibrationData:
    """Scores of the training, out-of-sample normal and labelled validation rows.

    The normal scores are the held-out split's, pooled with the detector's scores
    of training rows computed without them (the kNN's leave-one-out scores, or
    the rows a reduced reference held out), so a
    quantile rests on as many rows as the data allow; ``f1`` uses the split only.
    """
    normal = detector.score(splits.calibration)
    held_out = detector.held_out_scores()
    pooled = normal if held_out is None else np.concatenate([normal, held_out])
    log.info(
        "calibrating on %d out-of-sample normal scores (%d of the calibration split, "
        "%d of the detector's own)",
        len(pooled), len(normal), len(pooled) - len(normal),
    )  # fmt: skip
    val_scores = val_labels = None
    if len(splits.val_anomalies):
        val_scores = np.concatenate([normal, detector.score(splits.val_anomalies)])
        val_labels = np.concatenate(
            [np.zeros(len(normal), np.int8), np.ones(len(splits.val_anomalies), np.int8)]
        )
    return CalibrationData(detector.score(splits.train), pooled, val_scores, val_labels)


def train(settings: TrainSettings) -> TrainResult:
    """Train, calibrate, evaluate and publish one model version.

    Raises
    ------
    TripwireError
        ``ConfigError``/``DataError``/``DetectorError``/``RegistryError`` with a
        message for the user; nothing is published on failure.
    """
    _check(settings)
    threshold = parse_threshold(settings.threshold_spec())  # bad spec: fail before training
    splits = load_splits(settings)
    log.info(
        "data %s: rows %s, %d features", splits.source, splits.rows(), len(splits.feature_names)
    )
    detector = make_detector(settings.model, seed=settings.seed, **settings.detector_params())
    log.info("fitting %s on %d normal rows", settings.model, len(splits.train))
    detector.fit(splits.train)
    calibration = calibration_data(detector, splits)
    threshold.fit(calibration)
    log.info("threshold %s = %.6g", threshold.spec(), threshold.value)
    reference = DriftReference.build(
        splits.train, calibration.normal_scores, threshold.value, seed=settings.seed
    )
    metrics, test_scores = None, None
    if splits.test_X is not None and splits.test_y is not None:
        scorer = Scorer("unpublished", "0", detector, threshold.value, splits.feature_names)
        test_scores = scorer.score(splits.test_X).scores
        metrics = evaluate(test_scores, splits.test_y, threshold.value)
    return _publish(settings, detector, threshold, splits, metrics, test_scores, reference)


def _check(settings: TrainSettings) -> None:
    """Options that would only fail at publish time fail before training instead."""
    settings.validate()
    if not is_model_name(settings.model_name()):
        raise ConfigError(f"--name {settings.model_name()!r}: use letters, digits, '_', '.', '-'")
    if settings.promote is not None and not is_alias_name(settings.promote):
        raise ConfigError(f"--promote {settings.promote!r} is not a valid alias name")
    detector_class(settings.model)  # an unknown --model fails before the data loads
    settings.detector_params()  # and so does bad --params JSON


def _publish(
    settings: TrainSettings,
    detector: Detector,
    threshold: Threshold,
    splits: Splits,
    metrics: dict[str, Any] | None,
    test_scores: np.ndarray | None,
    reference: DriftReference,
) -> TrainResult:
    registry = Registry(settings.registry)
    name = settings.model_name()
    in_version = settings.plot is None
    outside = None if in_version or settings.plot == "none" else Path(str(settings.plot))

    def write_artifacts(directory: Path) -> list[str]:
        files = [*detector.save(directory), save_reference(reference, directory)]
        if in_version:
            _plot(directory / PLOT_FILE, detector, splits, test_scores, threshold.value)
            files.append(PLOT_FILE)
        return files

    manifest = {**_manifest(detector, threshold, splits, metrics), **reference_manifest(reference)}
    version = registry.publish(name, write_artifacts, manifest)
    path = registry.version_dir(name, version)
    if outside is not None:
        _plot(outside, detector, splits, test_scores, threshold.value)
    if settings.promote:
        registry.promote(name, settings.promote, version)
    return TrainResult(
        name=name,
        version=version,
        path=path,
        detector=detector.kind,
        threshold=threshold.to_dict(),
        metrics=metrics,
        rows=splits.rows(),
        plot=path / PLOT_FILE if in_version else outside,
        promoted=settings.promote,
        test_scores=test_scores,
        splits=splits,
    )


def _manifest(
    detector: Detector, threshold: Threshold, splits: Splits, metrics: dict[str, Any] | None
) -> dict[str, Any]:
    """The manifest keys the caller supplies (publish fills in the rest)."""
    return {
        "detector": {
            "kind": detector.kind,
            "params": detector.get_params(),
            "state": detector.get_state(),
        },
        "features": {"count": len(splits.feature_names), "names": list(splits.feature_names)},
        "threshold": threshold.to_dict(),
        "metrics": metrics,
        "training_data": {"source": splits.source, "sha256": splits.sha256, "rows": splits.rows()},
    }


def _plot(
    path: Path,
    detector: Detector,
    splits: Splits,
    test_scores: np.ndarray | None,
    threshold: float,
) -> None:
    """Test-split scores by label; without labels, the held-out calibration scores."""
    if test_scores is not None:
        plot_scores(path, test_scores, splits.test_y, threshold, "test split")
    else:
        plot_scores(path, detector.score(splits.calibration), None, threshold, "held-out normal")


__all__ = ["Splits", "TrainResult", "calibration_data", "load_splits", "split_dataset", "train"]
