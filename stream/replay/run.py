"""Scoring a range: every batch through each version's own ``BatchProcessor``.

Each version gets the processor the worker would build for it (its codec for its
feature schema, one ``Scorer.score`` per micro-batch, the same refusals; versions
with the same features share one decoding of the batch, which is deterministic), so a
version replayed gives the scores, decisions and alert ids a worker serving it
gives (scores are batch independent). Per-entity cooldown is off: alerts are the
model's decisions. Nothing a processor builds is produced; the alert events are
kept only for the batch's observers.

Reading and scoring overlap: the event loop fetches the next records while a
thread scores the batch before (one batch in flight).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from aiokafka import ConsumerRecord

from tripwire.core.registry import RegistryReader
from tripwire.core.scorer import Scorer
from tripwire.stream.processing.batch import BatchProcessor, BatchResult, Topics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.processing.model_watcher import load_initial
from tripwire.stream.replay.read import RangeReader
from tripwire.stream.replay.report import Compared, Tally
from tripwire.stream.wire.alerts import AlertBuilder
from tripwire.stream.wire.errors import InvalidEvent
from tripwire.stream.wire.records import Decoded
from tripwire.stream.worker import GIL_SWITCH_INTERVAL, input_record

log = logging.getLogger(__name__)

#: Where a replay's processors would send their outputs (nothing is ever produced).
NOWHERE = Topics(alerts="(replay: alerts)", dlq="(replay: dead letters)")
#: Features named in each alert event, as the worker's default ``--top-k``.
TOP_K = 5
#: Seconds between two progress lines.
PROGRESS_EVERY = 2.0

Observer = Callable[[Compared], None]


@dataclass(frozen=True)
class Version:
    """A model version to replay with: the reference asked, what it resolved to."""

    ref: str
    scorer: Scorer
    manifest_sha256: str


def load_versions(registry: str, refs: Sequence[str]) -> list[Version]:
    """Resolve and load each reference (``ModelLoadError``/``RegistryError`` if one fails)."""
    reader = RegistryReader(registry)
    out = []
    for ref in refs:
        name, version = reader.resolve(ref)
        scorer = load_initial(registry, f"{name}@{version}")
        out.append(Version(ref, scorer, reader.manifest_sha256(name, version)))
        log.info("%s is %s@%s, threshold %.6g", ref, name, version, scorer.threshold)
    return out


class Replay:
    """Scores batches of records with every version and adds them to a :class:`Tally`."""

    def __init__(
        self,
        versions: list[Version],
        tally: Tally,
        *,
        max_message_bytes: int,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.versions = versions
        self.tally = tally
        self.observers = list(observers)
        self.events = 0
        self.processors = [
            BatchProcessor(
                NOWHERE,
                AlertBuilder(f"tripwire://replay/{v.scorer.name}"),
                Cooldown(0.0),
                top_k=TOP_K,
                max_message_bytes=max_message_bytes,
                keep_rows=True,
            )  # fmt: skip
            for v in versions
        ]

    def score(self, records: Sequence[ConsumerRecord]) -> None:
        """Score one micro-batch with every version and add it up."""
        inputs = [input_record(r) for r in records]
        decoded: dict[tuple[str, ...], list[Decoded | InvalidEvent]] = {}
        results = []
        for p, v in zip(self.processors, self.versions, strict=True):
            names = v.scorer.feature_names  # one decoding per feature schema, as exact
            if names not in decoded:
                decoded[names] = p.decode(inputs, v.scorer)
            results.append(p.process(inputs, v.scorer, decoded[names]))
        for m, r in zip(self.tally.models, results, strict=True):
            m.refused.update(r.invalid)
        compared = self._compare(results)
        self.events += len(compared.ids)
        self.tally.add(compared)
        for observe in self.observers:
            observe(compared)

    def _compare(self, results: list[BatchResult]) -> Compared:
        """The events every version scored, in the first version's order."""
        rows = [r.rows for r in results]
        alerts = [[o.value for o in r.outputs if o.topic == NOWHERE.alerts] for r in results]
        if any(x is None for x in rows):  # a version scored nothing of this batch
            for m, x in zip(self.tally.models, rows, strict=True):
                m.uncompared += 0 if x is None else len(x.ids)
            empty = np.empty(0)
            n = len(results)
            return Compared([], [], empty, [empty] * n, [empty.astype(bool)] * n, alerts)
        first = rows[0]
        assert first is not None
        picks: list[np.ndarray | None] = [None] * len(rows)
        same = all(
            x is not None and np.array_equal(x.partition, first.partition)
            and np.array_equal(x.offset, first.offset) and np.array_equal(x.index, first.index)
            for x in rows[1:]
        )  # fmt: skip
        if not same:
            picks = _common(results)
        order = picks[0]
        ids = first.ids if order is None else [first.ids[i] for i in order.tolist()]
        entities = first.entities if order is None else [first.entities[i] for i in order.tolist()]
        event_ms = results[0].event_ms if order is None else results[0].event_ms[order]
        scores = [
            r.scores if p is None else r.scores[p] for r, p in zip(results, picks, strict=True)
        ]
        for m, r, s in zip(self.tally.models, results, scores, strict=True):
            m.uncompared += len(r.scores) - len(s)
        flags = [s > v.scorer.threshold for s, v in zip(scores, self.versions, strict=True)]
        return Compared(ids, entities, np.asarray(event_ms, np.float64), scores, flags, alerts)


def _common(results: list[BatchResult]) -> list[np.ndarray | None]:
    """Per result, the indices of its rows every result has, in the first one's order."""
    keyed = []
    for r in results:
        assert r.rows is not None
        where = zip(r.rows.partition.tolist(), r.rows.offset.tolist(), r.rows.index.tolist(),
                    strict=True)  # fmt: skip
        keyed.append({k: i for i, k in enumerate(where)})
    shared = [k for k in keyed[0] if all(k in other for other in keyed[1:])]
    return [np.array([k_[k] for k in shared], np.int64) for k_ in keyed]


class Progress:
    """A progress line on ``stream`` every ``PROGRESS_EVERY`` seconds (and a last one)."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.started = self._last = time.monotonic()
        self.tty = enabled and self.stream.isatty()

    def __call__(self, reader: RangeReader, events: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < PROGRESS_EVERY):
            return
        self._last = now
        read, total = reader.records_read, reader.total
        seconds = max(now - self.started, 1e-9)
        of = f" / {total:,} ({read / total:.0%})" if total else ""
        line = (f"replay: {read:,}{of} records, {events:,} events compared, "
                f"{read / seconds:,.0f} records/s, {events / seconds:,.0f} events/s")  # fmt: skip
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


async def replay_range(
    reader: RangeReader, replay: Replay, max_batch: int, progress: Progress
) -> None:
    """Read the range and score it, one batch scoring in a thread while the next is read."""
    loop = asyncio.get_running_loop()
    # as the worker: the loop reading the sockets must not wait 5 ms for the scoring thread
    switch = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    pending: asyncio.Future[None] | None = None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="tripwire-replay") as pool:
            async with reader:
                async for records in reader.batches():
                    for i in range(0, len(records), max_batch):
                        if pending is not None:
                            await pending
                        chunk = records[i : i + max_batch]
                        pending = loop.run_in_executor(pool, replay.score, chunk)
                        progress(reader, replay.events)
                if pending is not None:
                    await pending
    finally:
        sys.setswitchinterval(switch)
    progress(reader, replay.events, final=True)
