"""``python -m benchmarks.shadow_throughput``: the worker with a shadow model vs without.

One embedded broker; two autoencoders trained on the tutorial's data (seeds 0 and
1), promoted to ``production`` and ``candidate``. Throughput: one topic of binary
events (1 % anomalous) written once, then ``tripwire worker`` reads all of it,
alternately without and with ``--shadow-model m@candidate`` (a fresh consumer group
each time, the order swapped every round), and the medians are compared.
Latency: events offered at a fixed rate (5,000/s) to a fresh topic per worker, each
stamped with its send time; an alert's latency is its record timestamp minus that.
A run's figures come from ``tripwire.bench`` (the same measurement as
``tripwire bench stream``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.bench.stream_data import (
    create_topics,
    demo_rows,
    produce_all,
    records_for,
    train_model,
)
from tripwire.bench.stream_worker import (
    WorkerProcess,
    alert_latencies,
    offer,
    percentiles,
    throughput,
    wait_until,
)
from tripwire.embedded import EmbeddedBroker

log = logging.getLogger(__name__)

FRACTION = 0.01
#: Targets of issue 17: throughput with a shadow over without, p99 with a shadow (ms).
TARGET_RATIO, TARGET_P99_MS = 0.60, 50.0


def train_candidate(registry: Path, seed: int) -> None:
    """A second AE (another seed) for the same features, promoted to ``candidate``."""
    from tripwire.training.pipeline import train
    from tripwire.training.settings import TrainSettings

    train(replace(TrainSettings(), demo=True, model="ae", registry=str(registry), name="m",
                  promote="candidate", seed=seed, plot="none"))  # fmt: skip


class Bench:
    """The broker, the registry and the topics of one benchmark run."""

    def __init__(self, bootstrap: str, work: Path, args: argparse.Namespace) -> None:
        self.bootstrap, self.work, self.args = bootstrap, work, args
        self.registry = work / "registry"
        self.tag = str(time.monotonic_ns())
        self.n = 0

    def worker(self, shadow: bool, topic: str, name: str) -> WorkerProcess:
        extra: dict[str, Any] = {"shadow_model": "m@candidate"} if shadow else {}
        return WorkerProcess(
            self.work / f"worker-{name}.log", bootstrap=self.bootstrap, registry=self.registry,
            model_ref="m", input_topic=topic, alert_topic=f"{topic}.alerts-{name}",
            dlq_topic=f"{topic}.dlq-{name}", group_id=f"g-{name}-{time.monotonic_ns()}",
            session_timeout=4.0, **extra,
        )  # fmt: skip

    def fill(self, rows: Any) -> str:
        topic = f"shadow-bench-{self.tag}"
        asyncio.run(create_topics(self.bootstrap, [topic], 3))
        records = records_for("binary", rows, self.args.events, FRACTION, 100)
        asyncio.run(produce_all(self.bootstrap, topic, records))
        self.n = len(records)
        return topic

    def throughput(self, topic: str, shadow: bool, i: int) -> float:
        worker = self.worker(shadow, topic, f"{'on' if shadow else 'off'}-{i}")
        try:
            window, _ = throughput(worker, self.n, timeout=900)
            if shadow:
                scored = worker.metrics().get("tripwire_shadow_events_scored_total", 0.0)
                assert scored > 0, "the shadow scored nothing: see the worker's log"
        finally:
            worker.stop()
        return window.vectors_per_s

    def latency(self, rows: Any, shadow: bool) -> dict[str, Any]:
        name = "on" if shadow else "off"
        topic = f"shadow-lat-{name}-{self.tag}"
        asyncio.run(create_topics(self.bootstrap, [topic], 3))
        worker = self.worker(shadow, topic, f"lat-{name}")
        try:
            deadline = time.monotonic() + 120
            while worker.metrics().get("tripwire_ready") != 1.0:
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError("the worker did not become ready")
                time.sleep(0.2)
            args = self.args
            offered = asyncio.run(offer(self.bootstrap, topic, rows, args.rate, args.rate_seconds,
                                        FRACTION, prefix="l-"))  # fmt: skip
            last = wait_until(worker, offered.sent, 120)
            lat = asyncio.run(alert_latencies(self.bootstrap, f"{topic}.alerts-lat-{name}",
                                              int(last.anomalies)))  # fmt: skip
        finally:
            worker.stop()
        values = lat.get("l", [])
        return {"achieved": offered.achieved, "alerts": len(values), **percentiles(values)}


def _row(what: str, off: float | None, on: float | None, fmt: str, target: str) -> str:
    ratio = f"{on / off:.2f}" if off and on is not None else "-"
    cell = lambda v: "-" if v is None else format(v, fmt)  # noqa: E731
    return f"| {what} | {cell(off)} | {cell(on)} | {ratio} | {target} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shadow_throughput")
    parser.add_argument("--events", type=int, default=200_000, help="binary events per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode (medians)")
    parser.add_argument("--rate", type=float, default=5000.0, help="offered events/s")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "b.log") as b:
        bench = Bench(b.bootstrap, Path(tmp), args)
        train_model(bench.registry, args.seed, model="ae", name="m")
        train_candidate(bench.registry, args.seed + 1)
        rows = demo_rows(args.seed)
        topic = bench.fill(rows)
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(args.rounds):
            for shadow in (False, True) if i % 2 == 0 else (True, False):
                rate = bench.throughput(topic, shadow, i)
                rates["on" if shadow else "off"].append(rate)
                print(json.dumps({"shadow": shadow, "events_per_s": round(rate)}), flush=True)
        latency = {mode: bench.latency(rows, mode == "on") for mode in ("off", "on")}
        for mode, figures in latency.items():
            print(json.dumps({"shadow": mode == "on", "latency_ms": figures}), flush=True)
    off, on = (float(np.median(rates[m])) for m in ("off", "on"))
    print(f"\n{args.events:,} binary events x {args.rounds} rounds; latency at "
          f"{args.rate:,.0f} events/s for {args.rate_seconds:g} s\n")  # fmt: skip
    print("| measure | without shadow | with shadow | with / without | target |")
    print("|---|---|---|---|---|")
    print(_row("worker throughput, events/s (median)", off, on, ",.0f",
               f"ratio >= {TARGET_RATIO:.0%}"))  # fmt: skip
    for q in ("p50", "p99"):
        target = f"<= {TARGET_P99_MS:g} ms with shadow" if q == "p99" else ""
        print(_row(f"{q} event -> alert, ms", latency["off"][q], latency["on"][q], ".1f", target))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
