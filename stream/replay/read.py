"""The ranged reader: records of a topic between two bounds, without a consumer group.

A plain aiokafka consumer with ``group_id=None``: partitions are assigned by hand
and sought to, nothing is ever committed and no group is joined, so the production
group's offsets and members are untouched. Nothing is produced.

A bound is an offset (the same for every partition) or an ISO-8601 time with a UTC
offset. Offsets: ``[from, to)``. Times select what Kafka's offsets-for-times
would: from the first record whose timestamp is at or after ``from`` up to, not
including, the first one at or after ``to``. The broker's offsets-for-times answer
is only a hint where to start (records before it all have earlier timestamps);
the bounds themselves are found by reading the records' timestamps, so a broker
whose answer is approximate (Tansu's) costs reading time, never exactness.
Without ``to`` the range ends at the log end when the replay starts: the high
watermark of each partition's first fetch (brokers' ListOffsets end can lag it:
Tansu answers the last batch's base offset + 1).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from tripwire.core.errors import ConfigError, TripwireError
from tripwire.core.untrusted import escaped

#: Records handed over per ``getmany`` (bounds the parsed records held at once).
MAX_RECORDS = 4096
#: Fetch long-poll, ms: an idle partition answers this fast (its high watermark).
FETCH_WAIT_MS = 100


class ReplayReadError(TripwireError):
    """The topic or its partitions cannot be read as asked."""


@dataclass(frozen=True)
class Bound:
    """One end of the range: an offset or an epoch-ms time (exactly one is set)."""

    text: str
    offset: int | None = None
    time_ms: int | None = None


def parse_bound(text: str, option: str) -> Bound | None:
    """``"1234"`` -> an offset; ``"2026-11-28T10:00:00Z"`` -> a time; ``""`` -> None.

    >>> parse_bound("42", "--from").offset
    42
    >>> parse_bound("1970-01-01T00:00:01+00:00", "--to").time_ms
    1000
    """
    raw = text.strip()
    if not raw:
        return None
    if len(raw) > 100:  # no offset or time is this long (the evidence keeps it as given)
        raise ConfigError(f"{option} {escaped(raw, 40)}...: longer than 100 characters")
    if raw.isdigit():
        return Bound(raw, offset=int(raw))
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"{option} {escaped(raw, 100)}: expected an offset or an ISO-8601 time "
            "(2026-11-28T10:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise ConfigError(f"{option} {escaped(raw, 100)}: give the time's UTC offset (Z or +01:00)")
    return Bound(raw, time_ms=math.floor(when.timestamp() * 1000))


@dataclass
class Span:
    """What is left to read of one partition."""

    tp: TopicPartition
    start: int  # first offset of the range (so far: a time start moves it on)
    end: int | None  # an offset ``to`` (None: none given)
    started: bool  # the start bound is passed (False: skipping records before a time)
    cap: int | None = None  # the log end when the replay started (None: not fetched yet)
    done: bool = False
    read: int = 0  # records handed out

    @property
    def limit(self) -> int | None:
        """The first offset not to read, as far as known."""
        ends = [e for e in (self.end, self.cap) if e is not None]
        return min(ends) if ends else None


class RangeReader:
    """Reads the range of the partitions of ``topic``; use ``async with``.

    Parameters
    ----------
    options : dict
        aiokafka client options (servers and security).
    topic : str
    partitions : list of int or None
        ``None``: every partition of the topic.
    start, end : Bound or None
    """

    def __init__(
        self,
        options: dict[str, Any],
        topic: str,
        partitions: list[int] | None,
        start: Bound | None,
        end: Bound | None,
    ) -> None:
        self.topic, self.partitions = topic, partitions
        self.start_ms = None if start is None else start.time_ms
        self.end_ms = None if end is None else end.time_ms
        self.start_offset = None if start is None else start.offset
        self.end_offset = None if end is None else end.offset
        self.options = options
        self.spans: list[Span] = []

    async def __aenter__(self) -> RangeReader:
        # never a group: nothing joined, nothing committed (aiokafka wants a running loop)
        self.consumer = AIOKafkaConsumer(
            **self.options, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
        )  # fmt: skip
        await self.consumer.start()
        try:
            await self._plan()
        except BaseException:
            await self.consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def _partitions(self) -> list[int]:
        known = await self.consumer.topics() and self.consumer.partitions_for_topic(self.topic)
        if not known:
            raise ReplayReadError(f"topic {escaped(self.topic)} does not exist")
        if self.partitions is None:
            return sorted(known)
        missing = sorted(set(self.partitions) - set(known))
        if missing:
            raise ReplayReadError(
                f"topic {escaped(self.topic)} has no partition {missing} (it has {sorted(known)})"
            )
        return self.partitions

    async def _plan(self) -> None:
        tps = [TopicPartition(self.topic, p) for p in await self._partitions()]
        first = await self.consumer.beginning_offsets(tps)
        hints = await self._time_hints(tps)
        for tp in tps:
            start = max(first[tp], self.start_offset or 0)
            if hints is not None:
                hint = hints.get(tp)
                start = max(start, hint) if hint is not None else -1
            span = Span(tp, max(start, 0), self.end_offset, started=self.start_ms is None)
            span.done = start < 0 or (span.end is not None and span.end <= span.start)
            self.spans.append(span)
        self.consumer.assign(tps)
        for span in self.spans:
            self.consumer.seek(span.tp, span.start)
            if span.done:
                self.consumer.pause(span.tp)

    async def _time_hints(
        self, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int | None] | None:
        """Offsets-for-times of a time start (``None``: read from the beginning).

        A partition mapped to ``None`` has no record at or after the time.
        """
        if self.start_ms is None:
            return None
        try:
            found = await self.consumer.offsets_for_times({tp: self.start_ms for tp in tps})
        except Exception:  # a broker without offsets-for-times: filter by time alone
            return None
        return {tp: None if o is None else o.offset for tp, o in found.items()}

    @property
    def total(self) -> int | None:
        """Records in the range, as far as known (``None`` until every end is)."""
        limits = [s.limit for s in self.spans]
        if any(lim is None for lim in limits):
            return None
        return sum(
            max(0, lim - s.start)
            for s, lim in zip(self.spans, limits, strict=True)
            if lim is not None
        )

    @property
    def records_read(self) -> int:
        return sum(s.read for s in self.spans)

    async def batches(self) -> AsyncIterator[list[ConsumerRecord]]:
        """Records of the range, a fetch at a time, until every partition is done."""
        by_tp = {s.tp: s for s in self.spans}
        while not all(s.done for s in self.spans):
            fetched = await self.consumer.getmany(
                timeout_ms=FETCH_WAIT_MS * 5, max_records=MAX_RECORDS
            )
            out: list[ConsumerRecord] = []
            for tp, records in fetched.items():
                out.extend(self._take(by_tp[tp], records))
            await self._close_finished()
            if out:
                yield out

    def _take(self, span: Span, records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
        """The records of ``records`` inside the range; marks the span done at its end."""
        if span.done:
            return []
        self._learn_cap(span)
        kept: list[ConsumerRecord] = []
        for r in records:
            limit = span.limit
            if limit is not None and r.offset >= limit:
                self._finish(span)
                break
            if not span.started:
                if self.start_ms is not None and _ts(r) < self.start_ms:
                    span.start = r.offset + 1  # before the range: not counted
                    continue
                span.started = True
            if self.end_ms is not None and _ts(r) >= self.end_ms:
                span.end = r.offset
                self._finish(span)
                break
            kept.append(r)
        span.read += len(kept)
        return kept

    def _learn_cap(self, span: Span) -> None:
        if span.cap is None:  # the log end now: the first fetch's high watermark
            span.cap = self.consumer.highwater(span.tp)

    def _finish(self, span: Span) -> None:
        span.done = True
        self.consumer.pause(span.tp)

    async def _close_finished(self) -> None:
        """Mark done the partitions whose position reached their (known) end."""
        for span in self.spans:
            if span.done:
                continue
            self._learn_cap(span)
            limit = span.limit
            if limit is not None and await self.consumer.position(span.tp) >= limit:
                self._finish(span)


def _ts(record: ConsumerRecord) -> int:
    """The record's timestamp, epoch ms (-1: none, before any time)."""
    ts = record.timestamp
    return ts if ts is not None and ts >= 0 else -1
