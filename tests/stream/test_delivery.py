"""Delivery's retry logic, driven by a scripted ``send`` (the producer seam).

The broker side is covered by the integration tests; here a scripted send makes the
failure cases (refused before sending, failed after) happen on demand.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream import delivery
from stream.delivery import Delivery, DeliveryAborted
from stream.metrics import Metrics
from stream.records import OutputRecord


class ScriptedSend:
    """Fails the first attempt of chosen values, synchronously or via the future."""

    def __init__(self, fail_sync: set[bytes], fail_async: set[bytes]) -> None:
        self.fail_sync = set(fail_sync)
        self.fail_async = set(fail_async)
        self.delivered: list[bytes] = []

    async def __call__(self, record: OutputRecord) -> Any:
        if record.value in self.fail_sync:
            self.fail_sync.discard(record.value)
            raise RuntimeError("buffer full")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if record.value in self.fail_async:
            self.fail_async.discard(record.value)
            fut.set_exception(TimeoutError("no ack"))
        else:
            self.delivered.append(record.value)
            fut.set_result(None)
        return fut


def records(n: int) -> list[OutputRecord]:
    return [OutputRecord("t", None, str(i).encode()) for i in range(n)]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "FIRST_BACKOFF", 0.001)


async def test_failed_records_are_retried_until_acknowledged() -> None:
    metrics = Metrics(CollectorRegistry())
    send = ScriptedSend(fail_sync={b"1"}, fail_async={b"3", b"4"})
    await Delivery(send, metrics, lambda: False).deliver(records(6))
    assert sorted(send.delivered) == [str(i).encode() for i in range(6)]
    assert len(send.delivered) == 6  # nothing delivered twice by us
    assert metrics.registry.get_sample_value("tripwire_produce_errors_total") == 3


async def test_delivery_gives_up_only_when_stopping() -> None:
    metrics = Metrics(CollectorRegistry())
    send = ScriptedSend(fail_sync=set(), fail_async={b"0"})
    with pytest.raises(DeliveryAborted):
        await Delivery(send, metrics, lambda: True).deliver(records(2))
