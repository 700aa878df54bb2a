"""A publisher process for crash and concurrency tests.

``python -m tests.training.registry.publisher ROOT NAME COUNT [--promote] [--crash-at K]``
publishes COUNT versions (``0`` = until killed), each with two artifact files written
in small chunks so a SIGKILL can land anywhere in a publish. Prints ``ready`` once
imported. ``--crash-at K`` makes the process SIGKILL itself at the K-th boundary
before or after a durable filesystem step of the registry.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tripwire.training.registry import Registry, _fs

DURABLE_STEPS = (
    "lock_dir", "fsync_file", "fsync_dir", "write_json_durable", "rename_noreplace",
    "replace_json_atomic",
)  # fmt: skip

CHUNK = 16 * 1024
CHUNKS = 8


def write_artifacts(directory: Path) -> list[str]:
    for name in ("a.bin", "nested/b.bin"):
        path = directory / name
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            for _ in range(CHUNKS):
                f.write(os.urandom(CHUNK))
                f.flush()
    return ["a.bin", "nested/b.bin"]


def manifest(tag: str) -> dict:
    return {
        "detector": {"kind": "test-none", "params": {}, "state": {}},
        "features": {"count": 2, "names": ["x", "y"]},
        "threshold": {"method": "fpr", "params": {"rate": 0.01}, "value": 1.0},
        "metrics": None,
        "training_data": {"source": tag, "sha256": "0" * 64, "rows": {"train": 1}},
    }


def crash_at(step: int) -> None:
    """SIGKILL this process at the ``step``-th boundary around a durable step."""
    count = 0

    def boundary() -> None:
        nonlocal count
        count += 1
        if count == step:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            boundary()
            result = real(*args, **kwargs)
            boundary()
            return result

        return wrapped

    for fname in DURABLE_STEPS:
        setattr(_fs, fname, wrap(getattr(_fs, fname)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("name")
    parser.add_argument("count", type=int)
    parser.add_argument("--promote", action="store_true")
    parser.add_argument("--crash-at", type=int)
    args = parser.parse_args(argv)
    if args.crash_at:
        crash_at(args.crash_at)
    reg = Registry(args.root)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    i = 0
    while args.count == 0 or i < args.count:
        version = reg.publish(args.name, write_artifacts, manifest(f"{os.getpid()}-{i}"))
        if args.promote:
            reg.promote(args.name, "production", version)
        i += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
