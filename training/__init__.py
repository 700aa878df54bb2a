"""Tripwire training: data, detectors, threshold calibration, evaluation, registry writer.

Installed as ``tripwire.training``. Shares :mod:`tripwire.core` with
``tripwire.stream`` and never imports it.
"""

from __future__ import annotations

__all__: list[str] = []
