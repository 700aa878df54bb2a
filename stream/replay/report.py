"""What a replay adds up: per version, per pair of versions, and the report it writes.

Every figure is over the *compared* events: those every version scored (an event
one version refused and another scored is counted apart, ``uncompared``), so that
each pair of versions is compared on the same events. Counts are exact; score
quantiles come from a :class:`~tripwire.stream.replay.sketch.Reservoir` (exact up to
its capacity). Alerts are model decisions (score > threshold), before any
per-entity cooldown, matched between versions event by event (by input id and
position in the topic).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tripwire.core.registry.evidence import (
    FORMAT,
    SCHEMA_VERSION,
    evidence_time,
    model_key,
    rate,
    tripwire_version,
)
from tripwire.stream.replay.labels import Labels, LabelTally
from tripwire.stream.replay.sketch import Reservoir, TimeBins

#: Entities whose alerts changed that a comparison tracks (the rest only counted).
MAX_ENTITIES = 100_000
DIFF_SERIES = ("only_baseline", "only_candidate", "both")


@dataclass(frozen=True)
class Compared:
    """The events of one micro-batch that every version scored, aligned across versions.

    Attributes
    ----------
    ids, entities : list of str, length n
    event_ms : ndarray of shape (n,)
        Event times (epoch ms; NaN when unknown).
    scores, flags : list (one per version) of ndarray of shape (n,)
        Each version's scores and decisions (score > its threshold).
    alerts : list (one per version) of list of bytes
        The anomaly events each version's processor built for the batch (all its
        alerts, compared or not): the JSON the worker would produce.
    """

    ids: list[str]
    entities: list[str]
    event_ms: np.ndarray
    scores: list[np.ndarray]
    flags: list[np.ndarray]
    alerts: list[list[bytes]]


@dataclass
class ModelTally:
    """One version's figures."""

    ref: str
    name: str
    version: str
    threshold: float
    manifest_sha256: str
    labels: LabelTally | None = None
    events: int = 0
    alerts: int = 0
    scores: Reservoir = field(default_factory=Reservoir)
    refused: Counter[str] = field(default_factory=Counter)
    uncompared: int = 0

    @property
    def key(self) -> str:
        return model_key(self.name, self.version)


