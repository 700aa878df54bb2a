"""Ceilings A and C of the stream benchmark, measured in the benchmark process.

- **A, raw aiokafka**: a plain ``AIOKafkaConsumer`` in a fresh consumer group reads
  a topic from the beginning and decodes every record with the worker's own
  :class:`tripwire.stream.wire.codecs.Codec` (no scoring, no outputs, no commits).
- **C, inference alone**: ``Scorer.score`` on micro-batches of the worker's batch
  size, no Kafka, as many as fit in ``seconds``.

Both report wall-clock rates and the CPU seconds of this process over the same
window (``time.process_time``: every thread).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaConsumer

from tripwire.core.scorer import Scorer
from tripwire.stream.kafka.security import env_security_options
from tripwire.stream.wire.codecs import Codec
from tripwire.stream.wire.records import InputRecord


@dataclass(frozen=True)
class Rate:
    """What one measurement saw: ``records`` Kafka records carrying ``vectors``."""

    records: int
    vectors: int
    seconds: float
    cpu_seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def vectors_per_s(self) -> float:
        return self.vectors / self.seconds

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds


async def raw_aiokafka(
    bootstrap: str, topic: str, n_records: int, codec: Codec, timeout: float = 300.0
) -> Rate:
    """Ceiling A: read and decode ``n_records`` records of ``topic`` (timed from the first)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False, **env_security_options(),
    )  # fmt: skip
    await consumer.start()
    try:
        records = vectors = 0
        started = cpu = 0.0
        deadline = time.monotonic() + timeout
        while records < n_records:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {records} of {n_records} records of {topic}")
            fetched = await consumer.getmany(timeout_ms=1000)
            if fetched and not records:
                started, cpu = time.perf_counter(), time.process_time()
            for batch in fetched.values():
                for r in batch:
                    ts = r.timestamp
                    decoded = codec.decode(
                        InputRecord(
                            r.topic,
                            r.partition,
                            r.offset,
                            ts if ts and ts > 0 else None,
                            r.key,
                            r.value,
                            r.headers,
                        )  # fmt: skip
                    )
                    vectors += len(decoded)
                records += len(batch)
        return Rate(records, vectors, time.perf_counter() - started, time.process_time() - cpu)
    finally:
        await consumer.stop()


def inference(scorer: Scorer, X: np.ndarray, batch: int, seconds: float = 2.0) -> Rate:
    """Ceiling C: ``scorer.score`` on consecutive batches of ``batch`` rows of ``X``."""
    batches = [X[i : i + batch] for i in range(0, len(X) - batch + 1, batch)]
    if not batches:
        raise ValueError(f"need at least {batch} rows, got {len(X)}")
    scorer.score(batches[0])  # warm-up (first call allocates)
    done = 0
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        for b in batches:
            scorer.score(b)
            done += len(b)
    return Rate(done, done, time.perf_counter() - started, time.process_time() - cpu)
