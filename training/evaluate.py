"""Evaluation of a detector + threshold on a labelled test split.

``evaluate`` gives the metrics dict recorded in the manifest, ``format_metrics`` a
readable summary and ``plot_scores`` a PNG of the score distributions with the
threshold drawn. The test split must never have been used for training or
calibration, and ``scores[i]`` must belong to the row labelled ``labels[i]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tripwire.core.errors import ConfigError

#: Score ranges wider than this ratio (max / positive min) get a log-scaled x axis.
_LOG_X_RATIO = 1e3


def evaluate(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Metrics of ``scores > threshold`` against ``labels``.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Anomaly scores, higher = more anomalous.
    labels : ndarray of shape (n,)
        1 = anomaly, 0 = normal, aligned with ``scores``.
    threshold : float

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc`` (average precision; both None when only one class
        is present), ``precision``, ``recall``, ``f1``, ``fpr``, ``accuracy``,
        ``threshold``, ``n``, ``n_anomalies`` and ``confusion``
        (``{"tn", "fp", "fn", "tp"}``). Ratios with an empty denominator are 0.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if s.shape != y.shape:
        raise ConfigError(f"{s.size} scores but {y.size} labels")
    if s.size == 0:
        raise ConfigError("cannot evaluate an empty test split")
    pred = s > threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    both = 0 < tp + fn < y.size
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "pr_auc": float(average_precision_score(y, s)) if both else None,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "fpr": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, y.size),
        "threshold": float(threshold),
        "n": int(y.size),
        "n_anomalies": int(tp + fn),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def format_metrics(metrics: dict[str, Any], show_threshold: bool = True) -> str:
    """A few readable lines summarising ``evaluate``'s output."""

    def f(key: str) -> str:
        v = metrics.get(key)
        return "n/a" if v is None else f"{v:.4f}"

    c = metrics["confusion"]
    threshold = [f"threshold      {metrics['threshold']:.6g}"] if show_threshold else []
    return "\n".join(
        [
            f"test rows      {metrics['n']} ({metrics['n_anomalies']} anomalous)",
            *threshold,
            f"ROC-AUC        {f('roc_auc')}    PR-AUC  {f('pr_auc')}",
            f"accuracy       {f('accuracy')}",
            f"precision      {f('precision')}    recall  {f('recall')}    F1  {f('f1')}",
            f"FPR            {f('fpr')}",
            f"confusion      tn={c['tn']} fp={c['fp']} fn={c['fn']} tp={c['tp']}",
        ]
    )


def plot_scores(
    path: str | Path,
    scores: np.ndarray,
    labels: np.ndarray | None,
    threshold: float,
    title: str = "",
) -> Path:
    """Save a PNG of score histograms (normal vs anomalous) with the threshold line.

    The y axis is log-scaled (tails matter), and the x axis too when scores are
    positive and span more than three orders of magnitude.

    Returns
    -------
    Path
        Where the PNG was written (parent directories are created).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    edges = [float(b) for b in _bins(s, threshold)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        _histograms(ax, s, labels, edges)
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
        ax.set_yscale("log")
        if edges[0] > 0 and edges[-1] / edges[0] > _LOG_X_RATIO:
            ax.set_xscale("log")
        ax.set_xlabel("anomaly score (higher = more anomalous)")
        ax.set_ylabel("rows")
        ax.set_title(title or "score distribution")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out


def _histograms(ax: Any, s: np.ndarray, labels: np.ndarray | None, edges: list[float]) -> None:
    if labels is None:
        ax.hist(s, bins=edges, alpha=0.7, label=f"scores (n={s.size})", color="tab:blue")
        return
    y = np.asarray(labels).reshape(-1)
    for cls, name, color in ((0, "normal", "tab:blue"), (1, "anomalous", "tab:red")):
        part = s[y == cls]
        if part.size:
            ax.hist(part, bins=edges, alpha=0.6, label=f"{name} (n={part.size})", color=color)


def _bins(s: np.ndarray, threshold: float) -> np.ndarray:
    lo = min(float(s.min()), threshold)
    hi = max(float(s.max()), threshold)
    if hi <= lo:
        hi = lo + 1.0
    if lo > 0 and hi / lo > _LOG_X_RATIO:
        return np.geomspace(lo, hi, 61)
    return np.linspace(lo, hi, 61)
