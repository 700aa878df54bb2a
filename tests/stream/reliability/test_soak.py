"""Scenario 8: a steady stream at half the worker's measured maximum rate.

First the worker's maximum rate is measured on a backlog (which also warms it up),
then events arrive at half that rate for ``seconds``. After a warm-up (a fifth of
the run, at least 15 s) the worker's resident memory must grow by less than 10%,
its consumer lag must stay under a few seconds' worth of events, its log must hold
no error, and every event must be consumed, committed and alerted when anomalous.

The default run streams for 75 s; the 10-minute soak runs only when asked::

    TRIPWIRE_SOAK=1 pytest tests/stream/reliability/test_soak.py -m soak -s

(``TRIPWIRE_SOAK_SECONDS`` changes its length). It uses the production defaults:
no scores topic, so accounting is by counts (consumed = produced, offsets all
committed) plus a per-id check of the alerts.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.registry import Published, normal_rows, publish_model
from tests.stream.harness import WorkerProcess, consume, f32_event, wait_for
from tests.stream.reliability.ledger import Figures, Ledger, new_run
from tests.stream.reliability.traffic import POOL, RateProducer
from tripwire.core.registry import load_scorer
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.wire.alerts import alert_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 3
BACKLOG = 30_000  # events to measure the maximum rate on
SAMPLE_EVERY = 2.0  # seconds
MAX_RSS_GROWTH = 0.10
LAG_BOUND_SECONDS = 5.0  # lag may hold at most this many seconds of events
LONG_SECONDS = float(os.environ.get("TRIPWIRE_SOAK_SECONDS", "600"))


@dataclass
class Samples:
    """What the soak saw every ``SAMPLE_EVERY`` seconds.

    Worker RSS (bytes), total consumer lag, events produced and scored, and the
    CPU seconds and RSS of the worker and the broker (to tell a slow worker from a
    starved one).
    """

    t: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    produced: list[int] = field(default_factory=list)
    scored: list[float] = field(default_factory=list)
    cpu: list[tuple[float, float]] = field(default_factory=list)  # worker, broker
    broker_rss: list[int] = field(default_factory=list)

    def timeline(self, rows: int = 12) -> str:
        """A table of about ``rows`` evenly spaced samples (rates over each interval)."""
        lines = [
            "   t s  produced/s  scored/s      lag  worker cpu%  broker cpu%  rss MB  broker MB"
        ]
        step = max(1, len(self.t) // rows)
        for i in range(step, len(self.t), step):
            dt = self.t[i] - self.t[i - step]
            rate = [(s[i] - s[i - step]) / dt for s in (self.produced, self.scored)]
            cpu = [100 * (self.cpu[i][k] - self.cpu[i - step][k]) / dt for k in (0, 1)]
            lines.append(
                f"{self.t[i]:6.0f} {rate[0]:11.0f} {rate[1]:9.0f} {self.lag[i]:8.0f} "
                f"{cpu[0]:12.0f} {cpu[1]:12.0f} {self.rss[i] / 2**20:7.0f} "
                f"{self.broker_rss[i] / 2**20:10.0f}"
            )
        return "\n".join(lines)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_max_rate(worker: WorkerProcess, ledger: Ledger) -> float:
    """Events/s the worker scores on a backlog of ``BACKLOG`` events (after a first 1%)."""
    scored = "tripwire_events_scored_total"
    X = normal_rows(BACKLOG + BACKLOG // 100, seed=81)
    for i, x in enumerate(X):
        ledger.plan(f32_event(f"w{i}", x, f"k{i % 20}"), {f"w{i}": x})
        if i == BACKLOG // 100 - 1:  # the worker is up and consuming before the clock starts
            ledger.send()
            wait_for(lambda: worker.metric(scored) > i, 60, "the worker to start")
    start, before = time.monotonic(), worker.metric(scored)
    ledger.send()
    wait_for(lambda: worker.metric(scored) >= len(X), 120, "the backlog", every=0.05)
    return (len(X) - before) / (time.monotonic() - start)


def stream(
    worker: WorkerProcess, broker: EmbeddedBroker, producer: RateProducer, seconds: float
) -> Samples:
    assert broker.process is not None
    pids = (worker.proc.pid, broker.process.pid)
    samples = Samples()
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        assert worker.proc.poll() is None, "the worker exited"
        m = worker.metrics()
        samples.t.append(elapsed)
        samples.rss.append(rss_bytes(pids[0]))
        samples.lag.append(sum(v for k, v in m.items() if k.startswith("tripwire_consumer_lag{")))
        samples.produced.append(producer.acked)
        samples.scored.append(m["tripwire_events_scored_total"])
        samples.cpu.append((cpu_seconds(pids[0]), cpu_seconds(pids[1])))
        samples.broker_rss.append(rss_bytes(pids[1]))
        time.sleep(SAMPLE_EVERY)
    return samples


def expected_alerts(pub: Published, ledger: Ledger, producer: RateProducer) -> set[str]:
    """Alert ids of the anomalous events: the backlog's and the stream's."""
    scorer = load_scorer(pub.root, f"{pub.name}@production")
    ids = list(ledger.rows)
    backlog = scorer.score(np.vstack([ledger.rows[i] for i in ids])).is_anomaly
    pool = scorer.score(producer.pool).is_anomaly
    anomalous = [i for i, a in zip(ids, backlog, strict=True) if a]
    anomalous += [f"{producer.prefix}{i}" for i in range(producer.sent) if pool[i % POOL]]
    return {alert_id(i, pub.name, pub.version) for i in anomalous}


def run_soak(tmp_path: Path, seconds: float) -> None:
    pub = publish_model(tmp_path / "registry")
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        settings, ledger = new_run(broker, pub, "soak", PARTITIONS, scores_topic="")
        worker = WorkerProcess(tmp_path / "worker.log", **settings)
        try:
            max_rate = measure_max_rate(worker, ledger)
            rate = max_rate / 2
            with RateProducer(broker.bootstrap, settings["input_topic"], rate) as producer:
                samples = stream(worker, broker, producer, seconds)
            print(f"\nsoak at {rate:.0f} events/s (max {max_rate:.0f}):\n{samples.timeline()}")
            ledger.record({}, producer.placed())
            ledger.wait_committed(timeout=120)
            m = worker.metrics()
            records = consume(broker.bootstrap, settings["alert_topic"])
            alerts = Counter(json.loads(r.value)["id"] for r in records)
        finally:
            code = worker.stop()
    assert code == 0
    fig = tally(ledger, producer, m, samples, seconds)
    fig.extra.update(
        max_rate=round(max_rate), rate=round(rate),
        broker_rss_mb=round(samples.broker_rss[-1] / 2**20),
    )  # fmt: skip
    want = expected_alerts(pub, ledger, producer)
    fig.lost += len(want - alerts.keys())
    fig.extra.update(alerts=len(alerts), alerts_duplicated=alerts.total() - len(alerts))
    fig.problems += [f"unexpected alert {a}" for a in sorted(set(alerts) - want)[:10]]
    fig.problems += [f"line {line!r}" for line in error_lines(worker)[:10]]
    fig.check()


def tally(
    ledger: Ledger, producer: RateProducer, m: dict[str, float], s: Samples, seconds: float
) -> Figures:
    events = len(ledger.rows) + producer.acked
    consumed = int(m["tripwire_events_consumed_total"])
    warm = [i for i, t in enumerate(s.t) if t >= max(15.0, seconds / 5)]
    base = statistics.median(s.rss[warm[0] : warm[0] + 3])
    end = statistics.median(s.rss[-3:])
    growth = end / base - 1
    lag_max = max(s.lag[i] for i in warm)
    invalid = sum(v for k, v in m.items() if k.startswith("tripwire_invalid_events_total{"))
    fig = Figures(
        f"soak {seconds:g} s", events_in=events, scored=int(m["tripwire_events_scored_total"]),
        dead_lettered=int(invalid),
        duplicated=max(consumed - events, 0), lost=max(events - consumed, 0),
    )  # fmt: skip
    fig.extra.update(
        rss_after_warmup_mb=round(base / 2**20, 1), rss_end_mb=round(end / 2**20, 1),
        rss_growth_pct=round(100 * growth, 1), lag_max=lag_max,
        lag_bound=round(producer.rate * LAG_BOUND_SECONDS),
    )  # fmt: skip
    if growth >= MAX_RSS_GROWTH:
        fig.problems.append(f"RSS grew {100 * growth:.1f}% after warm-up: {s.rss}")
    if lag_max > producer.rate * LAG_BOUND_SECONDS:
        fig.problems.append(f"lag reached {lag_max}: {s.lag}")
    if fig.scored != events or producer.sent != producer.acked:
        fig.problems.append(f"scored {fig.scored} of {events} ({producer.sent} sent)")
    return fig


def error_lines(worker: WorkerProcess) -> list[str]:
    return [
        line for line in worker.log().splitlines()
        if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
    ]  # fmt: skip


def test_soak_short(tmp_path: Path) -> None:
    run_soak(tmp_path, 75.0)


@pytest.mark.soak
@pytest.mark.timeout(LONG_SECONDS + 600)
@pytest.mark.skipif(os.environ.get("TRIPWIRE_SOAK") != "1", reason="set TRIPWIRE_SOAK=1")
def test_soak_long(tmp_path: Path) -> None:
    run_soak(tmp_path, LONG_SECONDS)
