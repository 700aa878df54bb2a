"""faust's aiokafka consumer with two commit fixes for clean rebalances and shutdowns.

faust-streaming 0.15.3 loses *commits* (never events) in two places, which makes
the next owner of a partition re-score up to one commit interval of events:

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
to none in ``tests/stream/test_worker_reload_scaleout.py``. The worker uses it through
its fast-path subclass, :class:`stream.fastpath.BatchConsumer`.
"""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP


async def _wait_for_inflight_commit(consumer: AIOKafkaConsumer) -> None:
    # True means "waited for a commit that was running"; loop until none runs, so
    # the next commit() call (which does not yield before claiming) is ours.
    while await consumer.maybe_wait_for_commit_to_finish():
        pass


class CommittingConsumer(AIOKafkaConsumer):
    """The aiokafka-driver consumer of faust, committing before it forgets."""

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await _wait_for_inflight_commit(self)
        await self.commit(revoked)
        await super().on_partitions_revoked(revoked)

    async def commit_and_end_transactions(self) -> None:
        await _wait_for_inflight_commit(self)
        await super().commit_and_end_transactions()
