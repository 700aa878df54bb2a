"""Metrics at a threshold, the text summary and the score plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tripwire.core.errors import ConfigError
from tripwire.training.evaluate import evaluate, format_metrics, plot_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_on_a_hand_counted_example() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.8, 0.7, 0.35])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    m = evaluate(scores, labels, threshold=0.5)
    # flagged: 0.9 (normal), 0.8, 0.7 (anomalous); missed: 0.4, 0.35
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 2, "tp": 2}
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["fpr"] == pytest.approx(0.25)
    assert m["accuracy"] == pytest.approx(5 / 8)
    # 16 normal/anomalous pairs; anomalous ranked higher in 12 of them
    assert m["roc_auc"] == pytest.approx(12 / 16)
    assert 0 < m["pr_auc"] <= 1
    assert m["n"] == 8 and m["n_anomalies"] == 4 and m["threshold"] == 0.5


def test_score_equal_to_threshold_is_normal() -> None:
    m = evaluate(np.array([1.0, 2.0]), np.array([0, 1]), threshold=1.0)
    assert m["confusion"] == {"tn": 1, "fp": 0, "fn": 0, "tp": 1}


def test_single_class_has_no_auc_and_no_nan() -> None:
    m = evaluate(np.array([1.0, 2.0, 3.0]), np.zeros(3, int), threshold=2.5)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["recall"] == 0.0 and m["precision"] == 0.0 and m["fpr"] == pytest.approx(1 / 3)


def test_scores_must_be_aligned_with_labels() -> None:
    """The tutorial scored a shuffled loader against unshuffled labels: order matters."""
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.2).astype(int)
    scores = labels * 5.0 + rng.normal(size=500)
    aligned = evaluate(scores, labels, 2.5)
    shuffled = evaluate(rng.permutation(scores), labels, 2.5)
    assert aligned["recall"] > 0.95 and aligned["roc_auc"] > 0.99
    assert shuffled["recall"] < 0.5 and shuffled["roc_auc"] < 0.7
    with pytest.raises(ConfigError, match="499 scores but 500 labels"):
        evaluate(scores[:-1], labels, 2.5)


def test_format_metrics_is_readable() -> None:
    text = format_metrics(evaluate(np.array([0.0, 1.0]), np.array([0, 1]), 0.5))
    assert "accuracy       1.0000" in text and "tn=1 fp=0 fn=0 tp=1" in text
    no_auc = format_metrics(evaluate(np.array([0.0]), np.array([0]), 0.5))
    assert "ROC-AUC        n/a" in no_auc


@pytest.mark.parametrize(
    ("scores", "labels"),
    [
        (np.r_[np.random.default_rng(1).normal(1, 0.1, 200), np.full(20, 5.0)], "split"),
        (np.geomspace(1e-3, 1e4, 300), "split"),  # wide range: log x axis
        (np.random.default_rng(2).normal(size=100), None),
        (np.full(10, 3.0), "split"),  # constant scores
    ],
)
def test_plot_scores_writes_a_png(tmp_path: Path, scores: np.ndarray, labels: str | None) -> None:
    y = None if labels is None else (np.arange(scores.size) % 5 == 0).astype(int)
    out = plot_scores(
        tmp_path / "sub" / "scores.png", scores, y, threshold=float(np.median(scores))
    )
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
