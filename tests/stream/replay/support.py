"""Run a replay in-process (the command's own pieces) and keep what it saw, per event."""

from __future__ import annotations

import asyncio
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tripwire.stream import compat
from tripwire.stream.replay.labels import LabelTally, load_labels
from tripwire.stream.replay.read import RangeReader, parse_bound
from tripwire.stream.replay.report import Compared, ModelTally, Tally
from tripwire.stream.replay.run import Progress, Replay, load_versions, replay_range


@dataclass
class Seen:
    """Everything a replay compared, per version."""

    tally: Tally
    doc: dict[str, Any]
    reader: RangeReader
    scores: list[dict[str, list[float]]] = field(default_factory=list)  # per version: id -> scores
    flags: list[dict[str, list[bool]]] = field(default_factory=list)
    alerts: list[list[dict[str, Any]]] = field(default_factory=list)  # per version: the events
    offsets: list[tuple[str, float]] = field(default_factory=list)  # (id, event ms) in order

    def observe(self, c: Compared) -> None:
        for v, (scores, flags) in enumerate(zip(c.scores, c.flags, strict=True)):
            for i, s, a in zip(c.ids, scores.tolist(), flags.tolist(), strict=True):
                self.scores[v][i].append(s)
                self.flags[v][i].append(a)
            self.alerts[v] += [json.loads(a) for a in c.alerts[v]]
        self.offsets += list(zip(c.ids, c.event_ms.tolist(), strict=True))


def replay(
    bootstrap: str,
    registry: str,
    topic: str,
    refs: list[str],
    *,
    start: str = "",
    end: str = "",
    partitions: list[int] | None = None,
    labels: str | None = None,
    max_batch: int = 64,
    max_message_bytes: int = 1_000_000,
) -> Seen:
    """Replay ``topic`` with ``refs`` as ``tripwire replay`` does; what it saw."""
    compat.install_lenient_fetch()
    versions = load_versions(registry, refs)
    lab = load_labels(labels) if labels else None
    models = [
        ModelTally(v.ref, v.scorer.name, v.scorer.version, v.scorer.threshold,
                   v.manifest_sha256, None if lab is None else LabelTally(lab))
        for v in versions
    ]  # fmt: skip
    tally = Tally(models, lab)
    lo, hi = parse_bound(start, "--from"), parse_bound(end, "--to")
    reader = RangeReader({"bootstrap_servers": bootstrap}, topic, partitions, lo, hi)
    seen = Seen(tally, {}, reader)
    n = len(versions)
    seen.scores = [defaultdict(list) for _ in range(n)]
    seen.flags = [defaultdict(list) for _ in range(n)]
    seen.alerts = [[] for _ in range(n)]
    run = Replay(versions, tally, max_message_bytes=max_message_bytes, observers=[seen.observe])
    asyncio.run(replay_range(reader, run, max_batch, Progress(io.StringIO(), enabled=False)))
    parts = [s.tp.partition for s in reader.spans]
    seen.doc = tally.evidence(topic, parts, (start or None, end or None))
    return seen
