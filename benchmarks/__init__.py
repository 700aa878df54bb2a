"""The project's own benchmark harness: not part of the installed package.

``python -m benchmarks stream`` (``make bench-stream``) measures the worker beside
its ceilings and a naive faust + PyOD peer and can regenerate the results section of
docs/performance.md; ``python -m benchmarks quality`` (``make bench-quality``) runs
``tripwire bench quality`` on the shared ADBench folder and can regenerate
docs/quality.md. Run from the checkout (this package is imported from it, never
installed).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The checkout this package lives in.
REPO_ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The environment for a ``python -m benchmarks...`` child: the checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env
