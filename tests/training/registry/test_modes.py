"""Published files are readable by a worker under another UID, whatever the umask.

Issue 11 §4: on main, ``weights.safetensors`` was 0600 (safetensors' own mode)
while the manifest and alias files were 0644, so a worker running as another
user could read the manifest but not the weights.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.registry import publish_model
from tripwire.training.registry import Registry

NOBODY = 65534


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="tripwire-modes-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=True)


def _modes(root: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            found[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_every_published_entry_has_the_documented_mode(umask_077: None, shared_dir: Path) -> None:
    root = shared_dir / "registry"
    publish_model(root, kind="ae")  # safetensors weights, promoted to production
    publish_model(root, kind="pyod:IForest")  # a pickle
    modes = _modes(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700  # the root follows the umask
    del modes["demo/aliases/.lock"]  # the writers' lock: nobody reads it
    assert {p for p, m in modes.items() if m != (0o755 if (root / p).is_dir() else 0o644)} == set()
    assert "demo/1/weights.safetensors" in modes and "demo/2/model.pkl" in modes
    assert "demo/aliases/production.json" in modes


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another UID needs root")
def test_a_worker_under_another_uid_can_read_every_published_file(shared_dir: Path) -> None:
    root = shared_dir / "registry"
    publish_model(root, kind="ae")
    root.chmod(0o755)  # the operator opens the root to the workers' UID
    files = sorted(
        str(p) for p in root.rglob("*") if p.is_file() and p.name != ".lock"
    )  # fmt: skip
    assert any(f.endswith("weights.safetensors") for f in files)
    proc = subprocess.run(
        ["cat", *files], user=NOBODY, group=NOBODY, capture_output=True, timeout=60
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert Registry(root).verify() == []  # and no mode warning
