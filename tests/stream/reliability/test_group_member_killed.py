"""Scenario 2: two workers share a live stream; one is SIGKILLed; the survivor takes over.

The killed worker never leaves the group cleanly: its partitions move to the survivor
only after its session times out and the group rebalances. The survivor then
processes them from the last committed offsets, so nothing the dead worker had not
committed is lost, and everything produced afterwards is scored too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.registry import publish_model
from tests.stream.harness import SESSION_TIMEOUT, WorkerProcess, wait_for
from tests.stream.reliability.ledger import check_redeliveries, new_run
from tests.stream.reliability.traffic import RateProducer
from tripwire.embedded import EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
RATE = 1000  # events/s


def owned(worker: WorkerProcess) -> set[int]:
    """Partitions the worker exports a lag for (it has processed them and owns them)."""
    prefix = 'tripwire_consumer_lag{partition="'
    return {int(k[len(prefix) : -2]) for k in worker.metrics() if k.startswith(prefix)}


def split(a: WorkerProcess, b: WorkerProcess) -> tuple[set[int], set[int]] | None:
    """Both workers' partitions once they cover the topic without overlap."""
    pa, pb = owned(a), owned(b)
    if pa and pb and not pa & pb and pa | pb == set(range(PARTITIONS)):
        return pa, pb
    return None


def test_survivor_takes_over_the_killed_workers_partitions(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    pub = publish_model(tmp_path / "registry")
    settings, ledger = new_run(broker, pub, "member-killed", PARTITIONS)
    a = WorkerProcess(tmp_path / "a.log", **settings)
    b = WorkerProcess(tmp_path / "b.log", **settings)
    try:
        with RateProducer(broker.bootstrap, settings["input_topic"], RATE) as producer:
            _, victim = wait_for(lambda: split(a, b), 60, "the partitions split between a and b")
            before_kill = a.metric("tripwire_events_consumed_total")
            b.kill()
            killed_at = time.monotonic()
            window = {p: o for p, o in ledger.committed().items() if p in victim}
            wait_for(lambda: owned(a) == set(range(PARTITIONS)), 60, "a owns every partition")
            takeover = time.monotonic() - killed_at
            wait_for(lambda: a.metric("tripwire_events_consumed_total") > before_kill + RATE,
                     30, "a keeps processing")  # fmt: skip
            time.sleep(1.0)
        ledger.record(producer.rows(), producer.placed())
        fig, out = ledger.tally("group member SIGKILLed", timeout=60)
    finally:
        b.kill()
        code = a.stop()
    assert code == 0
    fig.extra.update(
        killed_worker_partitions=sorted(victim), takeover_seconds=round(takeover, 1),
        session_timeout_seconds=float(SESSION_TIMEOUT), **check_redeliveries(out, [window]),
    )  # fmt: skip
    fig.check()
    assert fig.scored == producer.sent == producer.acked
