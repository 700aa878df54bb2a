"""Detection-quality benchmark: Tripwire's detectors beside PyOD's on labelled data.

Every detector is split, fitted and calibrated by ``tripwire train``'s own code
(``tripwire.training.pipeline``), so the table measures what a user who runs
``tripwire train`` gets. For every ``.npz`` file (keys ``X`` and ``y``, ``y = 1``
anomaly) and every seed:

1. ``split_dataset`` (as ``tripwire train --seed SEED --test-size T
   --calibration-size C``, defaults as ``tripwire train``'s) splits the normal
   rows into test / calibration (held out, never fitted on) / training rows, and
   the anomalies into test / validation; no anomaly is ever fitted on;
2. the detector is built as ``tripwire train --model NAME`` builds it
   (``make_detector(name, seed=seed)``; PyOD baselines directly) and fitted on
   the training rows;
3. the threshold is ``fpr:<target>`` fitted on ``calibration_data``: the held-out
   split's scores pooled with the detector's out-of-sample scores of its training
   rows where it has them (``Detector.held_out_scores``: leave-one-out, or rows
   held out from a reduced reference), exactly as ``tripwire train`` calibrates;
   ``threshold_rows`` is how many scores it rests on (the manifest's
   ``threshold.rows``). A row is flagged when its score is strictly
   above it;
4. ROC-AUC, PR-AUC (average precision), realised FPR and recall at the threshold
   are computed on the test split's normal rows and **every** anomaly
   (:func:`tripwire.bench.datasets.evaluation_rows`); fit, calibration and
   test-scoring wall times are recorded;
5. the fitted detector's scoring rate: vectors/s on ``rate_batch``-row batches of
   the evaluation rows, the median of :data:`tripwire.bench.speed.REPEATS` repeats
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
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tripwire.bench import common
from tripwire.bench.datasets import Dataset, evaluation_rows, find_datasets, load_dataset, split
from tripwire.bench.detectors import DEFAULT_DETECTORS, Factory, build
from tripwire.bench.speed import scoring_rate
from tripwire.core.detector import Detector
from tripwire.core.errors import ConfigError, DataError
from tripwire.training.pipeline import Splits, calibration_data
from tripwire.training.settings import TrainSettings
from tripwire.training.thresholds import parse_threshold

log = logging.getLogger(__name__)


def _train_default(name: str) -> Any:
    """``tripwire train``'s default for one of its options, so the two cannot drift."""
    return next(f.default for f in fields(TrainSettings) if f.name == name)


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
    test_size: float = field(
        default=_train_default("test_size"),
        metadata={"help": "share of normal and anomalous rows held out for evaluation, as "
                  "tripwire train --test-size (every anomaly is tested)"},
    )  # fmt: skip
    calibration_size: float = field(
        default=_train_default("calibration_size"),
        metadata={"help": "share of normal rows held out (not fitted) for the threshold, as "
                  "tripwire train --calibration-size"},
    )  # fmt: skip
    torch_threads: int = field(
        default=1, metadata={"help": "torch.set_num_threads for the run (0 = leave as is)"}
    )
    rate_batch: int = field(
        default=256,
        metadata={"help": "batch size of the scoring-rate column (vectors/s, median of "
                  "repeats); 0 = not measured"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("target_fpr", "test_size", "calibration_size"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{name} must be in (0, 1), got {value}")
        if self.test_size + self.calibration_size >= 0.9:
            raise ConfigError("test_size + calibration_size leave too few training rows")
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
    threshold_rows: int | None = None
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


def _finite(scores: np.ndarray, n: int, what: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (n,):
        raise ValueError(f"{what}: {scores.shape[0]} scores for {n} rows")
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise ValueError(f"{what}: {bad} non-finite scores")
    return scores


def run_one(
    data: Dataset, splits: Splits, detector: str, seed: int, settings: QualitySettings,
    factory: Factory,
) -> RunRecord:  # fmt: skip
    """Fit, calibrate (as ``tripwire train``) and evaluate one detector; errors are recorded."""
    X_eval, y_eval = evaluation_rows(splits)
    rec = RunRecord(
        data.name, detector, seed, n_fit=len(splits.train),
        n_calibration=len(splits.calibration), n_test_normal=int((y_eval == 0).sum()),
        n_test_anomaly=int(y_eval.sum()),
    )  # fmt: skip
    try:
        model = factory(detector, seed)
        threshold = parse_threshold(f"fpr:{settings.target_fpr}")
        t0 = time.perf_counter()
        model.fit(splits.train)
        t1 = time.perf_counter()
        # tripwire train's calibration: it only calls score and held_out_scores, which
        # every BenchDetector has (a PyOD baseline has no held-out scores: split only).
        threshold.fit(calibration_data(cast(Detector, model), splits))
        t2 = time.perf_counter()
        scores = _finite(model.score(X_eval), len(X_eval), "test")
        t3 = time.perf_counter()
        rec.threshold, rec.threshold_rows = float(threshold.value), threshold.rows_
        if settings.rate_batch:
            rate = scoring_rate(model.score, X_eval, settings.rate_batch)
            rec.score_rate = rate.vectors_per_s
    except Exception as e:  # one detector failing on one dataset must not stop the run
        log.debug("%s %s seed=%d failed", data.name, detector, seed, exc_info=True)
        rec.error = f"{type(e).__name__}: {e}"[:500]
        return rec
    rec.fit_seconds, rec.calibration_score_seconds, rec.score_seconds = t1 - t0, t2 - t1, t3 - t2
    for key, value in evaluate_scores(y_eval, scores, rec.threshold).items():
        setattr(rec, key, value)
    return rec


def _log_run(rec: RunRecord, done: int, total: int) -> None:
    where = f"[{done}/{total}] {rec.dataset:<16} {rec.detector:<12} seed={rec.seed}"
    if not rec.ok:
        log.warning("%s  ERROR %s", where, rec.error)
        return
    log.info(
        "%s  roc=%.3f pr=%.3f fpr=%.2f%% (%s rows) recall=%.3f  fit=%.2fs score=%.2fs "
        "rate=%.0f/s",
        where, rec.roc_auc, rec.pr_auc, 100 * (rec.fpr or 0.0), rec.threshold_rows, rec.recall,
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
        splits = [split(data, s, settings.test_size, settings.calibration_size) for s in seeds]
    except DataError as e:
        log.warning("%s: skipped: %s", path.name, e)
        result.datasets[path.stem] = {"file": path.name, "error": str(e)}
        return
    result.datasets[data.name] = _describe(path, data, splits[0])
    log.info("%s: %d rows x %d features, %d anomalies", data.name, *data.X.shape, data.y.sum())
    for seed, seed_splits in zip(seeds, splits, strict=True):
        for detector in settings.detectors:
            rec = run_one(data, seed_splits, detector, seed, settings, factory)
            result.runs.append(rec)
            _log_run(rec, len(result.runs), total)


def _describe(path: Path, data: Dataset, splits: Splits) -> dict[str, Any]:
    n_anomaly = int(data.y.sum())
    assert splits.test_y is not None
    return {
        "file": path.name,
        "rows": int(data.X.shape[0]),
        "features": int(data.X.shape[1]),
        "anomalies": n_anomaly,
        "anomaly_ratio": round(n_anomaly / data.X.shape[0], 4),
        "split": {
            "fit": len(splits.train),
            "calibration": len(splits.calibration),
            "test_normal": int((splits.test_y == 0).sum()),
            "test_anomaly": n_anomaly,
        },
    }
