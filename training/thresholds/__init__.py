"""Threshold calibration: ``parse_threshold(spec)`` builds one from a ``--threshold`` string.

Specs
-----
``fpr:<rate>``
    (1 - rate) quantile of held-out normal scores. The default, ``fpr:0.01``.
``f1``
    Best F1 on a labelled validation split (needs labelled anomalies).
``contamination:<c>``
    (1 - c) quantile of training scores, PyOD-style.
``pot:<q>[,<level>]``
    Peaks-over-threshold (GPD tail fit) at risk ``q``; initial level 0.98.

>>> parse_threshold("fpr:0.05").params
{'rate': 0.05}
>>> parse_threshold("pot:1e-4").spec()
'pot:0.0001,0.98'
"""

from __future__ import annotations

from tripwire.core.errors import ConfigError
from tripwire.training.thresholds.base import CalibrationData, Threshold, parse_rate
from tripwire.training.thresholds.contamination import ContaminationThreshold
from tripwire.training.thresholds.f1 import F1Threshold
from tripwire.training.thresholds.fpr import FprThreshold
from tripwire.training.thresholds.pot import PotThreshold

__all__ = [
    "DEFAULT_THRESHOLD",
    "CalibrationData",
    "ContaminationThreshold",
    "F1Threshold",
    "FprThreshold",
    "PotThreshold",
    "Threshold",
    "parse_threshold",
]

DEFAULT_THRESHOLD = "fpr:0.01"

#: method -> (class, names of its optional positional parameters)
_METHODS: dict[str, tuple[type[Threshold], tuple[str, ...]]] = {
    "fpr": (FprThreshold, ("rate",)),
    "f1": (F1Threshold, ()),
    "contamination": (ContaminationThreshold, ("contamination",)),
    "pot": (PotThreshold, ("q", "level")),
}


def parse_threshold(spec: str | None = None) -> Threshold:
    """Build an unfitted threshold from ``"<method>[:<arg>[,<arg>]]"``.

    Raises
    ------
    ConfigError
        Unknown method, wrong number of arguments, or an argument out of range.
    """
    spec = (spec or DEFAULT_THRESHOLD).strip()
    method, _, rest = spec.partition(":")
    method = method.strip().lower()
    if method not in _METHODS:
        raise ConfigError(
            f"unknown threshold method {method!r} in {spec!r} "
            f"(expected one of: fpr:<rate>, f1, contamination:<c>, pot:<q>[,<level>])"
        )
    cls, names = _METHODS[method]
    args = [a.strip() for a in rest.split(",")] if rest.strip() else []
    if len(args) > len(names):
        raise ConfigError(
            f"threshold {spec!r}: {method} takes at most {len(names)} argument(s), got {len(args)}"
        )
    kwargs = {name: parse_rate(raw, name, method) for name, raw in zip(names, args, strict=False)}
    return cls(**kwargs)
