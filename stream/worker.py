"""The worker: a faust agent that scores micro-batches with at-least-once delivery.

Data path, per micro-batch::

    noack_take(max_batch, within=max_wait)          faust: events, not yet acked
      -> BatchProcessor.process (in a thread)        decode, ONE Scorer.score, build outputs
      -> Delivery.deliver                            produce all, await all broker acks
      -> stream.ack(event) for every event           only now may faust commit them
      -> metrics

Why this is at-least-once (faust-streaming 0.15.3, read from its source):

- A stream *tracks* each message it yields (``Consumer._unacked_messages``) and the
  consumer commits, every ``broker_commit_interval``, only the offsets that were
  *acked*, and of those only the run of consecutive offsets after the last commit
  (``Consumer._new_offset``). An offset never acked is never committed, nor is
  anything after it.
- ``Stream.take`` acks the batch in a ``finally`` around its ``yield``: when the
  agent asks for the next batch, but also when the generator is closed while the
  agent is still producing (``Stream.on_stop`` closes it on shutdown) — that would
  commit offsets whose outputs were never acknowledged. So the agent uses
  ``Stream.noack_take``, which never acks, and acks each event itself after
  ``Delivery.deliver`` returned, i.e. after the broker acknowledged every alert,
  score and dead letter of the batch (``acks=all``).
- Batches are processed one after the other and each batch's events are acked in
  consumption order, so per partition the acked offsets always form a prefix: the
  committed offset can never jump over an event whose outputs are in flight.
  (faust's gap check in ``_new_offset`` is off by one and skipped before the first
  commit; in-order acking is what keeps it from mattering.)
- A packed record is one Kafka message: it is acked after all its vectors' outputs.
- Shutdown (SIGTERM) and rebalances: faust stops fetching, clears the agents'
  queues and waits (``stream_wait_empty``) until every tracked event is acked — the
  batch in flight and any events buffered by ``noack_take`` are processed and
  delivered first — then commits. Cleared, untracked messages were never acked and
  are fetched again from the committed offset. faust drops the acked offsets of
  revoked partitions before that final commit, and can skip the final commit when
  a periodic one is in flight; ``stream.consumer.CommittingConsumer`` closes both
  gaps, so a graceful hand-over re-scores nothing.
- A crash (SIGKILL) loses nothing: outputs not yet acknowledged belong to uncommitted
  offsets, which are consumed again; the duplicates this makes are bounded by the
  commit interval and carry the same deterministic alert ids.
- An unexpected error while handling a batch (a bug, a model that raises) crashes
  the worker with a non-zero exit instead of letting faust restart the agent past
  unacked events; the orchestrator restarts it from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from faust.types import EventT, StreamT

from stream.alerts import AlertBuilder
from stream.app import create_app
from stream.cooldown import Cooldown
from stream.delivery import Delivery
from stream.exporter import record_batch
from stream.lag import LagTracker
from stream.metrics import Metrics
from stream.records import InputRecord, OutputRecord
from stream.reload import ModelWatcher
from stream.scoring import BatchProcessor, Topics
from stream.settings import WorkerSettings
from training.scorer import Scorer

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0


class StreamWorker:
    """The faust app of one worker process with its agent, timers and helpers.

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
        self.topic = self.app.topic(settings.input_topic, key_type=bytes, value_type=bytes)
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
        self.app.agent(self.topic, name=f"{settings.group_id}.score")(self._consume)
        self.app.timer(LAG_INTERVAL, name=f"{settings.group_id}.lag")(self._update_lag)
        if settings.reload_interval > 0:
            self.app.timer(settings.reload_interval, name=f"{settings.group_id}.reload")(
                self._check_model
            )

    async def _consume(self, stream: StreamT) -> None:
        settings = self.settings
        take = cast(faust.Stream, stream).noack_take  # not declared on StreamT
        async for events in take(settings.max_batch, within=settings.max_wait):
            try:
                await self.handle(events)
            except BaseException as e:
                await self._fail(e)
                raise
            for event in events:
                await stream.ack(event)

    async def handle(self, events: Sequence[EventT]) -> None:
        """Score one micro-batch and deliver its outputs (acking is the caller's)."""
        records = [input_record(event.message) for event in events]
        scorer = self.watcher.current  # one model for the whole batch
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._scoring, self.processor.process, records, scorer)
        await self.delivery.deliver(result.outputs)
        record_batch(self.metrics, result, scorer.threshold)
        for record in records:
            self.lag.processed(record.partition, record.offset)
        await self._update_lag()

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


def input_record(message: faust.types.Message) -> InputRecord:
    """The ``InputRecord`` of a faust message (timestamps to epoch ms)."""
    ts = message.timestamp
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return InputRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=round(ts * 1000) if ts and ts > 0 else None,
        key=message.key,
        value=message.value,
        headers=headers,
    )
