"""The worker: micro-batches of a Kafka topic scored with at-least-once delivery.

Data path, per micro-batch (``StreamWorker._run``, a faust app task)::

    BatchConsumer.next_batch(max_batch, max_wait)   fetched records, now tracked
      -> BatchProcessor.process (in a thread)        decode, ONE Scorer.score, build outputs
      -> Delivery.deliver                            produce all, await all broker acks
      -> BatchConsumer.ack_batch(batch)              only now may faust commit them
      -> metrics

Records reach the worker through :mod:`stream.fastpath`, not through a faust agent:
faust's per-event path (conductor, channel, stream, ``wait_first`` per message)
cost ~160 µs per event and stalled for seconds under load. faust still runs the
group membership, rebalances, the commit timer and the producer.

Why this is at-least-once (faust-streaming 0.15.3, read from its source):

- The consumer commits, every ``broker_commit_interval``, per partition the offset
  one past the last record of the last *acked* batch (``BatchConsumer._new_offset``).
  A batch is acked only after ``Delivery.deliver`` returned, i.e. after the broker
  acknowledged every alert, score and dead letter of the batch (``acks=all``).
- Batches are taken in fetch order and handled one after the other, so per
  partition every offset below the committed one was delivered: the committed
  offset can never jump over an event whose outputs are in flight.
- A packed record is one Kafka message: it is acked with its batch, after all its
  vectors' outputs.
- Shutdown (SIGTERM) and rebalances: faust stops the flow (the fast path drops the
  records it buffered but did not hand out; they are read again from the committed
  offsets), waits (``stream_wait_empty``) until the batch in flight is acked, then
  commits. faust drops the acked offsets of revoked partitions before that final
  commit, and can skip the final commit when a periodic one is in flight;
  ``stream.consumer.CommittingConsumer`` closes both gaps, so a graceful hand-over
  re-scores nothing.
- A crash (SIGKILL) loses nothing: outputs not yet acknowledged belong to uncommitted
  offsets, which are consumed again; the duplicates this makes are bounded by the
  commit interval and carry the same deterministic alert ids.
- An unexpected error while handling a batch (a bug, a model that raises) crashes
  the worker with a non-zero exit instead of going on past unacked events; the
  orchestrator restarts it from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import ConsumerRecord

from stream.alerts import AlertBuilder
from stream.app import create_app
from stream.cooldown import Cooldown
from stream.delivery import Delivery
from stream.exporter import record_batch
from stream.fastpath import Batch, batch_consumer
from stream.lag import LagTracker
from stream.metrics import Metrics
from stream.records import InputRecord, OutputRecord
from stream.reload import ModelWatcher
from stream.scoring import BatchProcessor, BatchResult, Topics
from stream.settings import WorkerSettings
from training.scorer import Scorer

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0


class StreamWorker:
    """The faust app of one worker process with its batch loop, timers and helpers.

    Parameters
    ----------
    settings : WorkerSettings
    scorer : Scorer
        The model to start with (see ``stream.reload.load_initial``).
    metrics : Metrics
    """

    def __init__(self, settings: WorkerSettings, scorer: Scorer, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.app = create_app(settings)
        self.consumer = batch_consumer(self.app)
        self.topic = self.app.topic(settings.input_topic, key_type=bytes, value_type=bytes)
        self.app.topics.add(self.topic)  # subscribe; records arrive via self.consumer
        self.watcher = ModelWatcher(
            settings.registry, settings.model_name, settings.model_alias, scorer, metrics
        )
        self.processor = BatchProcessor(
            Topics(settings.alert_topic, settings.dlq_topic, settings.scores_topic or None),
            AlertBuilder(f"tripwire://{settings.group_id}/{settings.input_topic}"),
            Cooldown(settings.cooldown, settings.cooldown_max_entities),
            top_k=settings.top_k,
            max_message_bytes=settings.max_message_bytes,
        )
        self.delivery = Delivery(self._send, metrics, lambda: bool(self.app.should_stop))
        self.lag = LagTracker(metrics, settings.input_topic)
        self._scoring = ThreadPoolExecutor(1, thread_name_prefix="tripwire-score")
        self._reloading = ThreadPoolExecutor(1, thread_name_prefix="tripwire-reload")
        self.app.task(self._run)
        self.app.timer(LAG_INTERVAL, name=f"{settings.group_id}.lag")(self._update_lag)
        if settings.reload_interval > 0:
            self.app.timer(settings.reload_interval, name=f"{settings.group_id}.reload")(
                self._check_model
            )

    async def _run(self) -> None:
        max_batch, max_wait = self.settings.max_batch, self.settings.max_wait
        while True:
            batch = await self.consumer.next_batch(max_batch, max_wait)
            try:
                await self.handle(batch)
            except BaseException as e:
                await self._fail(e)
                raise
            self.consumer.ack_batch(batch)

    async def handle(self, batch: Batch) -> None:
        """Score one micro-batch and deliver its outputs (acking is the caller's)."""
        scorer = self.watcher.current  # one model for the whole batch
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._scoring, self._process, batch.records, scorer)
        await self.delivery.deliver(result.outputs)
        record_batch(self.metrics, result, scorer.threshold)
        for tp, offset in batch.last_offsets.items():
            self.lag.processed(tp.partition, offset)
        await self._update_lag()

    def _process(self, records: Sequence[ConsumerRecord], scorer: Scorer) -> BatchResult:
        return self.processor.process([input_record(r) for r in records], scorer)

    async def _send(self, record: OutputRecord) -> Any:
        return await self.app.producer.send(
            record.topic, record.key, record.value, None, None, record.headers
        )

    async def _fail(self, error: BaseException) -> None:
        if isinstance(error, asyncio.CancelledError) or self.app.should_stop:
            return
        log.critical("cannot process a batch, stopping the worker: %r", error, exc_info=error)
        await self.app.crash(error)

    async def _update_lag(self) -> None:
        try:
            self.lag.update(self.app.consumer)
        except Exception as e:  # lag is best effort; never let it stop the worker
            log.debug("lag update failed: %r", e)

    async def _check_model(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._reloading, self.watcher.check)
        except Exception as e:  # keep serving the current model whatever happened
            log.error("model reload check failed: %r", e, exc_info=e)

    def close(self) -> None:
        """Stop the helper threads (after the app stopped)."""
        self._scoring.shutdown(wait=True, cancel_futures=True)
        self._reloading.shutdown(wait=True, cancel_futures=True)


def input_record(record: ConsumerRecord) -> InputRecord:
    """The ``InputRecord`` of a fetched aiokafka record."""
    ts = record.timestamp
    return InputRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=ts if ts is not None and ts > 0 else None,
        key=record.key,
        value=record.value,
        headers=record.headers or (),
    )
