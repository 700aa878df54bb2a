"""Produce a micro-batch's outputs and wait until the broker has every one of them.

``Delivery.deliver`` hands all records to the producer at once (so they share
produce requests), then awaits all delivery futures together. Records the broker
did not acknowledge are counted in ``tripwire_produce_errors_total`` and produced
again after a backoff (0.1 s doubling to 10 s) until they are acknowledged: the
input offsets of the batch are acknowledged only after ``deliver`` returns, so
giving up would lose them. If the worker is stopping, ``deliver`` raises instead
and the batch stays uncommitted (it is re-scored after the restart).

A record refused as too large (``TOO_LARGE``: by the producer's
``max_request_size`` check or by the broker's ``message.max.bytes``) would be
refused forever, and in-order acks would then stop every partition. Retrying cannot
help, so it is replaced at once by the dead letter of its input (``refuse``, reason
``output_too_large``, see :func:`tripwire.stream.wire.dead_letters.output_dead_letter`);
a batch of several records refused so is first retried record by record, to find
the culprit. Both are counted in ``tripwire_outputs_refused_total``.

``BatchProducer`` is how the worker hands records over: per (topic, partition) it
builds aiokafka record batches itself (``create_batch``/``send_batch``), choosing
each record's partition exactly as ``AIOKafkaProducer.send`` would for its key,
and gets one future per record batch. Going through faust's ``send`` once per
record cost several times more CPU per record than the bytes cost anyway (faust's
wrapper, a metadata wait, the pure-Python murmur2, the accumulator, one future per
record; docs/performance.md, item 11). A batch that fails fails all its
records: they are retried together.

A retried record may arrive after records produced later, and a record whose
acknowledgement was lost may arrive twice; anomaly events carry a deterministic id
for consumers to de-duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from tripwire.core.errors import TripwireError
from tripwire.core.untrusted import escaped
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.wire.records import OutputRecord

log = logging.getLogger(__name__)

FIRST_BACKOFF, MAX_BACKOFF = 0.1, 10.0
#: Produce errors that say the record (or its batch) is too large: never retried as is.
TOO_LARGE: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Queued:
    """Records handed to the producer together, and what became of them.

    Attributes
    ----------
    records : sequence of OutputRecord
        In the order they were produced.
    ack : awaitable or None
        Resolves once the broker acknowledged every one of ``records``, raises if
        it did not. ``None`` when the producer refused them before sending.
    error : BaseException or None
        Why the producer refused them.
    """

    records: Sequence[OutputRecord]
    ack: Awaitable[Any] | None = None
    error: BaseException | None = None


#: ``produce(records)`` queues ``records`` with the producer (in groups of its choice).
Produce = Callable[[Sequence[OutputRecord]], Awaitable[list[Queued]]]
#: ``refuse(record, error)``: what to produce instead of a record refused as too large
#: (``None``: nothing).
Refuse = Callable[[OutputRecord, BaseException], OutputRecord | None]
#: Records that failed together, and why.
Failed = list[tuple[Sequence[OutputRecord], BaseException]]
#: ``partitioner(key, all_partitions, available_partitions) -> partition``, aiokafka's.
Partitioner = Callable[[bytes | None, Sequence[int], Sequence[int]], int]


class DeliveryAborted(TripwireError):
    """The worker is stopping while outputs are still unacknowledged."""


class Delivery:
    """At-least-once production of output records.

    Parameters
    ----------
    produce : callable
        Queues records with the producer (``BatchProducer`` in the worker).
    metrics : Metrics
    stopping : callable
        True once the worker shuts down: stop retrying.
    refuse : callable, optional
        The replacement of a record refused as too large (see the module docstring).
        ``None``: such records are retried like any other.
    """

    def __init__(
        self,
        produce: Produce,
        metrics: Metrics,
        stopping: Callable[[], bool],
        refuse: Refuse | None = None,
    ) -> None:
        self._produce = produce
        self.metrics = metrics
        self._stopping = stopping
        self._refuse = refuse

    async def deliver(self, outputs: Sequence[OutputRecord]) -> None:
        """Return once the broker acknowledged every record of ``outputs`` (or its
        replacement)."""
        pending = list(outputs)
        alone: set[int] = set()
        delay = FIRST_BACKOFF
        while pending:
            failed = await self._attempt(pending, alone)
            if not failed:
                return
            self.metrics.produce_errors.inc(sum(len(records) for records, _ in failed))
            pending, alone, error = self._next_attempt(failed)
            if error is None:  # only too-large records: their replacements go at once
                continue
            if self._stopping():
                raise DeliveryAborted(f"{len(pending)} output records unacknowledged at shutdown")
            log.warning(
                "%d output records not acknowledged (%s); retrying in %.1fs",
                len(pending), escaped(error), delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _next_attempt(
        self, failed: Failed
    ) -> tuple[list[OutputRecord], set[int], BaseException | None]:
        """What to produce next, which of it record by record, and the first retriable error."""
        pending: list[OutputRecord] = []
        alone: set[int] = set()
        retriable: BaseException | None = None
        for records, error in failed:  # in order: retried records keep their order
            if self._refuse is None or not isinstance(error, TOO_LARGE):
                pending.extend(records)
                retriable = retriable or error
            elif len(records) > 1:  # which one is too large? each alone will tell
                pending.extend(records)
                alone.update(map(id, records))
            else:
                replacement = self._replace(self._refuse, records[0], error)
                if replacement is not None:
                    pending.append(replacement)
        return pending, alone, retriable

    def _replace(
        self, refuse: Refuse, record: OutputRecord, error: BaseException
    ) -> OutputRecord | None:
        """``refuse(record, error)``, counted and logged."""
        replacement = refuse(record, error)
        outcome = "dropped" if replacement is None else "dead_lettered"
        self.metrics.outputs_refused.labels(outcome=outcome).inc()
        log_at = log.error if replacement is None else log.warning
        log_at(
            "a %d-byte record for %s was refused as too large (%s): %s",
            len(record.value), escaped(record.topic), escaped(error),
            "dropped, even its smallest dead letter was refused" if replacement is None
            else f"dead-lettered to {escaped(replacement.topic)}",
        )  # fmt: skip
        return replacement

    async def _attempt(self, records: list[OutputRecord], alone: set[int]) -> Failed:
        """Produce ``records`` once (those in ``alone`` one per call); the failed groups."""
        calls = [[r for r in records if id(r) not in alone]] + [
            [r] for r in records if id(r) in alone
        ]
        queued: list[Queued] = []
        for group in calls:
            if not group:
                continue
            try:
                queued += await self._produce(group)
            except Exception as e:  # nothing was queued (e.g. the producer is not started)
                queued.append(Queued(group, error=e))
        acks = [q.ack for q in queued if q.ack is not None]
        results = iter(await asyncio.gather(*acks, return_exceptions=True))
        failed: Failed = []
        for q in queued:
            outcome = q.error if q.ack is None else next(results)
            if isinstance(outcome, BaseException):
                failed.append((q.records, outcome))
            elif q.ack is None:  # refused without a reason: a bug in produce
                failed.append((q.records, RuntimeError("refused without an error")))
        return failed


@dataclass(slots=True)
class _Chunk:
    """Records for one partition; ``batch`` is ``None`` for one oversized record."""

    batch: Any  # aiokafka BatchBuilder (untyped)
    records: list[OutputRecord] = field(default_factory=list)


class BatchProducer:
    """Queues output records with an aiokafka producer as record batches (a ``Produce``).

    Records keep their order within a partition. Each record goes to the partition
    ``producer.send(topic, key=record.key)`` would choose: the producer's
    partitioner on the key bytes against the topic's partitions (a key of ``None``:
    a random available partition, as ``send`` does).

    Parameters
    ----------
    producer : callable
        Returns the started ``AIOKafkaProducer``.
    max_batch_bytes : int
        The producer's ``max_batch_size``. A record that alone exceeds it goes
        through ``producer.send`` (its request-size check, a batch of its own).
    partitioner : callable, optional
        The partitioner the producer was built with; ``None`` (or aiokafka's
        ``DefaultPartitioner``) is computed by :func:`default_partition`.
    """

    def __init__(
        self,
        producer: Callable[[], AIOKafkaProducer],
        max_batch_bytes: int,
        partitioner: Partitioner | None = None,
    ) -> None:
        self._producer = producer
        self.max_batch_bytes = max_batch_bytes
        if partitioner is None or type(partitioner) is DefaultPartitioner:
            partitioner = default_partition
        self._partition = partitioner

    async def __call__(self, records: Sequence[OutputRecord]) -> list[Queued]:
        producer = self._producer()
        layouts: dict[str, tuple[list[int], list[int]]] = {}
        refused: list[Queued] = []
        for topic in dict.fromkeys(r.topic for r in records):
            try:
                await producer.partitions_for(topic)  # waits for the topic's metadata
            except Exception as e:
                refused.append(Queued([r for r in records if r.topic == topic], error=e))
                continue
            cluster = producer.client.cluster
            # the very lists AIOKafkaProducer._partition builds for each send
            all_partitions = list(cluster.partitions_for_topic(topic))
            layouts[topic] = (all_partitions, list(cluster.available_partitions_for_topic(topic)))
        chunks = self._split(producer, records, layouts)
        return refused + await self._submit(producer, chunks)

    def _split(
        self,
        producer: AIOKafkaProducer,
        records: Sequence[OutputRecord],
        layouts: dict[str, tuple[list[int], list[int]]],
    ) -> dict[tuple[str, int], list[_Chunk]]:
        """Records of known topics in record batches per (topic, partition), in order."""
        chunks: dict[tuple[str, int], list[_Chunk]] = {}
        filling: dict[tuple[str, int], _Chunk] = {}
        partition_of = self._partition
        for record in records:
            layout = layouts.get(record.topic)
            if layout is None:
                continue  # refused with its topic
            tp = (record.topic, partition_of(record.key, *layout))
            chunk = filling.get(tp)
            if chunk is None or not _append(chunk.batch, record):
                chunk = _Chunk(producer.create_batch())
                _append(chunk.batch, record)  # a batch always takes its first record
                if chunk.batch.size() > self.max_batch_bytes:
                    chunk.batch = None
                    filling.pop(tp, None)
                else:
                    filling[tp] = chunk
                chunks.setdefault(tp, []).append(chunk)
            chunk.records.append(record)
        return chunks

    async def _submit(
        self, producer: AIOKafkaProducer, chunks: dict[tuple[str, int], list[_Chunk]]
    ) -> list[Queued]:
        """Queue the chunks: every partition's first, then every second, ...

        The accumulator takes one batch per partition until the sender has drained
        it, so queuing round-robin lets one produce request carry all partitions.
        A partition whose chunk was refused refuses the rest of its chunks too, so
        that retried records keep their order.
        """
        queued: list[Queued] = []
        refused: dict[tuple[str, int], BaseException] = {}
        for i in range(max(map(len, chunks.values()), default=0)):
            for tp, tp_chunks in chunks.items():
                if i >= len(tp_chunks):
                    continue
                chunk = tp_chunks[i]
                if tp in refused:
                    queued.append(Queued(chunk.records, error=refused[tp]))
                    continue
                try:
                    ack = await _queue(producer, tp, chunk)
                except Exception as e:
                    refused[tp] = e
                    queued.append(Queued(chunk.records, error=e))
                else:
                    queued.append(Queued(chunk.records, ack))
        return queued


def _append(batch: Any, record: OutputRecord) -> bool:
    """Add ``record`` to an open aiokafka ``BatchBuilder``; False if it is full."""
    return (
        batch.append(timestamp=None, key=record.key, value=record.value, headers=record.headers)
        is not None
    )


async def _queue(producer: AIOKafkaProducer, tp: tuple[str, int], chunk: _Chunk) -> Any:
    """Hand one chunk to the producer; its delivery future."""
    topic, partition = tp
    if chunk.batch is None:
        (r,) = chunk.records
        return await producer.send(
            topic, r.value, key=r.key, partition=partition, headers=r.headers
        )
    chunk.batch.close()  # nothing else may join it: its future covers exactly chunk.records
    return await producer.send_batch(chunk.batch, topic, partition=partition)


def default_partition(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """The partition aiokafka's ``DefaultPartitioner`` chooses, computed faster.

    Parameters
    ----------
    key : bytes or None
        Serialized key. ``None``: a random available partition (any partition if
        none is available), as aiokafka does.
    all_partitions : sequence of int
        The topic's partitions, in the order aiokafka lists them.
    available : sequence of int
        Partitions with a known leader.
    """
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 - a spread, not a secret
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (same as ``aiokafka.partitioner.murmur2``).

    Reads the 4-byte words with one ``struct`` call and folds the masking, which
    makes it faster than aiokafka's transliteration of the Java code
    (docs/performance.md, "Measured figures behind the code").
    """
    n = len(data)
    h = 0x9747B28C ^ n
    words = n >> 2
    if words:
        for k in struct.unpack_from(f"<{words}I", data):
            k = (k * _M) & _MASK
            k = ((k ^ (k >> 24)) * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    tail = n & 3
    if tail:
        end = n - tail
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)
