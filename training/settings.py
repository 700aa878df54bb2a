"""Settings of ``tripwire train`` and ``tripwire score``.

Every field is also a ``--kebab-case`` option and a ``TRIPWIRE_<FIELD>`` variable
(see :mod:`tripwire.core.config`). Detector hyperparameters left unset (empty) take the
detector's own defaults, so the manifest records what was actually used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tripwire.core import kinds
from tripwire.core.errors import ConfigError
from tripwire.training.thresholds import DEFAULT_THRESHOLD

#: Threshold used with ``--demo`` unless one is given explicitly (see ``TrainSettings``).
DEMO_THRESHOLD = "f1"


@dataclass(frozen=True)
class TrainSettings:
    """What ``tripwire train`` does: data, detector, threshold, where to publish.

    With ``--demo`` the default threshold is ``f1``: the founding tutorial set its
    threshold between the normal and the anomalous scores using its labelled
    anomalies, and that is what the demo reproduces (correctly: on a validation
    split, never the test split). Real deployments rarely have labelled anomalies,
    hence the general default ``fpr:0.01``. An explicit ``--threshold`` (or
    ``TRIPWIRE_THRESHOLD``) always wins.
    """

    data: str | None = field(
        default=None,
        metadata={"help": "training data: .npz (X, y), .csv or .jsonl", "metavar": "PATH"},
    )
    demo: bool = field(
        default=False,
        metadata={"help": "use the founding tutorial's generated data instead of --data"},
    )
    label_col: str | None = field(
        default=None,
        metadata={"help": "0/1 label column/key (default: 'label' if present)", "metavar": "NAME"},
    )
    feature_cols: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "comma-separated feature columns to use (default: all)",
            "metavar": "A,B",
        },
    )
    model: str = field(
        default=kinds.DEFAULT,
        metadata={
            "help": f"detector: {kinds.described()}",
            "metavar": "KIND",
        },
    )
    threshold: str | None = field(
        default=None,
        metadata={
            "help": f"fpr:<rate>, f1, contamination:<c> or pot:<q>[,<level>] "
            f"(unset: {DEFAULT_THRESHOLD}; {DEMO_THRESHOLD} with --demo)",
            "metavar": "SPEC",
        },
    )
    registry: str = field(
        default="./registry", metadata={"help": "registry directory", "metavar": "DIR"}
    )
    name: str | None = field(
        default=None,
        metadata={"help": "model name in the registry (unset: 'demo' with --demo, else 'default')"},
    )
    promote: str | None = field(
        default=None,
        metadata={
            "help": "move this alias (e.g. production) to the new version",
            "metavar": "ALIAS",
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for splits, weights and demo data"})
    test_size: float = field(
        default=0.2,
        metadata={"help": "share of labelled normal and anomalous rows held out for evaluation"},
    )
    calibration_size: float = field(
        default=0.2,
        metadata={"help": "share of normal rows held out for threshold calibration"},
    )
    epochs: int | None = field(
        default=None, metadata={"help": "max training epochs (unset: the detector's default)"}
    )
    batch_size: int | None = field(
        default=None, metadata={"help": "rows per optimiser step (unset: the detector's default)"}
    )
    lr: float | None = field(
        default=None, metadata={"help": "learning rate (unset: the detector's default)"}
    )
    hidden: str | None = field(
        default=None,
        metadata={
            "help": "encoder layer sizes, e.g. 64,16 (unset: derived from the feature count)",
            "metavar": "SIZES",
        },
    )
    params: str | None = field(
        default=None,
        metadata={
            "help": "other detector hyperparameters as JSON, e.g. '{\"dropout\": 0.1}'",
            "metavar": "JSON",
        },
    )
    plot: str | None = field(
        default=None,
        metadata={
            "help": "where to save the score-distribution PNG "
            "(unset: scores.png inside the published version; 'none' to skip)",
            "metavar": "PATH",
        },
    )

    def validate(self) -> None:
        """ConfigError unless the combination of options makes sense."""
        if self.demo == bool(self.data):
            raise ConfigError("give exactly one of --data PATH or --demo")
        for key in ("test_size", "calibration_size"):
            v = getattr(self, key)
            if not 0.0 < v < 1.0:
                raise ConfigError(f"--{key.replace('_', '-')} must be in (0, 1), got {v}")
        if self.test_size + self.calibration_size >= 0.9:
            raise ConfigError("--test-size + --calibration-size leave too few training rows")

    def threshold_spec(self) -> str:
        """The threshold in force: explicit, else ``f1`` for the demo, else the default."""
        if self.threshold:
            return self.threshold
        return DEMO_THRESHOLD if self.demo else DEFAULT_THRESHOLD

    def model_name(self) -> str:
        return self.name or ("demo" if self.demo else "default")

    def detector_params(self) -> dict[str, Any]:
        """Hyperparameters given explicitly, as keyword arguments for ``make_detector``."""
        extra: dict[str, Any] = {}
        if self.params:
            try:
                extra = json.loads(self.params)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--params is not valid JSON: {e.msg}") from None
            if not isinstance(extra, dict):
                raise ConfigError("--params must be a JSON object")
        given = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "hidden_sizes": self.hidden,
        }
        return {**extra, **{k: v for k, v in given.items() if v is not None}}


@dataclass(frozen=True)
class ScoreSettings:
    """What ``tripwire score`` reads and writes.

    ``model_ref`` is the ``--model`` option (``NAME``, ``NAME@VERSION`` or
    ``NAME@ALIAS``); its variable is ``TRIPWIRE_MODEL_REF`` because
    ``TRIPWIRE_MODEL`` already names the detector kind for ``tripwire train``.
    """

    registry: str = field(
        default="./registry", metadata={"help": "registry directory", "metavar": "DIR"}
    )
    model_ref: str | None = field(
        default=None,
        metadata={"help": "NAME, NAME@VERSION or NAME@ALIAS", "cli": False},
    )
    data: str | None = field(
        default=None, metadata={"help": "rows to score: .npz, .csv or .jsonl", "metavar": "PATH"}
    )
    out: str | None = field(
        default=None,
        metadata={"help": ".npy (scores) or .csv (id, score, is_anomaly, top features)"},
    )
    label_col: str | None = field(
        default=None,
        metadata={"help": "label column/key to ignore (default: 'label')", "metavar": "NAME"},
    )
    top_k: int = field(
        default=3, metadata={"help": "top contributing features per row in .csv output"}
    )
    batch_rows: int = field(default=4096, metadata={"help": "rows scored per call"})

    def validate(self) -> None:
        """ConfigError unless the options make sense."""
        if not self.model_ref:
            raise ConfigError("--model NAME[@VERSION|@ALIAS] is required")
        if not self.data or not self.out:
            raise ConfigError("--data PATH and --out PATH are required")
        if not self.out.lower().endswith((".npy", ".csv")):
            raise ConfigError(f"--out {self.out!r}: expected a .npy or .csv path")
        if self.top_k < 0 or self.batch_rows < 1:
            raise ConfigError("--top-k must be >= 0 and --batch-rows >= 1")
