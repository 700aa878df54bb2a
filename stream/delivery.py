"""Produce a micro-batch's outputs and wait until the broker has every one of them.

``Delivery.deliver`` hands all records to the producer at once (so they share
produce requests), then awaits all delivery futures together. Records the broker
did not acknowledge are counted in ``tripwire_produce_errors_total`` and produced
again after a backoff (0.1 s doubling to 10 s) until they are acknowledged: the
input offsets of the batch are acknowledged only after ``deliver`` returns, so
giving up would lose them. If the worker is stopping, ``deliver`` raises instead
and the batch stays uncommitted (it is re-scored after the restart).

A retried record may arrive after records produced later, and a record whose
acknowledgement was lost may arrive twice; anomaly events carry a deterministic id
for consumers to de-duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from stream.metrics import Metrics
from stream.records import OutputRecord
from training.errors import TripwireError

log = logging.getLogger(__name__)

#: ``send(record)`` queues one record and returns its delivery future.
Send = Callable[[OutputRecord], Awaitable[Awaitable[Any]]]
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 10.0


class DeliveryAborted(TripwireError):
    """The worker is stopping while outputs are still unacknowledged."""


class Delivery:
    """At-least-once production of output records.

    Parameters
    ----------
    send : callable
        Queues one record with the producer, returns its delivery future.
    metrics : Metrics
    stopping : callable
        True once the worker shuts down: stop retrying.
    """

    def __init__(self, send: Send, metrics: Metrics, stopping: Callable[[], bool]) -> None:
        self._send = send
        self.metrics = metrics
        self._stopping = stopping

    async def deliver(self, outputs: Sequence[OutputRecord]) -> None:
        """Return once the broker acknowledged every record of ``outputs``."""
        pending = list(outputs)
        delay = FIRST_BACKOFF
        while pending:
            failed, error = await self._attempt(pending)
            if not failed:
                return
            self.metrics.produce_errors.inc(len(failed))
            if self._stopping():
                raise DeliveryAborted(f"{len(failed)} output records unacknowledged at shutdown")
            log.warning(
                "%d of %d output records not acknowledged (%r); retrying in %.1fs",
                len(failed), len(pending), error, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
            pending = failed

    async def _attempt(
        self, records: list[OutputRecord]
    ) -> tuple[list[OutputRecord], BaseException | None]:
        """Produce ``records`` once; return those not acknowledged and the first error."""
        failed: list[OutputRecord] = []
        error: BaseException | None = None
        queued: list[OutputRecord] = []
        futures: list[Awaitable[Any]] = []
        for record in records:
            try:
                futures.append(await self._send(record))
                queued.append(record)
            except Exception as e:  # the producer refused it before sending
                failed.append(record)
                error = error or e
        results = await asyncio.gather(*futures, return_exceptions=True)
        for record, result in zip(queued, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(record)
                error = error or result
        return failed, error
