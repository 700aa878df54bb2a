"""Delivery's retry logic, driven by a scripted ``produce`` (the producer seam).

The broker side (``BatchProducer``) is covered by ``test_delivery_broker.py``; here a
scripted produce makes the failure cases (refused before sending, failed after)
happen on demand. The partition choice is checked against aiokafka's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tripwire.stream.kafka import producer as delivery
from tripwire.stream.kafka.producer import (
    Delivery,
    DeliveryAborted,
    Queued,
    default_partition,
    murmur2,
)
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.wire.records import OutputRecord


class ScriptedProduce:
    """Queues records in chunks of ``size``; the first attempt of a chunk holding a
    chosen value fails, synchronously (refused) or via its future (not acked)."""

    def __init__(
        self,
        size: int,
        fail_sync: set[bytes],
        fail_async: set[bytes],
        too_large: frozenset[bytes] = frozenset(),
    ) -> None:
        self.size = size
        self.fail_sync = set(fail_sync)
        self.fail_async = set(fail_async)
        self.too_large = too_large  # refused by the "broker" every time, with its chunk
        self.delivered: list[bytes] = []
        self.calls = 0

    async def __call__(self, records: Sequence[OutputRecord]) -> list[Queued]:
        self.calls += 1
        queued = []
        for i in range(0, len(records), self.size):
            chunk = records[i : i + self.size]
            values = {r.value for r in chunk}
            if values & self.fail_sync:
                self.fail_sync -= values
                queued.append(Queued(chunk, error=RuntimeError("buffer full")))
                continue
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if values & self.too_large:
                fut.set_exception(MessageSizeTooLargeError("MESSAGE_SIZE_TOO_LARGE"))
            elif values & self.fail_async:
                self.fail_async -= values
                fut.set_exception(TimeoutError("no ack"))
            else:
                self.delivered += [r.value for r in chunk]
                fut.set_result(None)
            queued.append(Queued(chunk, fut))
        return queued


def records(n: int) -> list[OutputRecord]:
    return [OutputRecord("t", None, str(i).encode()) for i in range(n)]


def errors(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("tripwire_produce_errors_total")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "FIRST_BACKOFF", 0.001)


async def test_failed_records_are_retried_until_acknowledged() -> None:
    metrics = Metrics(CollectorRegistry())
    produce = ScriptedProduce(1, fail_sync={b"1"}, fail_async={b"3", b"4"})
    await Delivery(produce, metrics, lambda: False).deliver(records(6))
    assert sorted(produce.delivered) == [str(i).encode() for i in range(6)]
    assert len(produce.delivered) == 6  # nothing delivered twice by us
    assert errors(metrics) == 3


async def test_a_failed_group_fails_all_its_records() -> None:
    metrics = Metrics(CollectorRegistry())
    produce = ScriptedProduce(3, fail_sync={b"0"}, fail_async={b"4"})
    await Delivery(produce, metrics, lambda: False).deliver(records(7))
    # chunks [0 1 2] refused and [3 4 5] not acked: six records counted, all retried
    assert errors(metrics) == 6
    assert produce.delivered == [b"6", b"0", b"1", b"2", b"3", b"4", b"5"]
    assert produce.calls == 2


async def test_a_produce_call_that_raises_fails_every_record() -> None:
    metrics = Metrics(CollectorRegistry())
    inner = ScriptedProduce(2, set(), set())
    attempts = 0

    async def not_ready_once(batch: Sequence[OutputRecord]) -> list[Queued]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("producer not started")
        return await inner(batch)

    await Delivery(not_ready_once, metrics, lambda: False).deliver(records(5))
    assert errors(metrics) == 5
    assert inner.delivered == [str(i).encode() for i in range(5)]


async def test_delivery_gives_up_only_when_stopping() -> None:
    metrics = Metrics(CollectorRegistry())
    produce = ScriptedProduce(1, fail_sync=set(), fail_async={b"0"})
    with pytest.raises(DeliveryAborted):
        await Delivery(produce, metrics, lambda: True).deliver(records(2))


def refused(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("tripwire_outputs_refused_total", {"outcome": outcome})


def to_dlq(record: OutputRecord, error: BaseException) -> OutputRecord:
    return OutputRecord("dlq", record.key, b"dl-" + record.value + type(error).__name__.encode())


async def test_a_too_large_record_is_dead_lettered_not_retried_forever() -> None:
    metrics = Metrics(CollectorRegistry())
    produce = ScriptedProduce(3, set(), set(), too_large=frozenset({b"4"}))
    await Delivery(produce, metrics, lambda: False, to_dlq).deliver(records(7))
    # [0 1 2] and [6] acked; [3 4 5] refused, retried one by one: 4 alone is refused
    assert sorted(produce.delivered) == sorted(
        [b"0", b"1", b"2", b"3", b"5", b"6", b"dl-4MessageSizeTooLargeError"]
    )
    assert errors(metrics) == 3 + 1
    assert refused(metrics, "dead_lettered") == 1 and refused(metrics, "dropped") == 0


async def test_a_too_large_record_without_a_smaller_replacement_is_dropped_and_counted() -> None:
    metrics = Metrics(CollectorRegistry())
    produce = ScriptedProduce(1, set(), set(), too_large=frozenset({b"1"}))
    await Delivery(produce, metrics, lambda: False, lambda r, e: None).deliver(records(3))
    assert produce.delivered == [b"0", b"2"]
    assert refused(metrics, "dropped") == 1 and refused(metrics, "dead_lettered") == 0


async def test_a_replacement_that_is_too_large_too_is_replaced_again() -> None:
    metrics = Metrics(CollectorRegistry())
    produce = ScriptedProduce(1, set(), set(), too_large=frozenset({b"1", b"dl-1"}))

    def shrink(record: OutputRecord, error: BaseException) -> OutputRecord | None:
        return {
            b"1": OutputRecord("dlq", None, b"dl-1"),
            b"dl-1": OutputRecord("dlq", None, b"m"),
        }.get(record.value)

    await Delivery(produce, metrics, lambda: False, shrink).deliver(records(3))
    assert sorted(produce.delivered) == [b"0", b"2", b"m"]
    assert refused(metrics, "dead_lettered") == 2


@given(st.binary(max_size=64))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@given(
    st.binary(max_size=40),
    st.lists(st.integers(0, 1000), min_size=1, max_size=64, unique=True),
)
def test_default_partition_is_aiokafkas(key: bytes, partitions: list[int]) -> None:
    available = partitions[::2]
    expected = DefaultPartitioner()(key, partitions, available)
    assert default_partition(key, partitions, available) == expected


def test_a_missing_key_goes_to_a_random_available_partition() -> None:
    chosen = {default_partition(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert chosen == {1, 3}
    chosen = {default_partition(None, [0, 1, 2], []) for _ in range(200)}
    assert chosen == {0, 1, 2}
