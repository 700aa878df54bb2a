"""The fast path's record feed: batching, the wait bound, flow control, clearing.

Pure asyncio (no broker): records are stand-ins with an ``offset``. Nothing here
depends on how fast the machine is: the feed's clock is a :class:`Clock` the test
moves, waits that must not end are an hour long, and "still waiting" is checked
after :func:`settle` lets every ready task run (no sleep, no wall-clock bound). A
timeout only guards against a hang.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from faust.types import TP

from tripwire.stream.kafka.feed import Batch, RecordFeed

P0, P1 = TP("t", 0), TP("t", 1)
#: Seconds a wait that must end may take: a hang guard, never the thing asserted.
HANG_GUARD = 30.0


class Clock:
    """The feed's clock, moved by the test (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every task that is ready run until it blocks (no timer is involved)."""
    for _ in range(10):
        await asyncio.sleep(0)


@dataclass(frozen=True)
class Rec:
    offset: int


def recs(start: int, n: int) -> list[Rec]:
    return [Rec(o) for o in range(start, start + n)]


async def test_take_returns_full_batches_across_chunks_in_order() -> None:
    feed = RecordFeed(capacity=1000, clock=Clock())
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
    """Records fed at 0, 1800 and 3600 s on the feed's clock, taken from 1800 s on,
    ``max_wait`` 3600 s: the batch must stay open at 1800 s and close at 3600 s.

    Nothing here waits on wall time. A feed that counted from the ``take`` call
    (or from the newest record) would wait a real half hour at 3600 s, far past the
    hang guard; one that did not wait would hand out 3 records, one that did not
    check its deadline when woken, 4.
    """
    clock = Clock()
    feed = RecordFeed(capacity=1000, clock=clock)
    feed.put(P0, recs(0, 3), generation=1)
    clock.now = 1800.0
    taker = asyncio.create_task(feed.take(max_batch=100, max_wait=3600.0))
    await settle()
    assert not taker.done()  # parked: nothing can wake it but a put
    feed.put(P0, recs(3, 1), generation=1)
    await settle()
    assert not taker.done()  # the oldest waited 1800 s < max_wait: still open
    clock.now = 3600.0
    feed.put(P0, recs(4, 1), generation=1)
    batch = await asyncio.wait_for(taker, HANG_GUARD)
    assert [r.offset for r in batch.records] == [0, 1, 2, 3, 4]


async def test_a_batch_is_handed_out_as_soon_as_it_is_full() -> None:
    feed = RecordFeed(capacity=1000, clock=Clock())
    feed.put(P0, recs(0, 3), generation=1)
    taker = asyncio.create_task(feed.take(max_batch=10, max_wait=3600.0))
    await settle()
    assert not taker.done()
    feed.put(P0, recs(3, 7), generation=1)  # full: no reason to wait the hour
    batch = await asyncio.wait_for(taker, HANG_GUARD)
    assert [r.offset for r in batch.records] == list(range(10))


async def test_take_waits_for_records_and_a_clear_never_hands_out_dropped_ones() -> None:
    clock = Clock()
    feed = RecordFeed(capacity=1000, clock=clock)
    taker = asyncio.create_task(feed.take(max_batch=10, max_wait=3600.0))
    await settle()
    assert not taker.done()  # an empty feed: waits for records, whatever max_wait says
    feed.put(P0, recs(0, 2), generation=1)
    await settle()
    assert not taker.done()  # a short batch within max_wait
    assert feed.clear() == 2 and len(feed) == 0  # e.g. a rebalance while filling
    clock.now = 7200.0  # past the dropped records' max_wait: the next put closes it
    feed.put(P1, recs(50, 1), generation=1)
    batch = await asyncio.wait_for(taker, HANG_GUARD)
    assert [r.offset for r in batch.records] == [50]


async def test_a_full_feed_blocks_the_fetcher_until_taken_down_to_half() -> None:
    feed = RecordFeed(capacity=4)
    feed.put(P0, recs(0, 3), generation=1)
    await asyncio.wait_for(feed.wait_for_space(), HANG_GUARD)  # not full yet
    feed.put(P0, recs(3, 3), generation=1)  # fetched records are always accepted
    waiter = asyncio.create_task(feed.wait_for_space())
    await settle()
    assert not waiter.done()
    await feed.take(max_batch=3, max_wait=0.0)
    await settle()
    assert not waiter.done()  # 3 left: below capacity, above half
    await feed.take(max_batch=1, max_wait=0.0)
    await asyncio.wait_for(waiter, HANG_GUARD)  # 2 left: half
    assert len(feed) == 2


async def test_clear_frees_the_fetcher() -> None:
    feed = RecordFeed(capacity=2)
    feed.put(P0, recs(0, 2), generation=1)
    waiter = asyncio.create_task(feed.wait_for_space())
    await settle()
    assert not waiter.done()
    feed.clear()
    await asyncio.wait_for(waiter, HANG_GUARD)


async def test_records_of_a_new_generation_replace_older_ones() -> None:
    feed = RecordFeed(capacity=100, clock=Clock())
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
