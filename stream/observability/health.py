"""Liveness and readiness of the worker, as ``/healthz``, ``/readyz`` and gauges.

``/healthz`` (liveness) answers 200 while the process's **event loop** is alive: it
must have ticked within ``LIVENESS_TIMEOUT`` seconds. The HTTP server runs in its
own thread (so that a busy loop never delays a scrape), which is why it cannot
answer for the loop by being up: ``heartbeat`` is a task on the loop that stamps
the time every ``HEARTBEAT_INTERVAL``, and the server compares that stamp with the
clock when asked. A frozen loop (a blocking call, a deadlock) fails it while
``/metrics`` still answers. A missing broker or model does not fail it: a restart
would not fix those. Until the loop first runs, the server's start counts as the
last tick.

``/readyz`` (readiness) answers 200 when the worker can do its job: a model is
loaded; the broker answered the last probe
(``tripwire.stream.kafka.broker_probe``: a metadata request for the input topic every
few seconds); and the consumer is in its group,
i.e. it received an assignment since its last revocation, with partitions or
waiting for them (more workers than partitions). Otherwise 503. Both bodies are
JSON naming each check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Seconds between two ticks of the event loop's heartbeat task.
HEARTBEAT_INTERVAL = 1.0
#: /healthz fails once the loop has not ticked for this long (the alert rule
#: TripwireEventLoopStuck uses the same bound).
LIVENESS_TIMEOUT = 10.0


class Health:
    """What the worker knows about itself, read by the HTTP thread.

    Plain attributes written by the event loop and read by the server thread:
    each is one reference assignment, atomic under the GIL.

    Parameters
    ----------
    liveness_timeout : float
        Seconds without a heartbeat after which the worker is not live.
    clock : callable
        Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        liveness_timeout: float = LIVENESS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.liveness_timeout = liveness_timeout
        self._clock = clock
        self._last_beat = clock()
        self.model_loaded = False
        self.broker_up = False
        self.in_group = False

    def beat(self) -> None:
        """The event loop is alive now."""
        self._last_beat = self._clock()

    def heartbeat_age(self) -> float:
        """Seconds since the last heartbeat."""
        return max(self._clock() - self._last_beat, 0.0)

    def live(self) -> dict[str, bool]:
        """The liveness checks by name (all must hold)."""
        return {"event_loop": self.heartbeat_age() <= self.liveness_timeout}

    def ready(self) -> dict[str, bool]:
        """The readiness checks by name (all must hold)."""
        return {
            "model_loaded": self.model_loaded,
            "broker_reachable": self.broker_up,
            "in_consumer_group": self.in_group,
        }

    def is_ready(self) -> bool:
        return all(self.ready().values())


async def heartbeat(health: Health, interval: float = HEARTBEAT_INTERVAL) -> None:
    """Stamp ``health`` every ``interval`` seconds, for as long as the loop runs."""
    while True:
        health.beat()
        await asyncio.sleep(interval)
