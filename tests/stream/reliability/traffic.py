"""A steady stream of binary events at a set rate, that rides out broker stalls.

``tests.stream.test_worker_reload_scaleout.SteadyProducer`` opens a producer per
burst at a fixed ~200 events/s; a soak needs a chosen rate, and a stall test needs
sends that wait for a frozen broker rather than fail. ``RateProducer`` keeps one
producer (in its own thread and event loop) with a request timeout longer than any
stall a test injects, and remembers only per-partition log ends, so it can run for
millions of events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
from aiokafka import AIOKafkaProducer

from tests.fixtures.registry import anomalous_rows, normal_rows
from tripwire.stream.wire.encodings import Events, encoding

#: Longer than any stall a test injects: sends wait for the broker instead of failing.
REQUEST_TIMEOUT_MS = 180_000
POOL = 1000


class RateProducer:
    """Produces f32 events ``<prefix><i>`` at ``rate`` per second until stopped.

    Event ``i`` has the vector ``row(i)`` (1% anomalous) and the key
    ``k<i % keys>``. Use as a context manager; leaving it flushes every send and
    raises if the broker refused any. :meth:`hold` stops sending until
    :meth:`release` (the rate's schedule goes on, so the release sends the backlog).
    """

    def __init__(
        self, bootstrap: str, topic: str, rate: float, *, prefix: str = "e", keys: int = 20
    ) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.prefix, self.keys = prefix, keys
        X = np.vstack([normal_rows(POOL - POOL // 100, seed=5), anomalous_rows(POOL // 100)])
        self.pool = X[np.random.default_rng(5).permutation(POOL)]
        self.sent = 0  # handed to the producer
        self.acked = 0  # acknowledged by the broker
        self.ends: dict[int, int] = {}  # partition -> one past the last acked offset
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._hold = threading.Event()
        self._held = threading.Event()  # set once a hold flushed every send
        self._thread = threading.Thread(target=self._run, name="rate-producer")

    def row(self, i: int) -> np.ndarray:
        return self.pool[i % POOL]

    def rows(self) -> dict[str, np.ndarray]:
        """Every event sent so far, id -> vector."""
        return {f"{self.prefix}{i}": self.row(i) for i in range(self.sent)}

    def placed(self) -> Iterator[tuple[int, int]]:
        """The last acked offset of each partition (enough for ``Ledger.record``)."""
        return ((p, end - 1) for p, end in self.ends.items())

    def hold(self, timeout: float = 120.0) -> None:
        """Stop sending; return once every send so far is acknowledged."""
        self._hold.set()
        if not self._held.wait(timeout):
            raise AssertionError(f"the test producer did not flush within {timeout:g} s")
        if self.error is not None:
            raise AssertionError(f"the test producer failed: {self.error!r}") from self.error

    def release(self) -> None:
        """Send again (first the events the schedule fell behind by while held)."""
        self._held.clear()
        self._hold.clear()

    def __enter__(self) -> RateProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None and exc[0] is None:
            raise AssertionError(f"the test producer failed: {self.error!r}") from self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as e:  # reported by __exit__
            self.error = self.error or e

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=5, request_timeout_ms=REQUEST_TIMEOUT_MS
        )
        await producer.start()
        try:
            started = time.monotonic()
            while not self._stop.is_set():
                if self._hold.is_set():
                    if not self._held.is_set():
                        await producer.flush()
                        self._held.set()
                    await asyncio.sleep(0.005)
                    continue
                due = int((time.monotonic() - started) * self.rate)
                while self.sent < due and not self._stop.is_set():
                    await self._send(producer, self.sent)
                    self.sent += 1
                await asyncio.sleep(0.005)
            await producer.flush()
        finally:
            await producer.stop()

    async def _send(self, producer: AIOKafkaProducer, i: int) -> None:
        event = Events(
            np.asarray(self.row(i))[None, :], [f"{self.prefix}{i}"], [f"k{i % self.keys}"]
        )
        [r] = encoding("binary").encode(event)
        future = await producer.send(self.topic, r.value, key=r.key, headers=r.headers)
        future.add_done_callback(self._acked)

    def _acked(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            self.error = self.error or future.exception() or asyncio.CancelledError()
            return
        meta = future.result()
        self.acked += 1
        self.ends[meta.partition] = max(self.ends.get(meta.partition, 0), meta.offset + 1)
