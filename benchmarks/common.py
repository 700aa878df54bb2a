"""What the harness's benchmarks share: run provenance and the generated doc sections."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from benchmarks import REPO_ROOT
from tripwire.core.errors import ConfigError


def code_revision(packages: Sequence[str] = ("stream", "training", "tripwire")) -> str | None:
    """``<commit>`` of the checkout, ``+dirty`` if ``packages`` have uncommitted edits.

    The checkout may be shared, so a run may pick up someone's work in progress; the
    results say so. ``None`` outside a git checkout.
    """
    git = ["git", "-C", str(REPO_ROOT)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", *packages],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def replace_section(path: Path, section: str, begin: str, end: str, title: str) -> None:
    """Replace the text between the markers ``begin`` and ``end`` in ``path``.

    A missing file is created with ``title`` as its heading.

    Raises
    ------
    ConfigError
        The file exists but lacks the markers (it is not overwritten).
    """
    block = f"{begin}\n{section}{end}\n"
    if not path.exists():
        path.write_text(f"# {title}\n\n{block}", encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ConfigError(f"{path}: no '{begin}' ... '{end}' section to replace")
    tail = text[stop + len(end) :].removeprefix("\n")
    path.write_text(text[:start] + block + tail, encoding="utf-8")
