"""The worker's fast path: whole fetches into micro-batches, past faust's per-event path.

Why (faust-streaming and mode-streaming at the versions :mod:`tripwire.stream.compat`
pins, read from their source; the costs are measured in docs/performance.md): the
stock path from the fetcher to an agent costs event-loop time *per message*, and it
stalls:

1. ``Consumer._drain_messages`` calls ``Service.wait_first(callback(message),
   suspend_flow.wait())`` for every message: four tasks created, ``asyncio.wait``,
   three cancelled.
2. The conductor, channel queue, ``Event`` per message, sensors and stream
   iteration cost as much again, although the worker wants raw bytes in batches.
3. When a stream buffer passes ``stream_buffer_maxsize / 1.25``,
   ``Consumer.on_buffer_full`` takes the partition out of the active set; aiokafka's
   ``fetched_records`` then sleeps on its waiter for the full 1.0 s timeout faust
   passes (re-adding the partition wakes nothing): one-second stalls at full load.
4. faust hard-codes ``fetch_max_wait_ms=1500``. Brokers that hold a fetch for the
   whole wait even when records arrive (Tansu does) delay events by up to 1.5 s.

What runs instead, inside faust's own services (group membership, rebalances,
recovery, the commit timer and the producer are faust's, unchanged):

- ``BatchConsumer.drain_messages`` (run by faust's ``Fetcher`` service) moves every
  fetched record list into a bounded :class:`tripwire.stream.kafka.feed.RecordFeed`, with faust's
  read-offset filter. Flow control: it fetches only while the feed has room, so a
  busy worker simply stops fetching (aiokafka keeps at most its prefetch buffer)
  and resumes once the worker has taken the feed down to half: no partition is ever
  taken out of the fetch, hence no stall. While faust's flow is stopped (rebalance,
  shutdown) nothing is fed, and records fetched across such a stop are dropped and
  un-fetched: back to the committed offsets (``perform_seek``, as faust's own
  ``getmany`` does), or to the first dropped record where nothing is committed.
- The worker takes micro-batches with :meth:`BatchConsumer.next_batch` (``max_batch``
  records, or fewer once the oldest has waited ``max_wait``). A batch is *tracked*
  from then on: it sits in ``Consumer._unacked_messages``, which is what faust's
  ``wait_empty`` waits for on shutdown and revocation before its final commit.
- After the batch's outputs are acknowledged by the broker, the worker calls
  :meth:`BatchConsumer.ack_batch`: the committable offset of each of its partitions
  becomes one past the batch's last offset there. Batches are taken and acked in
  fetch order, so every offset below it was delivered (gaps in the log —
  compaction, transaction markers — need no bookkeeping). faust's commit timer,
  ``_should_commit`` check and the commit fixes below do the rest.
- ``stop_flow`` (the start of every rebalance and of shutdown) empties the feed:
  untracked records are fetched again after the seek to the committed offsets.
- The fetch long-poll is bounded by ``BatchConsumer.fetch_max_wait`` (set by
  :func:`install`) instead of 1.5 s; it grows, up to ``BEHIND_FETCH_WAIT``, only
  while fetches come back empty although the log is ahead (a broker that needs
  longer), and shrinks back once caught up.

Commit fixes (:class:`CommittingConsumer`, the base of ``BatchConsumer``): faust
loses *commits* (never events) in two places, which makes the next owner of a
partition re-score up to one commit interval of events:

1. On revocation, ``Consumer.on_partitions_revoked`` forgets the acked offsets of
   the revoked partitions (``_acked.pop``) *before* the app waits for its streams
   and commits, so everything acked since the last periodic commit is never
   committed by this worker.
2. ``Consumer.commit`` returns without committing when another commit is in flight
   (it waits for that one instead); when the in-flight one is the periodic commit
   that started before the last acks, the final commit of a shutdown or
   revocation silently leaves those acks uncommitted.

``CommittingConsumer`` commits the acked offsets of the revoked partitions first
(after any in-flight commit finished), then lets faust do the rest; and makes the
final commit of ``wait_empty`` wait for an in-flight commit before committing
itself. Both only commit offsets faust already considers committable, so
at-least-once is unchanged; duplicates after a graceful rebalance or SIGTERM drop
to none in ``tests/stream/test_worker_reload_scaleout.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import faust
from aiokafka import ConsumerRecord
from faust.types import TP
from faust.types.transports import TPorTopicSet
from mode import ServiceT

from tripwire.core.untrusted import escaped
from tripwire.stream import compat
from tripwire.stream.kafka.feed import Batch, RecordFeed

__all__ = ["Batch", "BatchConsumer", "RecordFeed", "batch_consumer", "install"]

log = logging.getLogger(__name__)

#: Seconds one fetch call may wait for records (then the loop checks for a stop).
FETCH_TIMEOUT = 0.25
#: Longest fetch long-poll while the log is ahead but fetches come back empty (see
#: ``BatchConsumer._adapt_fetch_wait``); aiokafka's default.
BEHIND_FETCH_WAIT = 0.5


async def _wait_for_inflight_commit(consumer: compat.FaustConsumer) -> None:
    # True means "waited for a commit that was running"; loop until none runs, so
    # the next commit() call (which does not yield before claiming) is ours.
    while await consumer.maybe_wait_for_commit_to_finish():
        pass


class CommittingConsumer(compat.FaustConsumer):
    """The aiokafka-driver consumer of faust, committing before it forgets."""

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await _wait_for_inflight_commit(self)
        await self.commit(revoked)
        await super().on_partitions_revoked(revoked)

    async def commit_and_end_transactions(self) -> None:
        await _wait_for_inflight_commit(self)
        await super().commit_and_end_transactions()


class BatchConsumer(CommittingConsumer):
    """faust's aiokafka consumer feeding micro-batches (see the module docstring)."""

    #: Upper bound of the fetch long-poll, seconds (set before the consumer starts).
    fetch_max_wait: float = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feed = RecordFeed(self.app.conf.stream_buffer_maxsize)
        # One past the last offset of the last delivered batch, per partition.
        self._delivered: dict[TP, int] = {}
        self._fetch_wait: float | None = None  # the long-poll now, None: fetch_max_wait

    def new_consumer_thread(self) -> compat.ConsumerThread:
        return compat.ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- fetching -------------------------------------------------------------------

    async def drain_messages(self, fetcher: ServiceT) -> None:
        consumer_stopped = compat.stop_flag(self)
        fetcher_stopped = compat.stop_flag(fetcher)
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await self.feed.wait_for_space()
                if not self.flow_active:
                    # a rebalance sets the new generation before it resumes the flow:
                    # read the generation after, or a whole fetch of it is dropped
                    await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
                generation = self.app.consumer_generation_id
                records, _ = await self.wait_next_records(FETCH_TIMEOUT)
                if self.should_stop:
                    return
                if not self.flow_active or generation != self.app.consumer_generation_id:
                    # fetched across a rebalance/stop: read it again
                    await self._seek_back(records or {})
                else:
                    if records:
                        self._feed(records, generation)
                    self._adapt_fetch_wait(bool(records))
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("broker stopped the consumer, shutting down")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _seek_back(self, dropped: Mapping[TP, list[ConsumerRecord]]) -> None:
        """Un-fetch ``dropped``: back to the committed offsets, or, where nothing is
        committed (seek_to_committed leaves those alone), to the first dropped record."""
        try:
            await self.perform_seek()
            assigned = self.assignment()
            for tp, fetched in dropped.items():
                if fetched and tp in assigned and self.committed_offset(tp) is None:
                    await self.seek(tp, fetched[0].offset)
        except Exception as e:  # as faust's getmany: the next rebalance seeks again
            log.warning("seek to committed offsets after a flow stop failed: %s", escaped(e))

    def _adapt_fetch_wait(self, got_records: bool) -> None:
        """After each fetch call: fit the long-poll to what the broker needs.

        Some brokers answer a short-wait fetch with no records although the high
        watermark is far ahead (Tansu 0.6 with memory storage, deeper into a large
        partition the longer it needs: docs/reliability.md); a longer wait gets
        them. So the wait doubles, up to ``BEHIND_FETCH_WAIT``, after each call that
        got nothing while the log is ahead, stays while calls bring records and the
        log is still ahead, and halves, down to ``fetch_max_wait``, after each call
        that ends caught up (a long wait delays events: Tansu holds a fetch for its
        whole wait). It settles near the shortest wait the broker answers instead of
        flapping between the two ends (which cost the soak time: docs/reliability.md).
        """
        behind = self.consumer_thread.behind()
        now = self.fetch_max_wait if self._fetch_wait is None else self._fetch_wait
        wait = now
        if behind and not got_records:
            wait = min(2 * wait, max(BEHIND_FETCH_WAIT, self.fetch_max_wait))
        elif not behind:
            wait = max(wait / 2, self.fetch_max_wait)
        if wait == now:
            return
        self._fetch_wait = wait
        self.consumer_thread.set_fetch_wait(wait)
        at_end = wait in (self.fetch_max_wait, BEHIND_FETCH_WAIT)
        log.log(logging.INFO if at_end else logging.DEBUG,
                "fetch long-poll now %.0f ms (%s)", 1000 * wait,
                "the log is ahead, fetches come back empty" if behind
                else "read up to the log end")  # fmt: skip

    def _feed(self, records: Mapping[TP, list[ConsumerRecord]], generation: int) -> None:
        active = self.active_partitions
        read_offset = self.read_offsets
        for tp, fetched in records.items():
            if not fetched or (active is not None and tp not in active):
                continue
            last_read = read_offset[tp]
            if last_read is not None and fetched[0].offset < last_read:
                # as faust's drain loop: never hand out a record before the read offset
                fetched = [r for r in fetched if r.offset >= last_read]
                if not fetched:
                    continue
            read_offset[tp] = fetched[-1].offset
            self.feed.put(tp, fetched, generation)

    def stop_flow(self) -> None:
        super().stop_flow()
        dropped = self.feed.clear()
        if dropped:
            log.debug("flow stopped: dropped %d untracked records (read again later)", dropped)

    # -- batches and acks -------------------------------------------------------------

    async def next_batch(self, max_batch: int, max_wait: float) -> Batch:
        """Wait for the next micro-batch; it is tracked until :meth:`ack_batch`."""
        while True:
            batch = await self.feed.take(max_batch, max_wait)
            if self.flow_active and batch.generation == self.app.consumer_generation_id:
                break
            # fed before a rebalance: untracked, so it is read again after the seek
        self.track(batch)  # wait_empty waits for it (it has .acked, like a faust message)
        now = time.monotonic()
        inbound = self.app.monitor.stream_inbound_time  # read by faust's livelock check
        for tp in batch.last_offsets:
            inbound[tp] = now
        return batch

    def ack_batch(self, batch: Batch) -> None:
        """Every output of ``batch`` was acknowledged: its offsets may be committed."""
        if batch.acked:
            return
        batch.acked = True
        delivered = self._delivered
        for tp, last in batch.last_offsets.items():
            delivered[tp] = last + 1
        self.untrack(batch)

    def partitions_with_pending_acks(self, topics: TPorTopicSet | None = None) -> Iterator[TP]:
        return (
            tp
            for tp in list(self._delivered)
            if topics is None or tp in topics or tp.topic in topics
        )

    def committable_offset(self, tp: TP) -> int | None:
        return self._delivered.get(tp)

    def uncommitted(self) -> str:
        """What a stop now would leave uncommitted, per partition, for the log.

        ``topic[p] offsets C-R, delivered up to D``: ``C`` the committed offset (the
        first not committed; "up to R (none committed)" if the group has none), ``R``
        the last offset handed to the worker, ``D`` the last whose outputs the broker
        acknowledged. Those offsets are consumed and scored again after a restart.
        Safe to call from another thread (the drain deadline's): it reads copies, and
        says so if it cannot.
        """
        try:
            read, delivered = dict(self.read_offsets), dict(self._delivered)
            parts = []
            for tp in sorted(set(read) | set(delivered)):
                committed, last = self.committed_offset(tp), read.get(tp)
                done = delivered.get(tp)
                if last is None or (committed is not None and committed > last):
                    continue  # nothing read past the commit
                span = (
                    f"up to {last} (none committed)"
                    if committed is None
                    else (f"{committed}-{last}")
                )
                acked = "none" if done is None else f"up to {done - 1}"
                parts.append(f"{tp.topic}[{tp.partition}] offsets {span}, delivered {acked}")
        except RuntimeError:  # a dict changed size while copied: the loop is not stuck
            return "unknown (the consumer's offsets changed while being read)"
        return "; ".join(parts) or "nothing"

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await super().on_partitions_revoked(revoked)  # commits, waits, commits again
        for tp in revoked:
            self._delivered.pop(tp, None)


def install(app: faust.App, *, fetch_max_wait: float) -> BatchConsumer:
    """Give ``app`` a :class:`BatchConsumer` (before it is started) and return it.

    Also makes aiokafka's fetcher survive a record whose header key is not UTF-8
    (:func:`tripwire.stream.compat.install_lenient_fetch`).
    """
    compat.install_lenient_fetch()
    app.transport.Consumer = BatchConsumer  # type: ignore[misc]  # per-app override
    consumer = batch_consumer(app)
    consumer.fetch_max_wait = fetch_max_wait
    return consumer


def batch_consumer(app: faust.App) -> BatchConsumer:
    """``app.consumer``, checked to be the fast path's consumer."""
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer):
        raise TypeError(f"{app} does not use the fast path: its consumer is {consumer!r}")
    return consumer
