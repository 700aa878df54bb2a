"""Consumer lag per input partition, from numbers the consumer already has.

lag = high watermark (the log end the last fetch reported) - the next offset to
process (one past the last offset this worker finished). A partition appears once
this worker has finished a batch of it (asking the consumer thread for its position
instead can block for long). Refreshed on a timer, so a stalled worker shows a growing lag
while its ``tripwire_last_processed_timestamp_seconds`` stands still. Partitions
this worker no longer owns are removed from the gauge.
"""

from __future__ import annotations

import logging
from typing import Any

from tripwire.stream.observability.metrics import Metrics

log = logging.getLogger(__name__)


class LagTracker:
    """Tracks processed offsets of ``topic`` and exports the lag per partition."""

    def __init__(self, metrics: Metrics, topic: str) -> None:
        self.metrics = metrics
        self.topic = topic
        self._next: dict[int, int] = {}
        self._exported: set[int] = set()

    def processed(self, partition: int, offset: int) -> None:
        """Offset ``offset`` of ``partition`` is done (outputs acknowledged)."""
        if offset >= self._next.get(partition, -1):
            self._next[partition] = offset + 1

    def update(self, consumer: Any) -> None:
        """Set the gauge from ``consumer`` (a faust consumer) for owned partitions."""
        owned = {tp.partition: tp for tp in consumer.assignment() if tp.topic == self.topic}
        for partition in self._exported - owned.keys():
            self.metrics.consumer_lag.remove(str(partition))
            self._next.pop(partition, None)
        self._exported &= owned.keys()
        for partition, tp in owned.items():
            highwater = consumer.highwater(tp)
            position = self._next.get(partition)
            if highwater is None or position is None:
                continue
            self.metrics.consumer_lag.labels(partition=str(partition)).set(
                max(highwater - position, 0)
            )
            self._exported.add(partition)
