"""Lay out ``tripwire/`` as the wheel installs it, as links to the sources.

The repository keeps ``stream/`` and ``training/`` at the top; pyproject's
``[tool.setuptools] package-dir`` installs them as ``tripwire.stream`` and
``tripwire.training``. mypy and lint-imports find a package's modules by walking its
directory, so they read this tree instead (``make typecheck``, ``make lint``)::

    python tools/linktree.py build/tree   # build/tree/tripwire/{cli.py,...,stream,training}

Every run starts from an empty tree, so added or removed modules are picked up.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_dirs() -> dict[str, str]:
    """pyproject's package -> directory mapping (``{"tripwire.stream": "stream", ...}``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return mapping


def build(tree: Path) -> Path:
    """Recreate ``tree`` with one link per installed name; return ``tree / "tripwire"``."""
    mapping = package_dirs()
    shutil.rmtree(tree, ignore_errors=True)
    top = tree / "tripwire"
    top.mkdir(parents=True)
    for entry in sorted((ROOT / mapping["tripwire"]).iterdir()):
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, directory in mapping.items():
        parent, _, name = package.rpartition(".")
        if package == "tripwire":
            continue
        if parent != "tripwire":
            raise SystemExit(f"{package}: only packages directly under tripwire are mapped")
        (top / name).symlink_to(ROOT / directory)
    return top


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "tree")
