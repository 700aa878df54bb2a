"""The worker: micro-batches of a Kafka topic scored with at-least-once delivery.

Data path, per micro-batch (``StreamWorker._run``, a faust app task)::

    BatchConsumer.next_batch(max_batch, max_wait)   fetched records, now tracked
      -> BatchProcessor.process                      decode, ONE Scorer.score, build outputs
      -> Delivery.deliver                            produce all, await all broker acks
      -> BatchConsumer.ack_batch(batch)              only now may faust commit them
      -> metrics

Batches are scored one after the other; while the outputs of one await the
broker's acks the next is scored (at most ``MAX_IN_FLIGHT`` batches in delivery),
and batches are acked strictly in the order they were taken.

Records reach the worker through :mod:`tripwire.stream.kafka.consumer`, not through a
faust agent: faust's per-event path (conductor, channel, stream, ``wait_first`` per
message) costs far more per event than scoring it and stalled under load
(docs/performance.md has the figures). faust still runs the group membership,
rebalances, the commit timer and the producer.

Why this is at-least-once (faust-streaming 0.15.3, read from its source):

- The consumer commits, every ``broker_commit_interval``, per partition the offset
  one past the last record of the last *acked* batch (``BatchConsumer.committable_offset``).
  A batch is acked only after ``Delivery.deliver`` returned, i.e. after the broker
  acknowledged every alert, score and dead letter of the batch (``acks=all``).
- Batches are taken in fetch order and acked in that order, each only after its
  own outputs *and* the batch before it were acknowledged, so per partition every
  offset below the committed one was delivered: the committed offset can never
  jump over an event whose outputs are in flight.
- A packed record is one Kafka message: it is acked with its batch, after all its
  vectors' outputs.
- Shutdown (SIGTERM) and rebalances: faust stops the flow (the fast path drops the
  records it buffered but did not hand out; they are read again from the committed
  offsets), waits (``stream_wait_empty``) until the batch in flight is acked, then
  commits. faust drops the acked offsets of revoked partitions before that final
  commit, and can skip the final commit when a periodic one is in flight;
  ``tripwire.stream.kafka.consumer.CommittingConsumer`` closes both gaps, so a graceful hand-over
  re-scores nothing.
- An output the broker refuses as too large is not retried (it never would be
  taken): its input's dead letter takes its place among the batch's outputs
  (``tripwire.stream.kafka.producer``), so the batch is still acked only once
  everything it produced, or what stands for it, is acknowledged.
- A crash (SIGKILL) loses nothing: outputs not yet acknowledged belong to uncommitted
  offsets, which are consumed again; the duplicates this makes are bounded by the
  commit interval and carry the same deterministic alert ids.
- An error one record explains (its decoding, times, ids, keys, outputs, or the
  model raising on its rows) dead-letters that record (``processing_error``) and the
  batch goes on (:mod:`tripwire.stream.processing.isolation`). An error no record
  explains (the model fails on a probe row too, a bug every batch hits, a produce
  failure) crashes the worker with a non-zero exit instead of going on past unacked
  events; the orchestrator restarts it from the committed offsets.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord

from tripwire.core.scorer import Scorer
from tripwire.core.untrusted import escaped
from tripwire.stream import compat
from tripwire.stream.kafka.app import create_app
from tripwire.stream.kafka.consumer import Batch, batch_consumer
from tripwire.stream.kafka.producer import BatchProducer, Delivery
from tripwire.stream.observability.health import Health
from tripwire.stream.observability.lag import LagTracker
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.batch import BatchProcessor, BatchResult, Topics, record_batch
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.processing.drift import DriftWatch, drift_config
from tripwire.stream.processing.model_watcher import ModelWatcher
from tripwire.stream.processing.shadow import Shadow, ShadowSender, ShadowWatcher, shadow_source
from tripwire.stream.settings import WorkerSettings
from tripwire.stream.wire.alerts import AlertBuilder
from tripwire.stream.wire.dead_letters import output_dead_letter
from tripwire.stream.wire.records import InputRecord

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0
#: Micro-batches whose outputs may be awaiting broker acks at once (acked in order).
#: aiokafka keeps one produce request per broker in flight, so on a busy broker acks
#: come slowly: with 4 the worker sat idle waiting for them at its maximum packed
#: rate (docs/performance.md, "Measured figures behind the code").
MAX_IN_FLIGHT = 16
#: Batches faster than this are processed on the event loop, slower ones in a thread.
INLINE_SECONDS = 0.2
#: How long a busy thread keeps the GIL while another wants it (Python's default:
#: 5 ms). faust's consumer thread reads the sockets and parses fetches; after each
#: syscall it waited up to a whole interval for the scoring loop to let go
#: (docs/performance.md, "Measured figures behind the code").
GIL_SWITCH_INTERVAL = 0.0005


class StreamWorker:
    """The faust app of one worker process with its batch loop, timers and helpers.

    Parameters
    ----------
    settings : WorkerSettings
    scorer : Scorer
        The model to start with (see ``tripwire.stream.processing.model_watcher.load_initial``).
    metrics : Metrics
    health : Health, optional
        Told when the consumer joins its group (an assignment, maybe empty) and leaves
        it (a revocation), for ``/readyz``.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        scorer: Scorer,
        metrics: Metrics,
        health: Health | None = None,
    ) -> None:
        single_threaded_inference()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self.settings = settings
        self.metrics = metrics
        self.app = create_app(settings)
        self.consumer = batch_consumer(self.app)
        self.topic = self.app.topic(settings.input_topic, key_type=bytes, value_type=bytes)
        self.app.topics.add(self.topic)  # subscribe; records arrive via self.consumer
        self.watcher = ModelWatcher(
            settings.registry, settings.model_name, settings.model_alias, scorer, metrics
        )
        source = f"tripwire://{settings.group_id}/{settings.input_topic}"
        self.shadow = self._shadow(settings, metrics, source) if settings.shadow_model else None
        self.processor = BatchProcessor(
            Topics(settings.alert_topic, settings.dlq_topic, settings.scores_topic or None),
            AlertBuilder(source),
            Cooldown(settings.cooldown, settings.cooldown_max_entities),
            top_k=settings.top_k,
            max_message_bytes=settings.max_message_bytes,
            max_output_bytes=settings.max_output_bytes,
            shadow=self.shadow,
        )
        # what faust gives aiokafka (faust's Param descriptors confuse mypy here)
        conf: Any = self.app.conf
        produce = BatchProducer(
            self._producer,
            max_batch_bytes=conf.producer_max_batch_size,
            partitioner=conf.producer_partitioner,
        )
        self.shadow_sender = (
            ShadowSender(produce, metrics.shadow) if settings.shadow_topic else None
        )
        self.delivery = Delivery(
            produce,
            metrics,
            lambda: bool(self.app.should_stop),
            functools.partial(
                output_dead_letter,
                topic=settings.dlq_topic,
                max_output_bytes=settings.max_output_bytes,
            ),
        )
        self.lag = LagTracker(metrics, settings.input_topic)
        self.drift = (
            DriftWatch(settings.registry, drift_config(settings), metrics.drift)
            if settings.drift
            else None
        )
        if self.drift is not None:
            self.drift.start(scorer)
        self._scoring = ThreadPoolExecutor(1, thread_name_prefix="tripwire-score")
        self._inline = True  # see score()
        self._reloading = ThreadPoolExecutor(1, thread_name_prefix="tripwire-reload")
        self.app.task(self._run)
        self.health = health or Health()
        # mode's signal stubs do not accept bound methods (mode-streaming 0.7.1)
        assigned: Any = self.app.on_partitions_assigned
        revoked: Any = self.app.on_partitions_revoked
        assigned.connect(self._joined)
        revoked.connect(self._left)
        self.app.timer(LAG_INTERVAL, name=f"{settings.group_id}.lag")(self._update_lag)
        if settings.reload_interval > 0:
            self.app.timer(settings.reload_interval, name=f"{settings.group_id}.reload")(
                self._check_model
            )

    async def _run(self) -> None:
        """Take and score batches one by one; deliver up to ``MAX_IN_FLIGHT`` at once."""
        max_batch, max_wait = self.settings.max_batch, self.settings.max_wait
        in_flight: deque[asyncio.Task[None]] = deque()
        if self.shadow is not None:  # its first version, before the first batch (off the
            # loop; a failure is counted and logged, and production starts regardless)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._reloading, self.shadow.watcher.check)
        freeze_startup_objects()
        try:
            while True:
                batch = await self.consumer.next_batch(max_batch, max_wait)
                try:
                    scorer, result = await self.score(batch)
                except BaseException as e:
                    await self._fail(e)
                    raise
                previous = in_flight[-1] if in_flight else None
                in_flight.append(
                    asyncio.create_task(self._deliver(batch, scorer, result, previous))
                )
                while in_flight and (in_flight[0].done() or len(in_flight) > MAX_IN_FLIGHT):
                    await in_flight.popleft()
        finally:
            for task in in_flight:
                task.cancel()

    async def score(self, batch: Batch) -> tuple[Scorer, BatchResult]:
        """Decode, score and build the outputs of ``batch``.

        On the event loop while batches take at most ``INLINE_SECONDS``: handing
        each one to a thread and back costs more than the work (the two threads
        queue for the GIL; docs/performance.md, "Measured figures behind the code").
        Slower batches (big ones, heavy models) go to the scoring thread, so that the
        loop (commits, deliveries, rebalance callbacks) never stalls for long.
        """
        scorer = self.watcher.current  # one model for the whole batch
        if self._inline:
            result, seconds = self._process(batch.records, scorer)
        else:
            loop = asyncio.get_running_loop()
            result, seconds = await loop.run_in_executor(
                self._scoring, self._process, batch.records, scorer
            )
        self._inline = seconds <= INLINE_SECONDS
        return scorer, result

    async def _deliver(
        self, batch: Batch, scorer: Scorer, result: BatchResult, previous: asyncio.Task[None] | None
    ) -> None:
        """Produce the outputs of ``batch``; ack it once they and the batch before are done."""
        try:
            await self.delivery.deliver(result.outputs)
        except BaseException as e:
            await self._fail(e)
            raise
        if previous is not None:
            try:
                await previous
            except BaseException:  # it crashed the worker or was cancelled at shutdown
                return  # never ack past a batch whose outputs are not acknowledged
        self.consumer.ack_batch(batch)
        record_batch(self.metrics, result, scorer.threshold)
        if self.shadow is not None and result.shadow is not None:
            self.shadow.record(result.shadow)
            if self.shadow_sender is not None:
                self.shadow_sender.send(result.shadow.outputs)
        if self.drift is not None:  # in delivery order, once per batch (never per event)
            self.drift.observe(scorer, result.features, result.scores)
        for tp, offset in batch.last_offsets.items():
            self.lag.processed(tp.partition, offset)
        await self._update_lag()

    def _shadow(self, settings: WorkerSettings, metrics: Metrics, source: str) -> Shadow:
        """The shadow scoring of ``--shadow-model`` (loaded by its first ``check``)."""
        watcher = ShadowWatcher(
            settings.registry, settings.shadow_name, settings.shadow_alias, metrics.shadow,
            lambda: self.watcher.current,
        )  # fmt: skip
        return Shadow(
            watcher, metrics.shadow, AlertBuilder(shadow_source(source)),
            settings.shadow_topic or None, top_k=settings.top_k,
            max_output_bytes=settings.max_output_bytes,
        )  # fmt: skip

    def _process(
        self, records: Sequence[ConsumerRecord], scorer: Scorer
    ) -> tuple[BatchResult, float]:
        started = time.perf_counter()
        result = self.processor.process([input_record(r) for r in records], scorer)
        return result, time.perf_counter() - started

    def _producer(self) -> AIOKafkaProducer:
        """The aiokafka producer inside faust's (outputs skip faust's per-record ``send``)."""
        return compat.aiokafka_producer(self.app)

    async def _fail(self, error: BaseException) -> None:
        if isinstance(error, asyncio.CancelledError) or self.app.should_stop:
            return
        log.critical(
            "cannot process a batch and no record of it explains the error (records that "
            "do are dead-lettered as processing_error), stopping the worker: %s",
            escaped(error), exc_info=error,
        )  # fmt: skip
        await self.app.crash(error)

    def _joined(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.health.in_group = True

    def _left(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.health.in_group = False

    async def _update_lag(self) -> None:
        try:
            self.lag.update(self.app.consumer)
        except Exception as e:  # lag is best effort; never let it stop the worker
            log.debug("lag update failed: %s", escaped(e))

    async def _check_model(self) -> None:
        loop = asyncio.get_running_loop()
        checks = [self.watcher.check] + ([self.shadow.watcher.check] if self.shadow else [])
        for check in checks:
            try:
                await loop.run_in_executor(self._reloading, check)
            except Exception as e:  # keep serving the current model whatever happened
                log.error("model reload check failed: %s", escaped(e), exc_info=e)

    def close(self) -> None:
        """Stop the helper threads (after the app stopped)."""
        self._scoring.shutdown(wait=True, cancel_futures=True)
        self._reloading.shutdown(wait=True, cancel_futures=True)
        if self.drift is not None:
            self.drift.close()


def freeze_startup_objects() -> None:
    """Move everything alive now (torch, faust, the model) out of the collector's sight.

    A full (generation 2) collection walks every tracked object: with the model and
    libraries loaded that is a long pause every event waits out. Frozen
    objects are never scanned again (``gc.freeze``); the events' short-lived objects
    are still collected as usual.
    """
    gc.collect()
    gc.freeze()


def single_threaded_inference() -> None:
    """One torch intra-op thread, unless ``OMP_NUM_THREADS`` asks for more.

    Micro-batches gain nothing from intra-op parallelism, and the worker's event loop
    and consumer thread need the other cores: on a busy 2-core host torch's second
    thread made each model call several times slower (docs/performance.md).
    """
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


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
