"""The batch consumer's fetch long-poll: how it backs off and comes back, no broker."""

from __future__ import annotations

import pytest

from tripwire.stream.kafka.app import create_app
from tripwire.stream.kafka.consumer import BatchConsumer, batch_consumer
from tripwire.stream.settings import WorkerSettings


@pytest.fixture
def consumer() -> BatchConsumer:
    return batch_consumer(create_app(WorkerSettings(bootstrap="127.0.0.1:9", model_ref="demo")))


class FakeThread:
    """Stands in for the consumer thread: whether the log is ahead, the wait set."""

    def __init__(self) -> None:
        self.ahead = False
        self.wait_ms = 10

    def behind(self) -> bool:
        return self.ahead

    def set_fetch_wait(self, seconds: float) -> bool:
        changed = self.wait_ms != round(seconds * 1000)
        self.wait_ms = round(seconds * 1000)
        return changed


def test_the_long_poll_fits_what_the_broker_needs(
    consumer: BatchConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = FakeThread()
    monkeypatch.setattr(consumer, "_thread", thread)
    consumer.fetch_max_wait = 0.01
    consumer._adapt_fetch_wait(False)  # empty and caught up: stays short
    consumer._adapt_fetch_wait(True)
    assert thread.wait_ms == 10
    thread.ahead = True
    waits = []
    for _ in range(8):  # empty while the log is ahead: doubles, up to the cap
        consumer._adapt_fetch_wait(False)
        waits.append(thread.wait_ms)
    assert waits == [20, 40, 80, 160, 320, 500, 500, 500]
    consumer._adapt_fetch_wait(True)  # records, still behind: the wait that works stays
    assert thread.wait_ms == 500
    thread.ahead = False
    waits = []
    for got in (True, False, True, True, True, True, True, True):  # caught up: halves
        consumer._adapt_fetch_wait(got)
        waits.append(thread.wait_ms)
    assert waits == [250, 125, 62, 31, 16, 10, 10, 10]
