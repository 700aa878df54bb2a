"""Tripwire training: data, detectors, threshold calibration, evaluation, registry.

``stream`` may import the dependency-light parts of this package (``training.registry``,
``training.scorer``, ``training.detectors``); this package never imports ``stream``.
"""

from __future__ import annotations

__all__: list[str] = []
