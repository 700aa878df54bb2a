"""Drift monitoring: is the stream still the distribution the model was calibrated on?

:mod:`~tripwire.core.drift.reference` holds what a published model is compared
against, :mod:`~tripwire.core.drift.statistics` the calibrated tests and
:mod:`~tripwire.core.drift.monitor` the sliding window the worker and
``tripwire drift`` both run.
"""

from __future__ import annotations

from tripwire.core.drift.monitor import DriftConfig, DriftMonitor, DriftReport, FeatureDrift
from tripwire.core.drift.reference import REFERENCE_FILE, DriftReference

__all__ = [
    "REFERENCE_FILE",
    "DriftConfig",
    "DriftMonitor",
    "DriftReference",
    "DriftReport",
    "FeatureDrift",
]
