"""Where and how a stream benchmark ran: date, machine, load, versions."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

from tripwire.bench import common


def meta(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Date, machine, versions and settings of a run."""
    versions = common.package_versions(
        ("faust-streaming", "aiokafka", "torch", "numpy", "pyod", "tripwire")
    )
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
