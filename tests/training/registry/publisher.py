"""A publisher process for crash and concurrency tests.

``python -m tests.training.registry.publisher ROOT NAME COUNT [--promote]`` publishes
COUNT versions (``0`` = until killed), each with two artifact files written in small
chunks so a SIGKILL can land anywhere in a publish. Prints ``ready`` once imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from training.registry import Registry

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


def main(argv: list[str]) -> int:
    root, name, count = argv[0], argv[1], int(argv[2])
    promote = "--promote" in argv
    reg = Registry(root)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    i = 0
    while count == 0 or i < count:
        version = reg.publish(name, write_artifacts, manifest(f"{os.getpid()}-{i}"))
        if promote:
            reg.promote(name, "production", version)
        i += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
