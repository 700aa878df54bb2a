"""``python -m benchmarks.drift``: false-alarm rates and detection delays of drift monitoring.

Synthetic scenarios (50 correlated features, five skewed, one discrete; a z-score
detector with an ``fpr:0.01`` threshold) run through :class:`DriftMonitor` in
tumbling windows: a stationary stream, and four shifts starting mid-stream
(1 sd mean shift on 3 of 50 features, variance doubling, a 1 sd mean shift on
3 features ramped over 20 windows, anomaly rate 1% -> 5%). The real-data run
trains the kNN detector on an ADBench file's normal rows and streams its held-out
normal rows, shuffled, for the stationary false-alarm rate.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.drift import DriftConfig, DriftMonitor, DriftReference, DriftReport

D, SHIFTED = 50, (7, 23, 41)
NAMES = tuple(f"f{i:02d}" for i in range(D))
Shift = Callable[[np.ndarray, int, "World"], np.ndarray]


@dataclass(frozen=True)
class World:
    """The synthetic generator and its z-score detector."""

    mixing: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def make(cls, seed: int = 1234) -> World:
        rng = np.random.default_rng(seed)
        world = cls(rng.normal(0, 0.6, size=(5, D)), np.zeros(D), np.ones(D))
        sample = world.normal(rng, 50_000)
        return replace(world, mean=sample.mean(axis=0), std=sample.std(axis=0))

    def normal(self, rng: np.random.Generator, n: int) -> np.ndarray:
        X = rng.normal(size=(n, 5)) @ self.mixing + rng.normal(0, 0.8, size=(n, D))
        X[:, :5] = np.exp(X[:, :5] / 2)  # skewed
        X[:, 5] = np.round(X[:, 5])  # discrete: tied quantile edges
        return X

    def anomalies(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.mean + rng.uniform(-5, 5, size=(n, D)) * self.std

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.mean(((X - self.mean) / self.std) ** 2, axis=1)


def mean_shift(X: np.ndarray, since: int, w: World) -> np.ndarray:
    X[:, SHIFTED] += w.std[list(SHIFTED)]
    return X


def variance_doubling(X: np.ndarray, since: int, w: World) -> np.ndarray:
    return w.mean + (X - w.mean) * np.sqrt(2.0)


def gradual(X: np.ndarray, since: int, w: World) -> np.ndarray:
    X[:, SHIFTED] += min(1.0, (since + 1) / 20) * w.std[list(SHIFTED)]
    return X


SCENARIOS: dict[str, tuple[Shift | None, tuple[float, float], tuple[int, ...]]] = {
    "stationary": (None, (0.0, 0.0), ()),
    "mean shift 1 sd, 3 of 50 features": (mean_shift, (0.0, 0.0), SHIFTED),
    "variance doubling, all features": (variance_doubling, (0.0, 0.0), ()),
    "gradual 1 sd over 20 windows, 3 features": (gradual, (0.0, 0.0), SHIFTED),
    "anomaly rate 1% -> 5%": (None, (0.01, 0.05), ()),
}


def run_scenario(
    name: str, config: DriftConfig, windows: int, change_at: int, seed: int
) -> dict[str, Any]:
    """Stream ``windows`` tumbling windows, the change starting at window ``change_at``."""
    shift, (rate0, rate1), shifted = SCENARIOS[name]
    world = World.make()
    rng = np.random.default_rng(seed)
    ref_rows = world.normal(rng, 20_000)
    cal = world.score(world.normal(rng, 5_000))
    reference = DriftReference.build(ref_rows, cal, float(np.quantile(cal, 0.99)))
    monitor = DriftMonitor(reference, NAMES, replace(config, drift_expected_anomaly_rate=rate0))
    size = config.drift_window
    reports: list[DriftReport] = []
    for i in range(windows):
        after = shift is not None or rate1 != rate0
        changed = after and i >= change_at
        X = world.normal(rng, size)
        if changed and shift is not None:
            X = shift(X, i - change_at, world)
        n_anom = rng.binomial(size, rate1 if changed else rate0)
        X[:n_anom] = world.anomalies(rng, n_anom)
        report = monitor.update(X, world.score(X))
        assert report is not None  # tumbling windows: one report per window
        reports.append(report)
    return summarise(name, reports, change_at if (shift or rate1 != rate0) else None, shifted)


def summarise(
    name: str, reports: list[DriftReport], change_at: int | None, shifted: tuple[int, ...]
) -> dict[str, Any]:
    """Alarms before the change (false), and the delay and features of the first after it."""
    before = reports if change_at is None else reports[:change_at]
    out: dict[str, Any] = {
        "scenario": name,
        "windows_before_change": len(before),
        "false_alarms": {
            "any": sum(r.alarm for r in before),
            "alert_rate": sum(r.rate_alarm for r in before),
            "score": sum(r.score_alarm for r in before),
            "features": sum(r.feature_alarm for r in before),
        },
    }
    if change_at is None:
        return out
    first = next((i for i, r in enumerate(reports[change_at:]) if r.alarm), None)
    out["delay_windows"] = None if first is None else first + 1
    if first is not None:
        r = reports[change_at + first]
        fired = [k for k, v in (("alert_rate", r.rate_alarm), ("score", r.score_alarm),
                                ("features", r.feature_alarm)) if v]  # fmt: skip
        out["fired"] = fired
        out["top_features"] = r.top_features()
        if shifted:  # right: every named feature is a shifted one; all: and all are named
            named, want = set(r.top_features()), {NAMES[i] for i in shifted}
            out["named_right"] = bool(named) and named <= want
            out["named_all"] = named == want
    return out


def real_stationary(path: Path, config: DriftConfig, passes: int, seed: int) -> dict[str, Any]:
    """kNN on an ADBench file: train on half its normal rows, stream the held-out ones."""
    from tripwire.training.detectors import make_detector

    data = np.load(path)
    normal = data["X"][data["y"] == 0].astype(np.float64)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(normal))
    n_train, n_cal = len(rows) // 2, len(rows) // 10
    train, cal = normal[rows[:n_train]], normal[rows[n_train : n_train + n_cal]]
    pool = normal[rows[n_train + n_cal :]]
    detector = make_detector("knn", seed=seed).fit(train)
    cal_scores = detector.score(cal)
    reference = DriftReference.build(train, cal_scores, float(np.quantile(cal_scores, 0.99)))
    names = tuple(f"x{i}" for i in range(normal.shape[1]))
    monitor = DriftMonitor(reference, names, config)
    pool_scores = detector.score(pool)
    reports = []
    for _ in range(passes):
        order = rng.permutation(len(pool))
        for start in range(0, len(order) - config.drift_window + 1, config.drift_window):
            idx = order[start : start + config.drift_window]
            report = monitor.update(pool[idx], pool_scores[idx])
            if report is not None:
                reports.append(report)
    result = summarise(f"stationary, {path.stem} (kNN, held-out normal rows)", reports, None, ())
    result["rows"] = {"train": n_train, "calibration": n_cal, "stream_pool": len(pool)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drift", description=__doc__)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--false-alarm-rate", type=float, default=0.01)
    parser.add_argument("--stationary-windows", type=int, default=1000)
    parser.add_argument("--shift-windows", type=int, default=100)
    parser.add_argument("--dataset", type=Path, default=None, help="an ADBench .npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    config = DriftConfig(args.window, args.window, args.false_alarm_rate)
    results = [run_scenario("stationary", config, args.stationary_windows, 0, args.seed)]
    for name in list(SCENARIOS)[1:]:
        results.append(run_scenario(name, config, args.shift_windows, args.shift_windows // 2,
                                    args.seed))  # fmt: skip
    if args.dataset is not None:
        small = replace(config, drift_window=500, drift_step=500)
        results.append(real_stationary(args.dataset, small, 3, args.seed))
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
