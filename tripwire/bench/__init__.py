"""Benchmarks behind ``tripwire bench``.

``quality`` measures detection quality and threshold calibration of Tripwire's
detectors side by side with PyOD's on folders of labelled ``.npz`` datasets
(see ``docs/quality.md``).
"""

from __future__ import annotations
