"""Start-up without a broker: wait with backoff (or give up when told to)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import normal_rows, publish_model
from tests.stream.harness import WorkerProcess, consume, f32_event, produce, wait_for
from tripwire.embedded import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration


def test_worker_waits_for_a_broker_that_is_not_there_yet(tmp_path: Path) -> None:
    pub = publish_model(tmp_path / "registry")
    port = free_port()
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=f"127.0.0.1:{port}", registry=pub.root,
        model_ref="demo", input_topic="in", alert_topic="alerts", dlq_topic="dlq",
        scores_topic="scores", group_id="late",
    )  # fmt: skip
    try:
        wait_for(lambda: "cannot connect to the broker" in worker.log(), 30, "a retry log line")
        with EmbeddedBroker(port=port) as broker:
            wait_for(lambda: "cannot find input topic 'in'" in worker.log(), 30, "topic wait")
            asyncio.run(create_topics(broker.bootstrap, ["in"], 1))
            produce(broker.bootstrap, "in", [f32_event("e0", normal_rows(1)[0], "k")])
            scores = consume(broker.bootstrap, "scores", lambda rs: len(rs) >= 1, timeout=60)
            assert [json.loads(r.value)["id"] for r in scores] == ["e0"]
            assert worker.stop() == 0
    finally:
        worker.stop()
    assert "retrying in" in worker.log()


def test_worker_gives_up_after_connect_timeout(tmp_path: Path) -> None:
    pub = publish_model(tmp_path / "registry")
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=f"127.0.0.1:{free_port()}", registry=pub.root,
        model_ref="demo", connect_timeout=2,
    )  # fmt: skip
    try:
        code = worker.proc.wait(60)
    finally:
        worker.stop()
    assert code == 2
    assert "could not connect to the broker" in worker.log()