@dataclass
class PairTally:
    """The comparison of version ``a`` (baseline) with ``b`` (candidate)."""

    a: int
    b: int
    only_a: int = 0
    only_b: int = 0
    both: int = 0
    entities: dict[str, list[int]] = field(default_factory=dict)
    untracked: int = 0
    shift: Reservoir = field(default_factory=Reservoir)
    bins: TimeBins = field(default_factory=lambda: TimeBins(DIFF_SERIES))

    def add(self, c: Compared, margin_a: np.ndarray, margin_b: np.ndarray) -> None:
        fa, fb = c.flags[self.a], c.flags[self.b]
        both, only_a, only_b = fa & fb, fa & ~fb, fb & ~fa
        self.both += int(both.sum())
        self.only_a += int(only_a.sum())
        self.only_b += int(only_b.sum())
        self.shift.add(margin_b - margin_a)
        for series, mask in zip(DIFF_SERIES, (only_a, only_b, both), strict=True):
            if mask.any():
                self.bins.add(c.event_ms[mask], series)
        for side, mask in ((0, only_a), (1, only_b)):
            for i in np.flatnonzero(mask).tolist():
                counts = self.entities.get(c.entities[i])
                if counts is None:
                    if len(self.entities) >= MAX_ENTITIES:
                        self.untracked += 1
                        continue
                    counts = self.entities[c.entities[i]] = [0, 0]
                counts[side] += 1

    def top_entities(self, n: int) -> list[tuple[str, int, int]]:
        """The ``n`` entities with the most changed alerts, most first (ties by name)."""
        ranked = sorted(self.entities.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
        return [(e, a, b) for e, (a, b) in ranked[:n]]


class Tally:
    """Everything a replay adds up, batch by batch."""

    def __init__(self, models: list[ModelTally], labels: Labels | None = None) -> None:
        self.models = models
        self.labels = labels
        self.labelled = 0
        self.positives = 0
        self.pairs = [
            PairTally(i, j) for i in range(len(models)) for j in range(i + 1, len(models))
        ]

    def add(self, c: Compared) -> None:
        """Add the compared events of one batch."""
        margins = [s - m.threshold for s, m in zip(c.scores, self.models, strict=True)]
        truth = None if self.labels is None else self.labels.of(c.ids, c.event_ms)
        if truth is not None:
            self.labelled += int((truth >= 0).sum())
            self.positives += int((truth == 1).sum())
        for m, scores, flags in zip(self.models, c.scores, c.flags, strict=True):
            m.events += len(scores)
            m.alerts += int(flags.sum())
            m.scores.add(scores)
            if m.labels is not None and truth is not None:
                m.labels.add(truth, flags, c.event_ms)
        for pair in self.pairs:
            pair.add(c, margins[pair.a], margins[pair.b])

    def evidence(self, topic: str, partitions: list[int], bounds: tuple[str | None, str | None],
                 top_entities: int = 10) -> dict[str, Any]:  # fmt: skip
        """The rollout evidence document (docs/formats.md, "Rollout evidence")."""
        models: dict[str, Any] = {}
        for m in self.models:
            models.setdefault(m.key, self._model(m))
        labels = None
        if self.labels is not None:
            labels = {"source": self.labels.source, "labelled_events": self.labelled,
                      "positives": self.positives}  # fmt: skip
            if len(self.labels.incidents):
                labels["incidents"] = len(self.labels.incidents)
        return {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "source": "replay",
            "created_at": evidence_time(time.time()), "tripwire": tripwire_version(),
            "input": {"topic": topic, "partitions": partitions, "from": bounds[0],
                      "to": bounds[1]},
            "labels": labels, "models": models,
            "comparisons": [self._pair(p, top_entities) for p in self.pairs],
        }  # fmt: skip

    def _model(self, m: ModelTally) -> dict[str, Any]:
        quantiles = m.scores.quantiles() if m.events else None
        return {
            "ref": m.ref, "manifest_sha256": m.manifest_sha256, "threshold": m.threshold,
            "events": m.events, "alerts": m.alerts, "alert_rate": rate(m.alerts, m.events),
            "score_quantiles": quantiles,
            "labels": None if m.labels is None else label_scores(m.labels),
        }  # fmt: skip

    def _pair(self, p: PairTally, top_entities: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "baseline": self.models[p.a].key, "candidate": self.models[p.b].key,
            "only_baseline": p.only_a, "only_candidate": p.only_b, "both": p.both,
            "entities": [
                {"entity": e[:1024], "only_baseline": a, "only_candidate": b}
                for e, a, b in p.top_entities(top_entities)
            ],
        }  # fmt: skip
        if p.shift.seen:
            q = p.shift.quantiles({"p50": 0.5, "p90": 0.9, "p99": 0.99})
            out["score_shift"] = {k: q[k] for k in ("p50", "p90", "p99")}
        return out


def label_scores(t: LabelTally) -> dict[str, Any]:
    """The ``labels`` of a model in the evidence format."""
    precision = t.tp / (t.tp + t.fp) if t.tp + t.fp else None
    recall = t.tp / (t.tp + t.fn) if t.tp + t.fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * t.tp / (2 * t.tp + t.fp + t.fn)
    out: dict[str, Any] = {"tp": t.tp, "fp": t.fp, "fn": t.fn, "tn": t.tn,
                           "precision": precision, "recall": recall, "f1": f1}  # fmt: skip
    if len(t.labels.incidents):
        out["incidents"] = [
            {
                "start": evidence_time(start / 1000),
                "end": evidence_time(end / 1000),
                "detected_at": None if np.isinf(first) else evidence_time(first / 1000),
                "time_to_detect_s": None if np.isinf(first) else (first - start) / 1000,
            }  # fmt: skip
            for (start, end), first in zip(
                t.labels.incidents.tolist(), t.first_alert.tolist(), strict=True
            )  # fmt: skip
        ]
    return out
