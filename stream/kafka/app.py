"""The Faust app of ``tripwire worker``: broker, group, delivery settings, no more.

Settings that matter for correctness and are not faust's defaults:

- raw key/value serialisers: the worker decodes bytes itself (``tripwire.stream.wire.codecs``);
- ``producer_acks=-1`` (all in-sync replicas) and ``max_request_size`` =
  ``max_output_bytes``, the brokers' ``message.max.bytes``: a record the broker
  would refuse is refused before it is sent;
- ``stream_wait_empty=True``: on shutdown and rebalance faust waits until every
  event a stream took is acknowledged, then commits;
- ``broker_commit_interval``: the uncommitted window re-scored after a crash;
- ``topic_disable_leader``, ``web_enabled=False``, ``store="memory://"``: no
  internal topics, web server or tables (the worker is stateless besides offsets;
  ``/metrics`` is served by ``tripwire.stream.observability.exporter``); faust still creates its
  ``datadir``, so it goes under the system temp directory, not the working one;
- the consumer is :class:`tripwire.stream.kafka.consumer.BatchConsumer` (records go to the worker in
  micro-batches, not through faust's per-event agent path);
  ``stream_buffer_maxsize`` is the number of fetched records it buffers, and the
  fetch long-poll is bounded by ``max_wait`` (at least ``MIN_FETCH_WAIT``): an
  event never waits in the broker longer than it may wait for its micro-batch;
- ``broker_max_poll_records``: at most a quarter of that buffer per hand-over from
  the consumer thread. Without it one hand-over is everything the last fetch
  returned, and brokers may return far more than ``max_partition_fetch_bytes``
  (Tansu does, docs/reliability.md): a worker that fell behind held every parsed
  record of those fetches at once, its RSS jumping.
  The rest of a fetch waits in aiokafka as raw bytes, parsed when handed over.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import faust

from tripwire.stream import compat
from tripwire.stream.kafka.consumer import install as install_fast_path
from tripwire.stream.kafka.security import faust_credentials
from tripwire.stream.settings import WorkerSettings

#: Shortest fetch long-poll, seconds (an idle worker sends at most 1/this fetches/s).
MIN_FETCH_WAIT = 0.005
#: Fewest fetched records buffered for the worker (more with large micro-batches).
MIN_BUFFERED = 4096


def create_app(settings: WorkerSettings) -> faust.App:
    """A faust app for ``settings`` (not started).

    Raises
    ------
    tripwire.stream.compat.UnverifiedVersions
        faust, mode, aiokafka or prometheus_client is not the version the worker's
        private accesses were verified against.
    """
    compat.check_versions()
    buffered = max(MIN_BUFFERED, 8 * settings.max_batch)
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap_servers],
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        datadir=Path(tempfile.gettempdir()) / "tripwire-faust",  # empty: memory store
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        stream_wait_empty=True,
        stream_buffer_maxsize=buffered,
        broker_max_poll_records=buffered // 4,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=max(settings.session_timeout, 30.0),
        broker_commit_interval=settings.commit_interval,
        consumer_auto_offset_reset=settings.auto_offset_reset,
        producer_acks=-1,
        # a record is refused by the producer exactly when the broker would refuse it
        producer_max_request_size=settings.max_output_bytes,
        worker_redirect_stdouts=False,
    )
    # batches past faust's per-event path; commits before revocation (kafka.consumer)
    install_fast_path(app, fetch_max_wait=max(settings.max_wait, MIN_FETCH_WAIT))
    return app
