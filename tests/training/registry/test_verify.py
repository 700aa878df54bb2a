"""``tripwire registry verify`` refuses every way out of the registry (issue 11 §4).

Real registry directories through the real command. On main before the fix, a
version dir, model dir, ``aliases/`` dir or alias file symlinked outside, and a
symlinked dir or a hard link inside a version, all verified with 0 errors.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tripwire.training.registry import Registry


@pytest.fixture
def promoted(registry: Registry, publish_mean: Callable[..., str]) -> Registry:
    publish_mean()
    registry.promote("demo", "production", "1")
    return registry


def _errors(tripwire_cli: Callable, *argv: str) -> list[str]:
    rc, out, _ = tripwire_cli("registry", "verify", *argv)
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert rc == (1 if errors else 0), out
    return errors


def _move_out(inside: Path, outside_dir: Path) -> Path:
    """Move ``inside`` to ``outside_dir`` and leave a symlink to it in its place."""
    outside_dir.mkdir(exist_ok=True)
    outside = outside_dir / inside.name
    shutil.move(inside, outside)
    inside.symlink_to(outside)
    return outside


def test_an_intact_registry_verifies(promoted: Registry, tripwire_cli: Callable) -> None:
    assert _errors(tripwire_cli) == []


def test_a_version_dir_symlinked_outside(
    promoted: Registry, tripwire_cli: Callable, tmp_path: Path
) -> None:
    outside = tmp_path / "v2"
    shutil.copytree(promoted.version_dir("demo", "1"), outside)
    promoted.version_dir("demo", "2").symlink_to(outside)
    assert _errors(tripwire_cli) == [
        f"error: demo/2: is a symlink (to {outside}), not a directory; "
        "nothing below the registry root is read through a symlink"
    ]
    assert len(_errors(tripwire_cli, "demo@2")) == 1


def test_a_model_dir_symlinked_outside(
    promoted: Registry, tripwire_cli: Callable, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(promoted.model_dir("demo"), outside)
    (promoted.root / "other").symlink_to(outside)
    (error,) = _errors(tripwire_cli)
    assert error.startswith(f"error: other: is a symlink (to {outside}), not a model directory")
    (error,) = _errors(tripwire_cli, "other")
    assert error.startswith("error: other: is a symlink")


@pytest.mark.parametrize(
    "entry", ["aliases", "aliases/production.json", "1/manifest.json", "1/mean.npy"]
)
def test_symlinked_entries_of_a_model(
    entry: str, promoted: Registry, tripwire_cli: Callable, tmp_path: Path
) -> None:
    _move_out(promoted.model_dir("demo") / entry, tmp_path / "outside")
    errors = _errors(tripwire_cli)
    assert len(errors) == 1 and "is a symlink (to " in errors[0], errors


def test_a_symlinked_dir_inside_a_version(
    promoted: Registry, tripwire_cli: Callable, tmp_path: Path
) -> None:
    (tmp_path / "payload").mkdir()
    (promoted.version_dir("demo", "1") / "extra").symlink_to(tmp_path / "payload")
    (error,) = _errors(tripwire_cli)
    assert error.startswith("error: demo/1/extra: file not listed in the manifest's artifacts")
    assert "(a symlink (to " in error


def test_a_hard_link_to_a_file_outside(
    promoted: Registry, tripwire_cli: Callable, tmp_path: Path
) -> None:
    os.link(promoted.version_dir("demo", "1") / "mean.npy", tmp_path / "same-inode")
    (error,) = _errors(tripwire_cli)
    assert error.startswith("error: demo/1/mean.npy: has 2 hard links")


def test_a_fifo_in_a_version(promoted: Registry, tripwire_cli: Callable) -> None:
    os.mkfifo(promoted.version_dir("demo", "1") / "pipe")
    (error,) = _errors(tripwire_cli)
    assert error == (
        "error: demo/1/pipe: file not listed in the manifest's artifacts "
        "(a special file (FIFO, socket or device))"
    )


def test_garbage_in_an_alias_file(promoted: Registry, tripwire_cli: Callable) -> None:
    promoted.alias_path("demo", "production").write_bytes(b"\xff{not json")
    (error,) = _errors(tripwire_cli)
    assert error.startswith("error: demo/aliases/production.json: alias file ")
    assert "cannot be read" in error


def test_names_are_escaped_in_the_report(promoted: Registry, tripwire_cli: Callable) -> None:
    (promoted.version_dir("demo", "1") / "a\nerror: forged").write_bytes(b"")
    rc, out, _ = tripwire_cli("registry", "verify")
    assert rc == 1 and "error: forged" not in out.splitlines()[1:]
    assert "error: demo/1/a\\nerror: forged: file not listed" in out


def test_files_other_users_cannot_read_are_a_warning(
    promoted: Registry, tripwire_cli: Callable
) -> None:
    (promoted.version_dir("demo", "1") / "mean.npy").chmod(0o600)
    rc, out, _ = tripwire_cli("registry", "verify")
    assert rc == 0
    assert (
        "warning: demo/1: not readable by other users (mean.npy 0600): a worker under another "
        "UID cannot load it" in out
    )
