"""Every private internal of faust, mode, aiokafka and prometheus_client the worker uses.

The worker's fast path (:mod:`tripwire.stream.kafka.consumer`) runs inside faust's
consumer services, the producer path hands record batches to faust's aiokafka
producer, and the metrics add a whole micro-batch to a histogram at once; all three
need attributes and hooks these libraries do not document. They are reached here
and nowhere else, so an upgrade is checked in one module:

- faust / mode: the consumer's private hooks (:class:`FaustConsumer` gives them
  public names) and state (read offsets, committed offsets, active partitions,
  unacked messages), a service's stop flag, the producer inside faust's producer,
  the worker's stop-signal hook (:func:`worker_with_stop_hook`);
- aiokafka: the fetcher's long-poll and partition states (:class:`ConsumerThread`),
  its record parsing (:func:`install_lenient_fetch`: a header key that is not UTF-8);
- prometheus_client: a histogram's buckets (:func:`observe_many`).

``VERIFIED`` are the versions this was read against and tested with; pyproject.toml
pins them exactly, and :func:`check_versions` (run when the worker builds its app)
refuses to start with others.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from importlib import metadata
from typing import Any, cast

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy, _DefaultRecordPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import decode_varint
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustKafkaConsumer
from faust.types import TP, AppT
from faust.types.transports import TPorTopicSet
from mode import Service, ServiceT
from mode.utils.futures import notify
from prometheus_client import Histogram

from tripwire.core.errors import ConfigError
from tripwire.core.untrusted import escaped

#: Distribution -> the version the private accesses below were verified against.
VERIFIED = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.0",
    "prometheus-client": "0.26.0",
}


class UnverifiedVersions(ConfigError):
    """An installed library is not the version ``tripwire.stream.compat`` was verified on."""


def check_versions(installed: Callable[[str], str] = metadata.version) -> None:
    """Raise :class:`UnverifiedVersions` unless every library is its ``VERIFIED`` version."""
    found: dict[str, str] = {}
    for name in VERIFIED:
        try:
            found[name] = installed(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrong = {name: v for name, v in found.items() if v != VERIFIED[name]}
    if wrong:
        have = ", ".join(f"{name} {v}" for name, v in wrong.items())
        want = ", ".join(f"{name}=={v}" for name, v in VERIFIED.items())
        raise UnverifiedVersions(
            f"the worker reaches private internals verified only with {want}; installed: "
            f"{have}. Install those versions (pyproject.toml pins them)."
        )


# -- mode ------------------------------------------------------------------------------


def stop_flag(service: ServiceT) -> Callable[[], bool]:
    """True once ``service`` is stopping (mode's private ``_stopped`` event)."""
    return cast(Service, service)._stopped.is_set


# -- faust -----------------------------------------------------------------------------


class FaustConsumer(FaustKafkaConsumer):
    """faust's aiokafka-driver consumer with its private hooks and state under public names.

    faust calls the private hooks (``_drain_messages``, ...); they call the public
    methods, which subclasses override (the defaults are faust's own behaviour).
    """

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        await self.drain_messages(fetcher)

    async def drain_messages(self, fetcher: ServiceT) -> None:
        """faust's fetch loop, run by its ``Fetcher`` service."""
        await super()._drain_messages(fetcher)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return self.new_consumer_thread()

    def new_consumer_thread(self) -> AIOKafkaConsumerThread:
        """The thread that runs the aiokafka consumer."""
        return super()._new_consumer_thread()

    def _filter_tps_with_pending_acks(self, topics: TPorTopicSet | None = None) -> Iterator[TP]:
        return self.partitions_with_pending_acks(topics)

    def partitions_with_pending_acks(self, topics: TPorTopicSet | None = None) -> Iterator[TP]:
        """Partitions (of ``topics``, or all) that may have something to commit."""
        return super()._filter_tps_with_pending_acks(topics)

    def _new_offset(self, tp: TP) -> int | None:
        return self.committable_offset(tp)

    def committable_offset(self, tp: TP) -> int | None:
        """The offset a commit of ``tp`` would write now; ``None``: nothing to commit."""
        return super()._new_offset(tp)

    async def wait_next_records(
        self, timeout: float
    ) -> tuple[Mapping[TP, list[ConsumerRecord]] | None, set[TP] | None]:
        """One fetch call of at most ``timeout`` seconds: ``(records by partition, _)``."""
        return await self._wait_next_records(timeout)

    def committed_offset(self, tp: TP) -> int | None:
        """The last offset committed for ``tp`` (``None`` if none yet)."""
        return self._committed_offset.get(tp)

    @property
    def active_partitions(self) -> set[TP] | None:
        """Partitions whose records may be handed out (``None``: all of them)."""
        return self._active_partitions

    @property
    def read_offsets(self) -> MutableMapping[TP, int | None]:
        """Per partition, the last offset handed out (faust's read-offset filter)."""
        return self._read_offset

    @property
    def consumer_thread(self) -> ConsumerThread:
        """The consumer's thread, built by :meth:`new_consumer_thread`."""
        return cast(ConsumerThread, self._thread)

    def track(self, message: Any) -> None:
        """Count ``message`` as unacked: ``wait_empty`` waits for it before committing."""
        self._unacked_messages.add(message)

    def untrack(self, message: Any) -> None:
        """``message`` is acked: stop waiting for it."""
        self._unacked_messages.discard(message)
        notify(self._waiting_for_ack)


def aiokafka_producer(app: AppT) -> AIOKafkaProducer:
    """The started aiokafka producer inside faust's producer."""
    producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    return producer


# -- aiokafka ----------------------------------------------------------------------------


class ConsumerThread(AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread with a bounded, adjustable fetch long-poll.

    ``behind`` and ``set_fetch_wait`` are called from the worker's loop; like faust's
    own ``verify_event_path`` they read (and set) plain attributes of the consumer
    that its thread reads when it builds the next fetch request.
    """

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait: float = cast(Any, self.consumer).fetch_max_wait
        # faust passes fetch_max_wait_ms=1500; the Fetcher is built from this at start
        consumer._fetch_max_wait_ms = max(1, round(wait * 1000))
        return consumer

    def behind(self) -> bool:
        """True if the fetch position of an assigned partition is below its log end."""
        try:
            assignment = self._ensure_consumer()._fetcher._subscriptions.subscription.assignment
            states = [assignment.state_value(tp) for tp in assignment.tps]
        except Exception:  # not started, or no assignment (yet)
            return False
        return any(
            s is not None and s.has_valid_position and s.highwater is not None
            and s.position < s.highwater
            for s in states
        )  # fmt: skip

    def set_fetch_wait(self, seconds: float) -> bool:
        """Use a ``seconds`` long-poll from the next fetch on; False if already so."""
        fetcher = getattr(self._consumer, "_fetcher", None)
        ms = max(1, round(seconds * 1000))
        if fetcher is None or fetcher._fetch_max_wait_ms == ms:
            return False
        fetcher._fetch_max_wait_ms = ms
        return True


# -- aiokafka: records whose header key is not UTF-8 ----------------------------------------

#: Header added to a record read by :func:`install_lenient_fetch`, once per header key
#: that is not UTF-8, holding that key's bytes (the key itself is then the text of
#: those bytes with ``\\xNN`` escapes).
UNDECODABLE_HEADER_KEY = "tripwire-undecodable-header-key"

_log = logging.getLogger(__name__)


class KeptMemoryRecords(MemoryRecords):
    """aiokafka's ``MemoryRecords`` that keeps the bytes of the batch it last handed out."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.raw = data
        self.current = memoryview(b"")
        self._at = 0

    def next_batch(self) -> Any:
        batch = super().next_batch()
        if batch is not None:  # every format: Length (int32) at 8, after it Length bytes
            (length,) = struct.unpack_from(">i", self.raw, self._at + 8)
            end = self._at + 12 + length
            self.current, self._at = memoryview(self.raw)[self._at : end], end
        return batch


class LenientPartitionRecords(PartitionRecords):
    """aiokafka's records of one fetched partition, surviving a header key that is not UTF-8.

    aiokafka 0.14 decodes header keys strictly while it parses a batch
    (``DefaultRecordBatch._read_msg``, C and Python alike): one record whose key is
    not UTF-8 makes every fetch of its partition raise ``UnicodeDecodeError`` out of
    ``Fetcher.fetched_records``, which stopped the worker, restart after restart.
    Here that batch is read again by :func:`_lenient_records` and the rest of the
    fetch as usual; the record comes out with :data:`UNDECODABLE_HEADER_KEY`, so the
    worker dead-letters it with everything else it holds.
    """

    def _unpack_records(self) -> Iterator[ConsumerRecord]:
        while True:
            try:
                yield from super()._unpack_records()
                return
            except UnicodeDecodeError:
                yield from self._reread(cast(KeptMemoryRecords, self._records).current)

    def _reread(self, raw: memoryview) -> Iterator[ConsumerRecord]:
        batch = _DefaultRecordBatchPy(raw)
        tp = self._tp
        state: Any = self  # aiokafka's PartitionRecords is untyped
        for record in _lenient_records(batch):
            if record.offset < state.next_fetch_offset:
                continue  # handed out before the failure (or before the fetch offset)
            if any(k == UNDECODABLE_HEADER_KEY for k, _ in record.headers):
                _log.warning(
                    "topic %s partition %d offset %d: a header key is not UTF-8; "
                    "read with its bytes escaped (dead-lettered as malformed)",
                    escaped(tp.topic), tp.partition, record.offset,
                )  # fmt: skip
            consumer_record = self._consumer_record(tp, record)
            self.next_fetch_offset = record.offset + 1
            yield consumer_record
        self.next_fetch_offset = batch.next_offset


def _lenient_records(batch: Any) -> Iterator[Any]:
    """The records of a v2 ``batch`` as aiokafka reads them, header keys decoded leniently."""
    batch._maybe_uncompress()
    buf, pos = batch._buffer, batch._pos
    for _ in range(batch._num_records):
        length, pos = decode_varint(buf, pos)
        end = pos + length
        _, pos = decode_varint(buf, pos)  # attributes: unused
        ts_delta, pos = decode_varint(buf, pos)
        log_append = batch.timestamp_type == batch.LOG_APPEND_TIME
        timestamp = batch.max_timestamp if log_append else batch.first_timestamp + ts_delta
        offset_delta, pos = decode_varint(buf, pos)
        key, pos = _nullable_bytes(buf, pos)
        value, pos = _nullable_bytes(buf, pos)
        count, pos = decode_varint(buf, pos)
        headers: list[tuple[str, bytes | None]] = []
        undecodable: list[tuple[str, bytes | None]] = []
        for _ in range(count):
            raw_key, pos = _nullable_bytes(buf, pos)
            h_value, pos = _nullable_bytes(buf, pos)
            if raw_key is None:
                raise CorruptRecordException("a header key of negative size")
            try:
                h_key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                h_key = raw_key.decode("utf-8", "backslashreplace")
                undecodable.append((UNDECODABLE_HEADER_KEY, raw_key))
            headers.append((h_key, h_value))
        if pos != end:
            raise CorruptRecordException(f"record of {length} bytes, read {pos - end + length}")
        offset = batch.base_offset + offset_delta
        yield _DefaultRecordPy(
            offset, timestamp, batch.timestamp_type, key, value, headers + undecodable
        )


def _nullable_bytes(buf: bytearray, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buf, pos)
    if size < 0:
        return None, pos
    if pos + size > len(buf):
        raise CorruptRecordException(f"can't read {size} bytes from position {pos}")
    return bytes(buf[pos : pos + size]), pos + size


def install_lenient_fetch() -> None:
    """Make aiokafka's fetcher read records whose header keys are not UTF-8 (idempotent).

    Replaces the two names ``aiokafka.consumer.fetcher`` builds fetched partitions
    with, process-wide: records parse as before (the C parser, the same objects);
    only a batch the parser fails on is read again by :class:`LenientPartitionRecords`.
    """
    aiokafka_fetcher.MemoryRecords = KeptMemoryRecords
    aiokafka_fetcher.PartitionRecords = LenientPartitionRecords


# -- prometheus_client -------------------------------------------------------------------


def worker_with_stop_hook(on_stop_signal: Callable[[], object]) -> type:
    """``faust.Worker`` that calls ``on_stop_signal()`` when SIGTERM or SIGINT arrives.

    Both signals reach ``mode.Worker._schedule_shutdown``; the hook runs before the
    graceful stop starts (the worker arms its drain deadline there). It has no
    start-up spinner: faust's writes backspaces and a show-cursor escape
    (``\\x08\\x1b[?25h``) to stdout when start-up ends, even when stdout is a pipe or
    a log file.
    """
    import faust

    class Worker(faust.Worker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.spinner = None  # a service, not a terminal program

        def _schedule_shutdown(self, signal: Any) -> None:
            on_stop_signal()
            super()._schedule_shutdown(signal)

    return Worker


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every finite ``v``, one increment per bucket.

    Same result as the loop (upper bounds are inclusive, as in ``observe``) at a
    fraction of the cost for a full micro-batch.
    """
    values = values[np.isfinite(values)]
    if not values.size:
        return
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts):
        histogram._buckets[i].inc(int(counts[i]))
    histogram._sum.inc(float(values.sum()))
