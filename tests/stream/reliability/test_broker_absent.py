"""Scenario 5: no broker at start; the worker waits with backoff, then processes everything.

``tests/stream/test_worker_startup.py`` covers the topic wait and ``--connect-timeout``
with one event; this test checks the backoff itself (0.5 s doubling), that every
attempt is logged with the address and the cause, and that once the broker appears a
whole stream is processed with nothing lost.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import normal_rows, publish_model
from tests.stream.harness import WorkerProcess, f32_event, wait_for, worker_settings
from tests.stream.reliability.ledger import Ledger
from tripwire.embedded import EmbeddedBroker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 5_000
RETRY = re.compile(
    r"WARNING \S+: cannot connect to the broker at (\S+) \((.+)\); retrying in ([\d.]+)s"
)


def retries(log: str) -> list[tuple[str, str, float]]:
    """(address, cause, delay) of every logged connection attempt."""
    return [(a, cause, float(d)) for a, cause, d in RETRY.findall(log)]


def test_worker_waits_with_backoff_and_then_processes_the_stream(tmp_path: Path) -> None:
    pub = publish_model(tmp_path / "registry")
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")  # not started
    kinds = ("features", "alerts", "dlq", "scores")
    topics = {k: f"{k}-absent-{time.monotonic_ns()}" for k in kinds}
    settings = worker_settings(broker, pub, topics)
    ledger = Ledger(broker.bootstrap, topics, settings["group_id"], 2)
    started = time.monotonic()
    worker = WorkerProcess(tmp_path / "worker.log", **settings)
    try:
        attempts = wait_for(lambda: len(r := retries(worker.log())) >= 4 and r, 60, "4 retries")
        assert worker.proc.poll() is None, worker.log()
        with broker:
            appeared = time.monotonic()
            asyncio.run(create_topics(broker.bootstrap, [topics["features"]], 2))
            for i, x in enumerate(normal_rows(N_EVENTS, seed=61)):
                ledger.plan(f32_event(f"e{i}", x, f"k{i % 9}"), {f"e{i}": x})
            ledger.send()
            wait_for(lambda: worker.metric("tripwire_events_scored_total"), 60, "first scores")
            first_scores = time.monotonic() - appeared
            fig, _ = ledger.tally("broker absent at start", timeout=90)
            code = worker.stop()
    finally:
        worker.stop()
    assert code == 0
    delays = [d for _, _, d in attempts]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]  # doubling (to a 15 s cap)
    assert all(a == broker.bootstrap and cause for a, cause, _ in attempts)
    log = worker.log()
    # A clean wait: no stack dumps; the only errors are aiokafka's failed connects.
    errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert "Traceback" not in log and all("aiokafka: Unable connect to" in e for e in errors)
    fig.extra.update(
        retries=len(retries(log)), waited_seconds=round(appeared - started, 1),
        first_scores_after_broker_seconds=round(first_scores, 1),
    )  # fmt: skip
    fig.check()
    assert fig.scored == N_EVENTS
