"""The harness's quality benchmark: its default datasets folder and the doc section."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import quality
from tripwire.core.errors import ConfigError


def test_default_folder_is_beside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "work" / "main"
    repo.mkdir(parents=True)
    monkeypatch.setattr(quality, "REPO_ROOT", repo)
    with pytest.raises(ConfigError, match="TRIPWIRE_DATASETS"):
        quality.default_datasets_dir(cwd=repo)
    shared = tmp_path / "work" / "shared" / "datasets" / "adbench"
    shared.mkdir(parents=True)
    assert quality.default_datasets_dir(cwd=tmp_path) == shared


def test_update_doc_replaces_only_the_results_section(tmp_path: Path) -> None:
    doc = tmp_path / "quality.md"
    doc.write_text(f"intro\n{quality.DOC_BEGIN}\nold\n{quality.DOC_END}\noutro\n")
    quality.update_doc(doc, "new table\n")
    assert doc.read_text() == f"intro\n{quality.DOC_BEGIN}\nnew table\n{quality.DOC_END}\noutro\n"
    doc.write_text("no markers\n")
    with pytest.raises(ConfigError, match="no '<!-- BEGIN"):
        quality.update_doc(doc, "x\n")
    assert doc.read_text() == "no markers\n"
    fresh = tmp_path / "new.md"
    quality.update_doc(fresh, "t\n")
    assert quality.DOC_BEGIN in fresh.read_text()
