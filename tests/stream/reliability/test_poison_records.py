"""Issue 11 §1: one poison record no longer crash-loops every replica of the group.

On main each record of ``poison.poison_records`` made the worker that read it exit
(``app.crash``); the restart read the same uncommitted batch again, and in a group
the partition moved to the next replica, which crashed too (measured: two workers,
one poison record on partition 0, both exited within 22 s). Now two workers share
the topic, every poison record sits on partition 0 among valid events, and both stay
up: each poison record gets one dead letter with its reason, every valid event is
scored, and the committed offsets reach the end of both partitions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.registry import N_FEATURES, normal_rows, publish_model
from tests.stream.harness import Out, WorkerProcess, f32_event, json_event
from tests.stream.reliability.ledger import new_run
from tests.stream.reliability.poison import poison_records
from tripwire.embedded import EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2


def test_poison_records_are_dead_lettered_and_both_workers_stay_up(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    pub = publish_model(tmp_path / "registry")
    settings, ledger = new_run(broker, pub, "poison", PARTITIONS)
    X = normal_rows(200, N_FEATURES, seed=23)
    valid = 0

    def plan_valid(count: int) -> None:
        nonlocal valid
        for _ in range(count):
            i, p = valid, valid % PARTITIONS
            make = json_event if i % 2 else f32_event
            o = make(f"v{i}", X[i % len(X)], f"k{i % 7}")
            ledger.plan(Out(o.value, o.key, o.headers, p), {f"v{i}": X[i % len(X)]})
            valid += 1

    cases = poison_records(partition=0)
    plan_valid(20)
    for _, o, rows, reasons in cases:
        ledger.plan(o, rows, reasons)
        plan_valid(6)
    placed = ledger.send()
    where = {name: placed[20 + k * 7] for k, (name, *_) in enumerate(cases)}
    a = WorkerProcess(tmp_path / "a.log", **settings)
    b = WorkerProcess(tmp_path / "b.log", **settings)
    try:
        fig, out = ledger.tally("poison records", timeout=90)
        alive = a.proc.poll() is None and b.proc.poll() is None
        metrics = [a.metrics(), b.metrics()]
    finally:
        codes = a.stop(), b.stop()
    logs = a.log() + b.log()
    assert alive and codes == (0, 0), logs[-4000:]
    assert "CRITICAL" not in logs and "Traceback" not in logs, logs[-4000:]
    fig.extra.update(poison_records=len(cases), workers=2)
    fig.check()  # every valid event scored, every poison record dead-lettered, none lost
    refused = [c for c in cases if c[3]]  # the rest are now scored (lone surrogates)
    assert fig.scored == valid + 1 + len(cases) - len(refused)
    assert fig.dead_lettered == len(refused)
    for name, _, _, reasons in refused:
        (letter,) = out.dead[where[name]]
        headers, _ = letter
        assert headers["tripwire-reason"] in reasons, (name, headers)
        if reasons == {"processing_error"}:
            assert headers["tripwire-error"] not in ("", "InvalidEvent"), (name, headers)
    errors = sum(m.get('tripwire_invalid_events_total{reason="processing_error"}', 0)
                 for m in metrics)  # fmt: skip
    assert errors == sum(r == {"processing_error"} for *_, r in cases)
    assert "a header key is not UTF-8" in logs and "partition 0 offset" in logs
