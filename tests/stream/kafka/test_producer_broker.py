"""``BatchProducer`` + ``Delivery`` on the real broker: where records land, what arrives.

Records are produced the worker's way (aiokafka record batches per partition) and
read back with a plain consumer; the partition of every keyed record is compared
with the one a plain ``AIOKafkaProducer.send`` chose for the same key.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from tests.fixtures.kafka import create_topics
from tests.stream.harness import Out, consume, produce
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.kafka import producer as delivery
from tripwire.stream.kafka.producer import BatchProducer, Delivery, Queued
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.wire.alerts import ALERT_HEADERS
from tripwire.stream.wire.dead_letters import OUTPUT_TOO_LARGE, output_dead_letter
from tripwire.stream.wire.records import InputRecord, OutputRecord

pytestmark = pytest.mark.integration

BATCH_BYTES = 16384  # aiokafka's (and faust's) default max_batch_size


def producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=-1, max_batch_size=BATCH_BYTES, **options
    )


def deliver(bootstrap: str, records: Sequence[OutputRecord]) -> Metrics:
    """``Delivery(BatchProducer(...)).deliver(records)`` with a fresh producer."""
    metrics = Metrics(CollectorRegistry())

    async def run() -> None:
        p = producer(bootstrap)
        await p.start()
        try:
            await Delivery(BatchProducer(lambda: p, BATCH_BYTES), metrics, lambda: False).deliver(
                records
            )
        finally:
            await p.stop()

    asyncio.run(run())
    return metrics


def queue(bootstrap: str, records: Sequence[OutputRecord], **options: Any) -> list[Any]:
    """One ``BatchProducer`` call; per chunk ``(records, ack result or error)``."""

    async def run() -> list[Any]:
        p = producer(bootstrap, **options)
        await p.start()
        try:
            queued: list[Queued] = await BatchProducer(lambda: p, BATCH_BYTES)(records)
            return [
                (q.records, q.error if q.ack is None else await q.ack) for q in queued
            ]  # fmt: skip
        finally:
            await p.stop()

    return asyncio.run(run())


def read(bootstrap: str, topic: str, n: int) -> list[ConsumerRecord]:
    """Exactly the ``n`` records of ``topic``, per partition in offset order."""
    got = consume(bootstrap, topic, until=lambda rs: len(rs) >= n, timeout=30)
    assert len(got) == n
    return sorted(got, key=lambda r: (r.partition, r.offset))


def as_sent(r: ConsumerRecord) -> OutputRecord:
    return OutputRecord(r.topic, r.key, r.value, list(r.headers) or None)


def headers_of(i: int) -> list[tuple[str, bytes]] | None:
    return [None, [], [("a", bytes([0, 255, i % 256])), ("tripwire-reason", b"x"), ("e", b"")]][
        i % 3
    ]


def test_records_land_where_send_puts_them_intact_and_in_order(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    plain, batched = topic_factory("plain", partitions=5), topic_factory("batched", partitions=5)
    keys = [f"card-{i}".encode() for i in range(300)]
    placed = produce(broker.bootstrap, plain, [Out(b"x", key=k) for k in keys])
    sent_to = {k: p for k, (p, _) in zip(keys, placed, strict=True)}

    records = [
        OutputRecord(batched, None if i % 6 == 5 else keys[i], b"v%d" % i + b"." * (i % 700),
                     headers_of(i))
        for i in range(len(keys))
    ]  # fmt: skip
    metrics = deliver(broker.bootstrap, records)
    got = read(broker.bootstrap, batched, len(records))

    assert metrics.registry.get_sample_value("tripwire_produce_errors_total") == 0
    for r in got:
        if r.key is not None:
            assert r.partition == sent_to[r.key], r.key
    keyless = {r.partition for r in got if r.key is None}
    assert len(keyless) > 1  # spread at random like send(key=None), not pinned
    normalised = [OutputRecord(batched, r.key, r.value, r.headers or None) for r in records]
    index = {r.value: i for i, r in enumerate(normalised)}
    assert sorted(index[r.value] for r in got) == list(range(len(records)))  # each once
    for r in got:
        assert as_sent(r) == normalised[index[r.value]]  # key, value, headers intact
    for p in range(5):
        positions = [index[r.value] for r in got if r.partition == p]
        assert positions == sorted(positions)  # given order kept within each partition


def test_a_record_larger_than_a_batch_still_goes_out(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("big")
    big = OutputRecord(topic, b"k", bytes(range(256)) * 1200, [("tripwire-truncated", b"9")])
    records = [OutputRecord(topic, b"k", b"before"), big, OutputRecord(topic, b"k", b"after")]

    chunks = queue(broker.bootstrap, records)

    assert [list(c) for c, _ in chunks] == [[r] for r in records]  # big alone, in order
    assert [type(ack).__name__ for _, ack in chunks] == ["RecordMetadata"] * 3
    assert [as_sent(r) for r in read(broker.bootstrap, topic, 3)] == records


def test_a_record_over_the_request_size_is_refused_like_send_refuses_it(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("huge")
    small, huge = OutputRecord(topic, b"k", b"small"), OutputRecord(topic, b"k", b"h" * 200_000)

    chunks = queue(broker.bootstrap, [small, huge], max_request_size=100_000)

    assert [list(c) for c, _ in chunks] == [[small], [huge]]
    assert isinstance(chunks[1][1], MessageSizeTooLargeError)
    assert [as_sent(r) for r in read(broker.bootstrap, topic, 1)] == [small]


def test_a_record_refused_as_too_large_is_dead_lettered_instead_of_retried_forever(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    """The producer's limit stands for a broker whose ``message.max.bytes`` is lower:
    (Tansu enforces none) either way the error is ``MessageSizeTooLargeError``."""
    alerts, dlq = topic_factory("alerts"), topic_factory("dlq")
    src = InputRecord("features", 2, 5, 1000, b"card", b'{"id": "x"}', [("trace", b"1")])
    small = OutputRecord(alerts, b"card", b"small", ALERT_HEADERS, src)
    huge = OutputRecord(alerts, b"card", b"a" * 200_000, ALERT_HEADERS, src)
    metrics = Metrics(CollectorRegistry())

    async def run() -> None:
        p = producer(broker.bootstrap, max_request_size=100_000)
        await p.start()
        try:
            refuse = functools.partial(output_dead_letter, topic=dlq, max_output_bytes=100_000)
            delivery = Delivery(
                BatchProducer(lambda: p, BATCH_BYTES), metrics, lambda: False, refuse
            )
            await asyncio.wait_for(delivery.deliver([small, huge]), 60)
        finally:
            await p.stop()

    asyncio.run(run())
    assert [r.value for r in read(broker.bootstrap, alerts, 1)] == [b"small"]
    (dl,) = read(broker.bootstrap, dlq, 1)
    h = dict(dl.headers)
    assert (dl.key, dl.value, h["trace"]) == (b"card", src.value, b"1")  # the input, whole
    assert h["tripwire-reason"] == OUTPUT_TOO_LARGE.encode()
    assert h["tripwire-error"] == b"MessageSizeTooLargeError"
    assert h["tripwire-output-topic"] == alerts.encode()
    assert (h["tripwire-source-partition"], h["tripwire-source-offset"]) == (b"2", b"5")
    sample = metrics.registry.get_sample_value
    assert sample("tripwire_outputs_refused_total", {"outcome": "dead_lettered"}) == 1
    assert sample("tripwire_produce_errors_total") == 1


def test_records_beyond_one_batch_are_split_into_several(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("split")
    records = [OutputRecord(topic, b"card-%d" % i, b"%05d" % i + b"." * 595) for i in range(200)]

    chunks = queue(broker.bootstrap, records)

    assert len(chunks) >= 200 * 600 // BATCH_BYTES
    assert [r for c, _ in chunks for r in c] == records
    base = 0
    for c, meta in chunks:  # each batch's future covers exactly its own records
        assert meta.offset == base
        base += len(c)
    assert [as_sent(r) for r in read(broker.bootstrap, topic, len(records))] == records


def test_unacknowledged_batches_are_retried_until_the_broker_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen broker (SIGSTOP) lets the batches time out; thawed, it takes the retries."""
    monkeypatch.setattr(delivery, "FIRST_BACKOFF", 0.05)
    topic, n = "retried", 60
    records = [OutputRecord(topic, b"card-%d" % i, b"%03d" % i) for i in range(n)]
    metrics = Metrics(CollectorRegistry())

    def failed() -> float:
        return metrics.registry.get_sample_value("tripwire_produce_errors_total") or 0.0

    async def run(own: EmbeddedBroker, pid: int) -> None:
        await create_topics(own.bootstrap, [topic], partitions=3)
        p = producer(own.bootstrap, request_timeout_ms=1000, retry_backoff_ms=50)
        await p.start()
        try:
            await p.partitions_for(topic)
            os.kill(pid, signal.SIGSTOP)
            try:
                task = asyncio.create_task(
                    Delivery(BatchProducer(lambda: p, BATCH_BYTES), metrics, lambda: False)
                    .deliver(records)
                )  # fmt: skip
                # a patience, not a bound: each retry waits out request_timeout_ms, and a
                # busy 2-core machine stretches that (it flaked at 15 s under load)
                deadline = time.monotonic() + 120
                while failed() < n and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert failed() >= n and not task.done()  # every batch failed, none given up
            finally:
                os.kill(pid, signal.SIGCONT)
            # a hang guard too: the next retry may be a full MAX_BACKOFF (10 s) away, then
            # the thawed broker works off its queue on a loaded machine (one flake at 30 s)
            await asyncio.wait_for(task, 90)
        finally:
            await p.stop()

    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as own:  # this test freezes it
        assert own.process is not None
        asyncio.run(run(own, own.process.pid))
        got = consume(own.bootstrap, topic, until=lambda rs: len(rs) >= n, timeout=60)
    # at least once: a batch whose ack was lost may also have been written
    assert {r.value for r in got} == {r.value for r in records}
