"""The fast path's buffer: fetched records waiting to become micro-batches.

:class:`RecordFeed` sits between the fetch loop of
:class:`tripwire.stream.kafka.consumer.BatchConsumer` and the worker's batch loop;
:class:`Batch` is what the worker takes from it (and what the consumer tracks until
the batch is acked). Plain asyncio, no Kafka.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from aiokafka import ConsumerRecord
from faust.types import TP


class Batch:
    """One micro-batch of fetched records, tracked by the consumer until acked.

    Attributes
    ----------
    records : list of aiokafka ConsumerRecord
        In fetch order (per partition: offset order).
    last_offsets : dict TP -> int
        The last offset of each partition in the batch.
    generation : int
        The consumer-group generation the records were fetched in.
    """

    __slots__ = ("records", "last_offsets", "generation", "acked", "__weakref__")

    #: faust's ``wait_empty`` logs ``message.refcount`` of what it waits for.
    refcount = 1

    def __init__(
        self, records: list[ConsumerRecord], last_offsets: dict[TP, int], generation: int
    ) -> None:
        self.records = records
        self.last_offsets = last_offsets
        self.generation = generation
        self.acked = False

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<Batch of {len(self.records)} records, last offsets {self.last_offsets}>"


class RecordFeed:
    """Bounded FIFO of fetched records between the fetch loop and the worker.

    ``put`` never blocks (records already fetched are always accepted); the fetch
    loop calls ``wait_for_space`` before fetching more, so the feed holds at most
    ``capacity`` plus one fetch. Once full, it has room again only when the worker
    has taken it down to half: one fetch hands over many batches' worth of records
    (each fetch call is a round trip to faust's consumer thread). It holds records
    of one consumer generation only: a put from a newer generation drops the older
    records first.
    """

    def __init__(self, capacity: int, clock: Any = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._clock = clock
        # [tp, records, next index to take, time fed]
        self._chunks: deque[list[Any]] = deque()
        self._generation = 0
        self._size = 0
        self.resume_at = capacity // 2
        self._full = False
        self._filled = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return self._size

    def put(self, tp: TP, records: list[ConsumerRecord], generation: int) -> None:
        """Append the fetched ``records`` of ``tp`` (offset order)."""
        if not records:
            return
        if self._chunks and generation != self._generation:
            self.clear()
        self._generation = generation
        self._chunks.append([tp, records, 0, self._clock()])
        self._size += len(records)
        self._filled.set()
        if self._size >= self.capacity:
            self._full = True
            self._room.clear()

    def clear(self) -> int:
        """Drop everything buffered; return how many records were dropped."""
        dropped = self._size
        self._chunks.clear()
        self._size = 0
        self._full = False
        self._filled.clear()
        self._room.set()
        return dropped

    async def wait_for_space(self) -> None:
        """Return unless the feed filled up and was not taken down to half since."""
        while self._full:
            await self._room.wait()

    async def take(self, max_batch: int, max_wait: float) -> Batch:
        """The next ``max_batch`` records, or fewer once the oldest waited ``max_wait``."""
        while True:
            while not self._size:
                self._filled.clear()
                await self._filled.wait()
            deadline = self._chunks[0][3] + max_wait
            while self._size and self._size < max_batch:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._filled.clear()
                try:
                    await asyncio.wait_for(self._filled.wait(), remaining)
                except TimeoutError:
                    break
            if self._size:  # else cleared while we waited: start over
                return self._pop(max_batch)

    def _pop(self, max_batch: int) -> Batch:
        records: list[ConsumerRecord] = []
        last: dict[TP, int] = {}
        chunks = self._chunks
        while chunks and len(records) < max_batch:
            chunk = chunks[0]
            tp, chunk_records, start = chunk[0], chunk[1], chunk[2]
            end = min(len(chunk_records), start + max_batch - len(records))
            records.extend(chunk_records[start:end])
            last[tp] = chunk_records[end - 1].offset
            if end == len(chunk_records):
                chunks.popleft()
            else:
                chunk[2] = end
        self._size -= len(records)
        if not self._size:
            self._filled.clear()
        if self._full and self._size <= self.resume_at:
            self._full = False
            self._room.set()
        return Batch(records, last, self._generation)
