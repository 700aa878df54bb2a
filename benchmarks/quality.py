"""The project's quality benchmark: ``tripwire bench quality`` on the shared ADBench folder.

Defaults to ``shared/datasets/adbench`` beside the checkout, records the checkout's
revision, and can replace the results section of docs/quality.md
(``--update-doc docs/quality.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks import REPO_ROOT
from benchmarks.common import code_revision, replace_section
from tripwire.bench.quality import QualityResult, QualitySettings, run_quality
from tripwire.core.errors import ConfigError

SHARED_DATASETS = Path("shared", "datasets", "adbench")
DOC_BEGIN = "<!-- BEGIN tripwire bench quality results -->"
DOC_END = "<!-- END tripwire bench quality results -->"


@dataclass(frozen=True)
class HarnessQualitySettings(QualitySettings):
    """Options of ``python -m benchmarks quality`` (each also a ``TRIPWIRE_*`` env var)."""

    datasets: str = field(
        default="",
        metadata={
            "help": "folder of .npz files (keys X, y; y=1 anomaly); empty = "
            "shared/datasets/adbench beside the checkout's parent directory",
            "metavar": "DIR",
        },
    )
    update_doc: str = field(
        default="",
        metadata={
            "help": "markdown file whose results section (between the bench-quality "
            "markers) is replaced by this run's tables; empty = none",
            "metavar": "PATH",
        },
    )


def default_datasets_dir(cwd: Path | None = None) -> Path:
    """``shared/datasets/adbench`` beside the checkout (or, failing that, the cwd).

    Raises
    ------
    ConfigError
        Neither candidate exists; the message lists both and how to choose a folder.
    """
    cwd = Path.cwd() if cwd is None else cwd
    candidates = [REPO_ROOT.parent / SHARED_DATASETS, cwd.resolve().parent / SHARED_DATASETS]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(
        f"no datasets folder given and none found at {tried}; "
        "pass --datasets DIR or set TRIPWIRE_DATASETS"
    )


def run(settings: HarnessQualitySettings, command: str = "") -> QualityResult:
    """``run_quality`` on the default folder unless one is given; the revision recorded."""
    if not settings.datasets:
        settings = replace(settings, datasets=str(default_datasets_dir()))
    result = run_quality(settings, command=command)
    result.meta["code"] = code_revision(("training", "tripwire"))
    return result


def update_doc(path: Path, section: str) -> None:
    """Replace the bench-quality section of ``path`` with ``section`` (ConfigError if absent)."""
    replace_section(path, section, DOC_BEGIN, DOC_END, "Detection quality")
