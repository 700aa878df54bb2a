"""Detection-quality benchmark: Tripwire's detectors beside PyOD's on labelled data.

Protocol, for every ``.npz`` file (keys ``X`` and ``y``, ``y = 1`` anomaly) and
every seed:

1. the normal rows are shuffled with ``numpy.random.default_rng(seed)``;
   ``train_fraction`` (60%) of them are the training rows, the rest go to test;
2. the training rows are split again: ``calibration_fraction`` of them (25%, so
   15% of all normal rows) are held out for calibration, the others (45%) fit
   the detector. Calibration rows are never fitted on and never tested on;
3. the detector is fitted on the fit rows, then scores the calibration rows and
   the test rows (remaining normal rows + **all** anomalies) in two calls;
4. the threshold is Tripwire's ``fpr:<target>`` method (``tripwire.training.thresholds``)
   learnt from the calibration scores only, so no test row and no label touches
   it; a test row is flagged when its score is strictly above it;
5. ROC-AUC, PR-AUC (average precision), realised FPR and recall at the threshold
   are computed on the test rows; fit and test-scoring wall times are recorded;
6. the fitted detector's scoring rate: vectors/s on ``rate_batch``-row batches of
   the test rows, the median of :data:`tripwire.bench.speed.REPEATS` repeats
   (:func:`tripwire.bench.speed.scoring_rate`), so the quality/speed trade-off is
   one table.

Every (dataset, detector, seed) run is independent: an exception is recorded as
that run's error and the benchmark goes on.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tripwire.bench import common
from tripwire.bench.datasets import (
    Dataset,
    Split,
    find_datasets,
    load_dataset,
    split_rows,
)
from tripwire.bench.detectors import DEFAULT_DETECTORS, Factory, build
from tripwire.bench.speed import scoring_rate
from tripwire.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualitySettings:
    """Options of ``tripwire bench quality`` (each also a ``TRIPWIRE_BENCH_*`` env var)."""

    #: its own variables, as tripwire bench stream's
    ENV_PREFIX: ClassVar[str] = "TRIPWIRE_BENCH_"

    datasets: str = field(
        default="",
        metadata={
            "help": "folder of .npz files (keys X, y; y=1 anomaly); required",
            "metavar": "DIR",
        },
    )
    datasets_glob: str = field(
        default="*.npz", metadata={"help": "which files of the folder to use", "metavar": "GLOB"}
    )
    detectors: tuple[str, ...] = field(
        default=DEFAULT_DETECTORS,
        metadata={
            "help": "comma-separated: Tripwire specs (ae, vae, pyod:Name) and PyOD "
            "baselines by class name",
            "metavar": "LIST",
        },
    )
    seeds: tuple[str, ...] = field(
        default=("0", "1", "2"), metadata={"help": "comma-separated seeds", "metavar": "LIST"}
    )
    out: str = field(
        default="out/bench/quality",
        metadata={"help": "directory for quality.md and quality.json", "metavar": "DIR"},
    )
    target_fpr: float = field(
        default=0.01, metadata={"help": "target false-positive rate of the threshold"}
    )
    train_fraction: float = field(
        default=0.6, metadata={"help": "share of normal rows used for training + calibration"}
    )
    calibration_fraction: float = field(
        default=0.25,
        metadata={"help": "share of the training rows held out (not fitted) to set the threshold"},
    )
    torch_threads: int = field(
        default=1, metadata={"help": "torch.set_num_threads for the run (0 = leave as is)"}
    )
    rate_batch: int = field(
        default=256,
        metadata={"help": "batch size of the scoring-rate column (vectors/s, median of "
                  "repeats); 0 = not measured"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("target_fpr", "train_fraction", "calibration_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{name} must be in (0, 1), got {value}")
        if not self.detectors:
            raise ConfigError("no detectors given")
        if self.torch_threads < 0 or self.rate_batch < 0:
            raise ConfigError(
                f"torch_threads and rate_batch must be >= 0, got {self.torch_threads}, "
                f"{self.rate_batch}"
            )
        self.seed_values()

    def seed_values(self) -> list[int]:
        """``seeds`` as integers; ConfigError when one is not an integer."""
        try:
            seeds = [int(s) for s in self.seeds]
        except ValueError:
            raise ConfigError(f"seeds must be integers, got {','.join(self.seeds)}") from None
        if not seeds:
            raise ConfigError("no seeds given")
        return seeds


@dataclass
class RunRecord:
    """Raw numbers of one (dataset, detector, seed) run; metrics ``None`` on error."""

    dataset: str
    detector: str
    seed: int
    n_fit: int
    n_calibration: int
    n_test_normal: int
    n_test_anomaly: int
    error: str | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    fpr: float | None = None
    recall: float | None = None
    threshold: float | None = None
    fit_seconds: float | None = None
    score_seconds: float | None = None
    calibration_score_seconds: float | None = None
    score_rate: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class QualityResult:
    """Everything one benchmark run produced (written as quality.json)."""

    meta: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    runs: list[RunRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "datasets": self.datasets,
            "runs": [asdict(r) for r in self.runs],
        }


def evaluate_scores(y_test: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, FPR and recall of test scores (flag = score > threshold)."""
    flagged = scores > threshold
    normal = y_test == 0
    return {
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "pr_auc": float(average_precision_score(y_test, scores)),
        "fpr": float(flagged[normal].mean()),
        "recall": float(flagged[~normal].mean()),
    }


def fit_threshold(calibration_scores: np.ndarray, target_fpr: float) -> float:
    """Tripwire's ``fpr:<target>`` threshold learnt from held-out normal scores."""
    from tripwire.training.thresholds import CalibrationData, parse_threshold

    data = CalibrationData(train_scores=np.empty(0), normal_scores=calibration_scores)
    return float(parse_threshold(f"fpr:{target_fpr}").fit(data).value)


