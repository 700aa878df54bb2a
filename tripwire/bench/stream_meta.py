"""Where and how a stream benchmark ran: date, machine, load, versions, code."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def meta(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Date, machine, versions, code revision and settings of a run."""
    versions: dict[str, str | None] = {}
    for pkg in ("faust-streaming", "aiokafka", "torch", "numpy", "pyod", "tripwire"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
        },
        "broker": settings["bootstrap"] or "embedded Tansu",
        "versions": versions,
        "code": code_revision(),
        "settings": settings,
        "started": time.time(),
        "load_average_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def code_revision() -> str | None:
    """``<commit>``, ``+dirty`` if the packages the benchmark runs have uncommitted edits."""
    git = ["git", "-C", str(REPO_ROOT)]
    try:
        head = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*git, "status", "--porcelain", "--", "stream", "training", "tripwire"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")
