"""Scenario 1: SIGKILL the worker mid-stream of 50,000 events and restart it (twice).

Every input comes out (score record, alert when anomalous, dead letter when
invalid); nothing is lost. Re-deliveries come only from the window the killed
worker had not committed: an input at an offset the group had committed when a
worker died is never output again, and an alert's copies share its deterministic id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.registry import anomalous_rows, normal_rows, publish_model
from tests.stream.harness import (
    MAX_MESSAGE_BYTES,
    WorkerProcess,
    bad_inputs,
    f32_event,
    json_event,
    packed_event,
    wait_for,
)
from tests.stream.reliability.ledger import Ledger, check_redeliveries, new_run
from tripwire.core.registry import load_scorer
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.wire.alerts import alert_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 50_000
PARTITIONS = 3
#: Scored events (counted by each worker since its start) at which it is killed.
KILL_AFTER = (15_000, 18_000)
PACKED_EVERY, PACKED_SIZE = 200, 20  # one packed record of 20 vectors per 200 events
JSON_EVERY, BAD_EVERY = 20, 100


def plan_input(ledger: Ledger) -> np.ndarray:
    """~50,000 events in f32, JSON and packed records, 1% invalid records between them."""
    X = np.vstack([normal_rows(N_EVENTS - 250, seed=41), anomalous_rows(250, seed=42)])
    X = X[np.random.default_rng(43).permutation(len(X))]
    bad = bad_inputs()
    i = 0
    while i < len(X):
        key = f"k{i % 31}"
        if i % PACKED_EVERY == 0:
            ids = [f"e{j}" for j in range(i, i + PACKED_SIZE)]
            block = X[i : i + PACKED_SIZE]
            ledger.plan(packed_event(ids, block, key), dict(zip(ids, block, strict=True)))
            i += PACKED_SIZE
            continue
        eid = f"e{i}"
        make = json_event if i % JSON_EVERY == 0 else f32_event
        ledger.plan(make(eid, X[i], key), {eid: X[i]})
        if i % BAD_EVERY == 0:
            reason, out = bad[(i // BAD_EVERY) % len(bad)]
            ledger.plan(out, reasons=[reason])
        i += 1
    ledger.send()
    return X


def test_sigkill_mid_stream_then_restart_loses_nothing(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    pub = publish_model(tmp_path / "registry")
    settings, ledger = new_run(
        broker, pub, "killed", PARTITIONS, max_message_bytes=MAX_MESSAGE_BYTES
    )
    plan_input(ledger)
    windows: list[dict[int, int]] = []  # committed offsets when each worker died
    for n, scored in enumerate(KILL_AFTER):
        worker = WorkerProcess(tmp_path / f"worker-{n}.log", **settings)
        try:
            wait_for(
                lambda w=worker, s=scored: w.metric("tripwire_events_scored_total") >= s,
                120, f"worker {n} to score {scored} events", every=0.02,
            )  # fmt: skip
        finally:
            worker.kill()  # SIGKILL: no drain, no final commit
        assert worker.proc.returncode == -9
        windows.append(ledger.committed())
    last = WorkerProcess(tmp_path / "worker-last.log", **settings)
    try:
        fig, out = ledger.tally("worker SIGKILLed twice", timeout=120)
    finally:
        code = last.stop()
    assert code == 0
    assert all(sum(w.values()) < sum(ledger.ends.values()) for w in windows)  # really mid-stream
    fig.extra.update(kills=len(windows), **check_redeliveries(out, windows))
    # De-duplicated by id, the alerts are exactly the anomalies of the served model.
    scorer = load_scorer(pub.root, "demo@production")
    ids = sorted(ledger.rows)
    flagged = scorer.score(np.vstack([ledger.rows[i] for i in ids])).is_anomaly
    want = {alert_id(i, "demo", pub.version) for i, a in zip(ids, flagged, strict=True) if a}
    assert set(out.alerts) == want and len(want) >= 200
    fig.check()
    assert fig.scored == len(ledger.rows) >= N_EVENTS and fig.dead_lettered == len(ledger.bad)
