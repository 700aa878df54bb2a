"""The search-against-a-revision benchmark: it loads an older search and compares bits."""

from __future__ import annotations

import pytest

from benchmarks import knn_against


def test_a_revision_scores_the_same_bits_as_the_checkout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = knn_against.module_at("HEAD")
    assert old.__name__ == "neighbours_at_HEAD" and hasattr(old, "nearest")
    knn_against.main([
        "HEAD", "--rows", "300", "--features", "4", "--test-rows", "256", "--batch", "64",
        "--repeats", "1",
    ])  # fmt: skip
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| knn")]
    assert rows and rows[0].endswith("| yes |")