def _finite(scores: np.ndarray, n: int, what: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (n,):
        raise ValueError(f"{what}: {scores.shape[0]} scores for {n} rows")
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise ValueError(f"{what}: {bad} non-finite scores")
    return scores


def run_one(
    data: Dataset, split: Split, detector: str, seed: int, settings: QualitySettings,
    factory: Factory,
) -> RunRecord:  # fmt: skip
    """Fit, calibrate and evaluate one detector on one split; errors are recorded."""
    y_test = data.y[split.test]
    rec = RunRecord(
        data.name, detector, seed, n_fit=split.fit.size, n_calibration=split.calibration.size,
        n_test_normal=int((y_test == 0).sum()), n_test_anomaly=int(y_test.sum()),
    )  # fmt: skip
    try:
        model = factory(detector, seed)
        t0 = time.perf_counter()
        model.fit(data.X[split.fit])
        t1 = time.perf_counter()
        cal = _finite(model.score(data.X[split.calibration]), split.calibration.size, "calib")
        t2 = time.perf_counter()
        test = _finite(model.score(data.X[split.test]), split.test.size, "test")
        t3 = time.perf_counter()
        rec.threshold = fit_threshold(cal, settings.target_fpr)
        if settings.rate_batch:
            rate = scoring_rate(model.score, data.X[split.test], settings.rate_batch)
            rec.score_rate = rate.vectors_per_s
    except Exception as e:  # one detector failing on one dataset must not stop the run
        log.debug("%s %s seed=%d failed", data.name, detector, seed, exc_info=True)
        rec.error = f"{type(e).__name__}: {e}"[:500]
        return rec
    rec.fit_seconds, rec.calibration_score_seconds, rec.score_seconds = t1 - t0, t2 - t1, t3 - t2
    for key, value in evaluate_scores(y_test, test, rec.threshold).items():
        setattr(rec, key, value)
    return rec


def _log_run(rec: RunRecord, done: int, total: int) -> None:
    where = f"[{done}/{total}] {rec.dataset:<16} {rec.detector:<12} seed={rec.seed}"
    if not rec.ok:
        log.warning("%s  ERROR %s", where, rec.error)
        return
    log.info(
        "%s  roc=%.3f pr=%.3f fpr=%.2f%% recall=%.3f  fit=%.2fs score=%.2fs rate=%.0f/s",
        where, rec.roc_auc, rec.pr_auc, 100 * (rec.fpr or 0.0), rec.recall,
        rec.fit_seconds, rec.score_seconds, rec.score_rate or 0.0,
    )  # fmt: skip


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads (0 = unchanged), restored afterwards."""
    if n <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def environment(settings: QualitySettings, command: str, folder: Path) -> dict[str, Any]:
    """Run metadata: command, date, machine, versions and the protocol's parameters."""
    versions = common.package_versions(("numpy", "torch", "pyod", "scikit-learn", "tripwire"))
    return {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
        },
        "versions": versions,
        "settings": {**asdict(settings), "datasets": str(folder)},
    }


def run_quality(
    settings: QualitySettings, factory: Factory = build, command: str = ""
) -> QualityResult:
    """Run every detector on every dataset and seed; see the module docstring.

    Raises
    ------
    ConfigError
        The datasets folder is missing or holds no matching file.
    """
    if not settings.datasets:
        raise ConfigError("no datasets folder: give --datasets DIR (or TRIPWIRE_DATASETS)")
    folder = Path(settings.datasets)
    paths = find_datasets(folder, settings.datasets_glob)
    seeds = settings.seed_values()
    result = QualityResult(environment(settings, command, folder), {}, [])
    total = len(paths) * len(seeds) * len(settings.detectors)
    log.info("%d datasets x %d detectors x %d seeds from %s", len(paths),
             len(settings.detectors), len(seeds), folder)  # fmt: skip
    started = time.perf_counter()
    with torch_threads(settings.torch_threads):
        for path in paths:
            _run_dataset(path, settings, seeds, factory, result, total)
    result.meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _run_dataset(
    path: Path, settings: QualitySettings, seeds: list[int], factory: Factory,
    result: QualityResult, total: int,
) -> None:  # fmt: skip
    try:
        data = load_dataset(path)
        splits = [
            split_rows(data.y, s, settings.train_fraction, settings.calibration_fraction)
            for s in seeds
        ]
    except DataError as e:
        log.warning("%s: skipped: %s", path.name, e)
        result.datasets[path.stem] = {"file": path.name, "error": str(e)}
        return
    result.datasets[data.name] = _describe(path, data, splits[0])
    log.info("%s: %d rows x %d features, %d anomalies", data.name, *data.X.shape, data.y.sum())
    for seed, split in zip(seeds, splits, strict=True):
        for detector in settings.detectors:
            rec = run_one(data, split, detector, seed, settings, factory)
            result.runs.append(rec)
            _log_run(rec, len(result.runs), total)


def _describe(path: Path, data: Dataset, split: Split) -> dict[str, Any]:
    n_anomaly = int(data.y.sum())
    return {
        "file": path.name,
        "rows": int(data.X.shape[0]),
        "features": int(data.X.shape[1]),
        "anomalies": n_anomaly,
        "anomaly_ratio": round(n_anomaly / data.X.shape[0], 4),
        "split": {
            "fit": int(split.fit.size),
            "calibration": int(split.calibration.size),
            "test_normal": int(split.test.size - n_anomaly),
            "test_anomaly": n_anomaly,
        },
    }
