"""Per-record fault isolation: an error one record explains costs that record only.

Every step of a micro-batch that may fail on what a record holds (decoding, its
times, ids and keys, building and encoding its outputs) runs per record or falls
back to per record, and a record whose step raised is dead-lettered with reason
``processing_error`` (the exception type and an escaped, bounded message in its
headers). The one whole-batch step, the model call, is isolated here: when
``Scorer.score`` raises on a batch, :func:`score_isolating` first scores a probe
row (zeros, which ``load_scorer`` already scored when the model was loaded); if the
model fails on that too, no record explains the error and it is raised as
:class:`UnexplainedBatchError` (the worker stops). Otherwise the batch is scored by
halves, recursively, until the records that fail on their own are found: a batch
of ``n`` records with ``k`` culprits costs ``O(k log n)`` extra model calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tripwire.core.errors import TripwireError
from tripwire.core.scorer import Scorer, ScoreResult
from tripwire.core.untrusted import escaped
from tripwire.stream.wire.errors import PROCESSING_ERROR, describe

__all__ = ["PROCESSING_ERROR", "Isolated", "UnexplainedBatchError", "describe", "score_isolating"]


class UnexplainedBatchError(TripwireError):
    """The model fails on every input, a probe row included: no record explains it."""


@dataclass
class Isolated:
    """The outcome of :func:`score_isolating`.

    Attributes
    ----------
    scored : ScoreResult
        Scores of the rows of the records in ``kept``, in order.
    kept : list of int
        Indices (into the ``parts`` given) of the records that were scored.
    failed : list of (int, Exception)
        Records the model failed on by themselves, with the error.
    """

    scored: ScoreResult
    kept: list[int]
    failed: list[tuple[int, Exception]]


def score_isolating(scorer: Scorer, parts: Sequence[np.ndarray]) -> Isolated:
    """Score the rows of every record in ``parts`` ((m_i, d) each), isolating failures.

    Raises
    ------
    UnexplainedBatchError
        The batch failed and so does a probe row: the model, not a record.
    """
    try:
        return Isolated(_checked(scorer, np.concatenate(parts)), list(range(len(parts))), [])
    except Exception as e:  # whatever the model raises: find out whether a record explains it
        first = e
    try:
        _checked(scorer, np.zeros((1, scorer.n_features), dtype=np.float32))
    except Exception as probe:
        raise UnexplainedBatchError(
            f"the model fails on the batch ({escaped(first)}) and on a probe row of zeros "
            f"({escaped(probe)}): no record explains it"
        ) from first
    done: list[tuple[int, ScoreResult]] = []
    failed: list[tuple[int, Exception]] = []
    _bisect(scorer, parts, 0, len(parts), done, failed, first)
    done.sort(key=lambda d: d[0])
    kept = sorted(set(range(len(parts))) - {k for k, _ in failed})
    return Isolated(_joined([r for _, r in done]), kept, sorted(failed))


def _bisect(
    scorer: Scorer,
    parts: Sequence[np.ndarray],
    lo: int,
    hi: int,
    done: list[tuple[int, ScoreResult]],
    failed: list[tuple[int, Exception]],
    error: Exception | None,
) -> None:
    """Score ``parts[lo:hi]``; ``error``: it is known to fail with that already."""
    if error is None:
        try:
            done.append((lo, _checked(scorer, np.concatenate(parts[lo:hi]))))
            return
        except Exception as e:  # any model error: isolated below
            error = e
    if hi - lo == 1:
        failed.append((lo, error))
        return
    mid = (lo + hi) // 2
    _bisect(scorer, parts, lo, mid, done, failed, None)
    _bisect(scorer, parts, mid, hi, done, failed, None)


def _checked(scorer: Scorer, X: np.ndarray) -> ScoreResult:
    """``scorer.score(X)``, refusing a result of the wrong shape (a broken detector)."""
    result = scorer.score(X)
    n = len(X)
    contrib = result.contributions
    if result.scores.shape != (n,) or (contrib is not None and contrib.shape != X.shape):
        raise ValueError(
            f"the model returned scores of shape {result.scores.shape} and contributions of "
            f"shape {None if contrib is None else contrib.shape} for {X.shape} inputs"
        )
    return result


def _joined(results: list[ScoreResult]) -> ScoreResult:
    if not results:
        empty = np.empty(0)
        return ScoreResult(empty, empty.astype(bool), None)
    parts = [r.contributions for r in results if r.contributions is not None]
    contrib = np.concatenate(parts) if len(parts) == len(results) else None
    return ScoreResult(
        np.concatenate([r.scores for r in results]),
        np.concatenate([r.is_anomaly for r in results]),
        contrib,
    )
