"""Scenario 4: the broker freezes (SIGSTOP) for 22 s mid-stream, then resumes (SIGCONT).

The worker is not restarted: it must resume by itself, lose nothing, and show the
stall in its metrics while it lasts (``tripwire_last_processed_timestamp_seconds``
stops moving; ``/metrics`` is served from its own thread, so it answers throughout).
A dedicated broker: freezing the session's shared one would stall other tests.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.fixtures.registry import publish_model
from tests.stream.harness import WorkerProcess, wait_for
from tests.stream.reliability.ledger import new_run
from tests.stream.reliability.traffic import RateProducer
from tripwire.embedded import EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2
RATE = 500  # events/s
STALL = 22.0  # seconds
LAST = "tripwire_last_processed_timestamp_seconds"
SCORED = "tripwire_events_scored_total"


def lag(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("tripwire_consumer_lag{"))


def freeze(
    broker: EmbeddedBroker, worker: WorkerProcess, producer: RateProducer, seconds: float
) -> dict[str, float]:
    """SIGSTOP the broker for ``seconds`` while sampling the worker's metrics each second.

    First the producer holds until every event it sent is acked and the worker has
    scored them all: then the worker has nothing left to score when the broker
    stops, whatever the machine's load (a worker lagging behind would otherwise go
    on scoring its backlog into the freeze). The producer resumes right after the
    SIGSTOP, so the stream goes on into the frozen broker.
    """
    assert broker.process is not None
    producer.hold()
    wait_for(lambda: worker.metric(SCORED) >= producer.acked, 120, "the worker to catch up")
    before = worker.metrics()
    os.kill(broker.process.pid, signal.SIGSTOP)
    producer.release()
    try:
        start = time.time()
        ages = []
        while time.time() - start < seconds:
            time.sleep(1.0)  # the sampling period, not a bound
            m = worker.metrics()
            ages.append(time.time() - m[LAST])
            during = m
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    return {
        "max_age": max(ages), "scored_before": before[SCORED], "scored_during": during[SCORED],
        "acked_before": float(producer.acked),
    }  # fmt: skip


def test_worker_rides_out_a_frozen_broker(tmp_path: Path) -> None:
    pub = publish_model(tmp_path / "registry")
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        settings, ledger = new_run(broker, pub, "stall", PARTITIONS)
        worker = WorkerProcess(tmp_path / "worker.log", **settings)
        try:
            with RateProducer(broker.bootstrap, settings["input_topic"], RATE) as producer:
                wait_for(lambda: worker.metric(SCORED) > 2 * RATE, 60, "streaming")
                stall = freeze(broker, worker, producer, STALL)
                resumed = time.monotonic()
                wait_for(
                    lambda: (m := worker.metrics())[SCORED] > stall["scored_during"]
                    and time.time() - m[LAST] < 2, 120, "the worker to resume",
                )  # fmt: skip
                recovery = time.monotonic() - resumed
                peak_lag = lag(worker.metrics())  # the backlog the stall left
                time.sleep(5.0)  # the stream goes on
            ledger.record(producer.rows(), producer.placed())
            fig, _ = ledger.tally(f"broker SIGSTOPped {STALL:g} s", timeout=120)
            alive = worker.proc.poll() is None
            m = worker.metrics()
        finally:
            code = worker.stop()
    assert alive and code == 0
    # The stall shows: nothing finished while the broker was frozen. Both are true
    # guarantees on any CPU, not timing targets: the worker had scored every event
    # in the log before the SIGSTOP and a frozen broker takes no new ones, so no
    # batch can be scored during the freeze; the last sample is taken at least
    # STALL seconds after the SIGSTOP, so the last-processed age is at least STALL.
    assert stall["scored_before"] >= stall["acked_before"], stall  # caught up
    assert stall["scored_during"] == stall["scored_before"], stall
    assert stall["max_age"] >= STALL, stall
    fig.extra.update(
        stalled_seconds=STALL, last_processed_age_max=round(stall["max_age"], 1),
        scored_while_frozen=stall["scored_during"] - stall["scored_before"],
        recovery_seconds=round(recovery, 1), lag_after_resume=peak_lag,
        produce_errors=m["tripwire_produce_errors_total"],
    )  # fmt: skip
    fig.check()
    assert fig.scored == producer.acked == producer.sent
