"""The fast path's record feed: batching, the wait bound, flow control, clearing.

Pure asyncio (no broker): records are stand-ins with an ``offset``, and the clock is
the event loop's, as in the worker.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from faust.types import TP

from tripwire.stream.kafka.feed import Batch, RecordFeed

P0, P1 = TP("t", 0), TP("t", 1)


@dataclass(frozen=True)
class Rec:
    offset: int


def recs(start: int, n: int) -> list[Rec]:
    return [Rec(o) for o in range(start, start + n)]


async def test_take_returns_full_batches_across_chunks_in_order() -> None:
    feed = RecordFeed(capacity=1000)
    feed.put(P0, recs(0, 5), generation=1)
    feed.put(P1, recs(100, 5), generation=1)
    feed.put(P0, recs(5, 5), generation=1)
    first = await feed.take(max_batch=7, max_wait=10.0)
    assert [r.offset for r in first.records] == [0, 1, 2, 3, 4, 100, 101]
    assert first.last_offsets == {P0: 4, P1: 101} and first.generation == 1
    second = await feed.take(max_batch=7, max_wait=0.0)
    assert [r.offset for r in second.records] == [102, 103, 104, 5, 6, 7, 8]
    assert second.last_offsets == {P1: 104, P0: 8}
    third = await feed.take(max_batch=7, max_wait=0.0)
    assert [r.offset for r in third.records] == [9] and len(feed) == 0


async def test_a_short_batch_waits_max_wait_from_its_oldest_record() -> None:
    feed = RecordFeed(capacity=1000)
    feed.put(P0, recs(0, 3), generation=1)
    started = time.monotonic()
    batch = await feed.take(max_batch=100, max_wait=0.15)
    waited = time.monotonic() - started
    assert len(batch) == 3 and 0.12 <= waited < 0.5


async def test_a_batch_is_handed_out_as_soon_as_it_is_full() -> None:
    feed = RecordFeed(capacity=1000)
    feed.put(P0, recs(0, 3), generation=1)

    async def fill() -> None:
        await asyncio.sleep(0.05)
        feed.put(P0, recs(3, 7), generation=1)

    filler = asyncio.create_task(fill())
    started = time.monotonic()
    batch = await feed.take(max_batch=10, max_wait=5.0)
    await filler
    assert len(batch) == 10 and time.monotonic() - started < 1.0


async def test_take_waits_for_records_and_a_clear_never_hands_out_dropped_ones() -> None:
    feed = RecordFeed(capacity=1000)
    taker = asyncio.create_task(feed.take(max_batch=10, max_wait=0.2))
    await asyncio.sleep(0.02)
    assert not taker.done()
    feed.put(P0, recs(0, 2), generation=1)
    await asyncio.sleep(0.02)
    assert feed.clear() == 2 and len(feed) == 0  # e.g. a rebalance while filling
    feed.put(P1, recs(50, 1), generation=1)
    batch = await asyncio.wait_for(taker, 2.0)
    assert [r.offset for r in batch.records] == [50]


async def test_a_full_feed_blocks_the_fetcher_until_taken_down_to_half() -> None:
    feed = RecordFeed(capacity=4)
    feed.put(P0, recs(0, 3), generation=1)
    await asyncio.wait_for(feed.wait_for_space(), 1.0)  # not full yet
    feed.put(P0, recs(3, 3), generation=1)  # fetched records are always accepted
    waiter = asyncio.create_task(feed.wait_for_space())
    await asyncio.sleep(0.02)
    assert not waiter.done()
    await feed.take(max_batch=3, max_wait=0.0)
    await asyncio.sleep(0.01)
    assert not waiter.done()  # 3 left: below capacity, above half
    await feed.take(max_batch=1, max_wait=0.0)
    await asyncio.wait_for(waiter, 1.0)  # 2 left: half
    assert len(feed) == 2


async def test_clear_frees_the_fetcher() -> None:
    feed = RecordFeed(capacity=2)
    feed.put(P0, recs(0, 2), generation=1)
    waiter = asyncio.create_task(feed.wait_for_space())
    await asyncio.sleep(0.01)
    feed.clear()
    await asyncio.wait_for(waiter, 1.0)


async def test_records_of_a_new_generation_replace_older_ones() -> None:
    feed = RecordFeed(capacity=100)
    feed.put(P0, recs(0, 3), generation=1)
    feed.put(P0, recs(0, 2), generation=2)  # re-read after a rebalance
    batch = await feed.take(max_batch=10, max_wait=0.0)
    assert [r.offset for r in batch.records] == [0, 1] and batch.generation == 2


def test_batch_is_tracked_like_a_message() -> None:
    batch = Batch([Rec(3)], {P0: 3}, generation=1)
    assert not batch.acked and batch.refcount == 1 and len(batch) == 1
    assert "1 records" in repr(batch)
    with pytest.raises(ValueError):
        RecordFeed(capacity=0)
