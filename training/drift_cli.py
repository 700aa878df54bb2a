"""``tripwire drift``: the worker's drift statistics over a file, offline.

The file is scored with the published model's scorer and fed, ``drift_step`` rows
at a time, to the same :class:`~tripwire.core.drift.DriftMonitor` the worker runs,
so each evaluation here is one the worker would have made on these events in this
order. A file shorter than the window is evaluated once, as one window.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.config import (
    add_arguments,
    env_defaults,
    env_name,
    from_args,
    guarded,
    shown_default,
)
from tripwire.core.drift import DriftConfig, DriftMonitor, DriftReport
from tripwire.core.errors import ConfigError, RegistryError

DESCRIPTION = """\
Check a file of feature rows for drift against a published model's reference:
the alert rate against the calibrated rate, the score distribution against the
calibration scores, and every feature against the training data's quantiles,
over sliding windows as the worker computes them. Prints a table; --json and
--plot write the same evaluations. Exit status 1 when any window alarms.

examples:
  tripwire drift --registry ./registry --model payments@production --data last_week.csv
  tripwire drift --model payments@7 --data week.npz --json drift.json --plot drift.png
"""


@dataclass(frozen=True)
class DriftCommandSettings(DriftConfig):
    """What ``tripwire drift`` reads and writes (plus the monitor's own settings)."""

    registry: str = field(
        default="./registry", metadata={"help": "registry directory", "metavar": "DIR"}
    )
    model_ref: str | None = field(
        default=None, metadata={"help": "NAME, NAME@VERSION or NAME@ALIAS", "cli": False}
    )
    data: str | None = field(
        default=None, metadata={"help": "rows to check: .npz, .csv or .jsonl", "metavar": "PATH"}
    )
    label_col: str | None = field(
        default=None,
        metadata={"help": "label column/key to ignore (default: 'label')", "metavar": "NAME"},
    )
    json: str | None = field(default=None, metadata={"help": "write the evaluations as JSON"})
    plot: str | None = field(default=None, metadata={"help": "write a PNG of the statistics"})

    def validate(self) -> None:
        super().validate()
        if not self.model_ref or not self.data:
            raise ConfigError("--model NAME[@VERSION|@ALIAS] and --data PATH are required")


def register(subparsers: Any) -> None:
    """Add ``drift`` to the ``tripwire`` command."""
    parser = subparsers.add_parser(
        "drift", help="check a file for drift against a published model",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    defaults, env_error = env_defaults(DriftCommandSettings)
    parser.add_argument(
        "--model", dest="model_ref", default=defaults.model_ref, metavar="REF",
        help="model NAME (= NAME@production), NAME@VERSION, NAME@ALIAS or NAME@latest "
        f"[env {env_name('model_ref')}{shown_default(str, defaults.model_ref)}]",
    )  # fmt: skip
    add_arguments(parser, DriftCommandSettings, defaults)

    parser.set_defaults(
        func=guarded(env_error, lambda args: run_drift(from_args(DriftCommandSettings, args)))
    )


def run_drift(settings: DriftCommandSettings) -> int:
    """Score the file, run the monitor over it, print and write the reports."""
    from tripwire.training.drift_report import plot_reports, table

    settings.validate()
    assert settings.model_ref and settings.data
    label, config, reports = drift_reports(settings)
    print(table(reports, label, settings.data, config))
    if settings.json:
        doc = {
            "model": label, "data": settings.data, "config": _config(config),
            "evaluations": [r.to_dict() for r in reports],
        }  # fmt: skip
        Path(settings.json).write_text(json.dumps(doc, indent=2) + "\n")
    if settings.plot:
        plot_reports(Path(settings.plot), reports, label)
    return 1 if any(r.alarm for r in reports) else 0


def drift_reports(
    settings: DriftCommandSettings,
) -> tuple[str, DriftConfig, list[DriftReport]]:
    """``(NAME@VERSION, config, reports)`` of the monitor over the file's rows in order.

    ``config`` is the monitor's: the window shrinks to a shorter file's length.
    """
    from tripwire.core.drift.artifact import load_reference
    from tripwire.core.registry import load_scorer
    from tripwire.training.data import align_features, load_data

    assert settings.model_ref and settings.data
    reference, label, names = load_reference(settings.registry, settings.model_ref)
    if reference is None:
        raise RegistryError(f"{label} has no drift reference (published before them); retrain it")
    scorer = load_scorer(settings.registry, label)
    ds = align_features(load_data(settings.data, settings.label_col), names)
    scores = _scores(scorer, ds.X)
    window = min(settings.drift_window, max(ds.n_rows, 10))
    step = min(settings.drift_step, window)
    config = DriftConfig(
        window, step, settings.drift_false_alarm_rate, settings.drift_expected_anomaly_rate,
        settings.drift_top_features,
    )  # fmt: skip
    monitor = DriftMonitor(reference, names, config)
    reports = []
    for start in range(0, ds.n_rows, step):
        report = monitor.update(ds.X[start : start + step], scores[start : start + step])
        if report is not None:
            reports.append(report)
    if not reports and ds.n_rows:
        reports.append(monitor.evaluate())
    return label, config, reports


def _scores(scorer: Any, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    step = batch if getattr(scorer.detector, "batch_independent", True) else max(len(X), 1)
    parts = [scorer.score(X[s : s + step]).scores for s in range(0, len(X), step)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _config(config: DriftConfig) -> dict[str, Any]:
    return {
        "window": config.drift_window, "step": config.drift_step,
        "false_alarm_rate": config.drift_false_alarm_rate,
        "expected_anomaly_rate": config.drift_expected_anomaly_rate,
    }  # fmt: skip


__all__ = ["DriftCommandSettings", "drift_reports", "register", "run_drift"]
