"""``python -m benchmarks.replay_throughput``: ``tripwire replay`` with two versions vs the worker.

One embedded broker; two detectors trained on the tutorial's data (seeds 0 and 1),
promoted to ``production`` and ``candidate``. One topic of binary events (1 %
anomalous) is written once. Each round, alternately in both orders:

- ``tripwire worker`` (one model, its defaults) reads the whole topic in a fresh
  consumer group; its rate is ``tripwire.bench.stream_worker.throughput`` (the
  worker's own counts between its first and last batch);
- the replay of the whole topic with ``m@production`` and ``m@candidate`` runs in
  this process with the command's own pieces (``RangeReader``, ``Replay``,
  ``replay_range``), timed from the first scored batch to the end; its RSS is
  sampled every 0.2 s (``VmRSS``) with the events read so far.

Reported: the medians of both rates and their ratio (target: replay >= 50 % of the
worker), and the replay's RSS after a quarter of the range and at its peak
(memory flat: the peak close to the quarter mark).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from tripwire.bench.stream_data import create_topics, demo_rows, produce_all, records_for
from tripwire.bench.stream_worker import WorkerProcess, throughput
from tripwire.embedded import EmbeddedBroker

log = logging.getLogger(__name__)

FRACTION = 0.01
#: Target of issue 17: replay with two versions over the worker with one.
TARGET_RATIO = 0.50


def train(registry: Path, seed: int, alias: str, model: str, epochs: int | None) -> None:
    from tripwire.training.pipeline import train as run_train
    from tripwire.training.settings import TrainSettings

    settings = replace(TrainSettings(), demo=True, model=model, registry=str(registry), name="m",
                       promote=alias, seed=seed, plot="none", epochs=epochs)  # fmt: skip
    run_train(settings)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sampler:
    """``(events compared, RSS MiB)`` every 0.2 s while the replay runs."""

    def __init__(self, replay: object) -> None:
        self.replay = replay
        self.samples: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append((int(getattr(self.replay, "events", 0)), rss_mib()))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def replay_once(bootstrap: str, registry: Path, topic: str, n: int) -> dict[str, float]:
    """Replay the whole topic with two versions; its rate and RSS."""
    from tripwire.stream import compat
    from tripwire.stream.replay.read import RangeReader
    from tripwire.stream.replay.report import ModelTally, Tally
    from tripwire.stream.replay.run import Progress, Replay, load_versions, replay_range
    from tripwire.stream.worker import freeze_startup_objects

    compat.install_lenient_fetch()
    versions = load_versions(str(registry), ["m@production", "m@candidate"])
    models = [ModelTally(v.ref, v.scorer.name, v.scorer.version, v.scorer.threshold,
                         v.manifest_sha256) for v in versions]  # fmt: skip
    run = Replay(versions, Tally(models), max_message_bytes=1_000_000)
    freeze_startup_objects()  # as `tripwire replay` does (and the worker)
    first: list[float] = []
    score = run.score

    def timed(records: object) -> None:  # the clock starts at the first batch, as the worker's
        if not first:
            first.append(time.perf_counter())
        score(records)  # type: ignore[arg-type]

    run.score = timed  # type: ignore[method-assign]
    reader = RangeReader({"bootstrap_servers": bootstrap}, topic, None, None, None)
    with Sampler(run) as sampler:
        asyncio.run(replay_range(reader, run, 1024, Progress(io.StringIO(), enabled=False)))
        ended = time.perf_counter()
    assert run.events == n, f"the replay compared {run.events} of {n} events"
    quarter = [rss for events, rss in sampler.samples if events >= n / 4]
    peak = max(rss for _, rss in sampler.samples) if sampler.samples else rss_mib()
    return {"events_per_s": n / (ended - first[0]), "rss_quarter_mib": quarter[0] if quarter
            else peak, "rss_peak_mib": peak}  # fmt: skip


def worker_once(bootstrap: str, registry: Path, topic: str, n: int, work: Path, i: int) -> float:
    worker = WorkerProcess(
        work / f"worker-{i}.log", bootstrap=bootstrap, registry=registry, model_ref="m",
        input_topic=topic, alert_topic=f"{topic}.alerts-{i}", dlq_topic=f"{topic}.dlq-{i}",
        group_id=f"g-{i}-{time.monotonic_ns()}", session_timeout=4.0,
    )  # fmt: skip
    try:
        window, _ = throughput(worker, n, timeout=1800)
    finally:
        worker.stop()
    return float(window.vectors_per_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_throughput")
    parser.add_argument("--events", type=int, default=1_000_000, help="binary events")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode (medians)")
    parser.add_argument("--model", default="ae", help="detector of both versions")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from tripwire.stream.worker import single_threaded_inference

    single_threaded_inference()  # as the worker and the command do
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "b.log") as b:
        work = Path(tmp)
        registry = work / "registry"
        train(registry, args.seed, "production", args.model, args.epochs)
        train(registry, args.seed + 1, "candidate", args.model, args.epochs)
        topic = f"replay-bench-{time.monotonic_ns()}"
        asyncio.run(create_topics(b.bootstrap, [topic], 3))
        records = records_for("binary", demo_rows(args.seed), args.events, FRACTION, 100)
        asyncio.run(produce_all(b.bootstrap, topic, records))
        n = len(records)
        del records
        worker_rates: list[float] = []
        replays: list[dict[str, float]] = []
        for i in range(args.rounds):
            for mode in ("worker", "replay") if i % 2 == 0 else ("replay", "worker"):
                if mode == "worker":
                    worker_rates.append(worker_once(b.bootstrap, registry, topic, n, work, i))
                    print(json.dumps({"worker_events_per_s": round(worker_rates[-1])}), flush=True)
                else:
                    replays.append(replay_once(b.bootstrap, registry, topic, n))
                    print(json.dumps({"replay": {k: round(v, 1) for k, v in replays[-1].items()}}),
                          flush=True)  # fmt: skip
    worker = float(np.median(worker_rates))
    rep = float(np.median([r["events_per_s"] for r in replays]))
    quarter = float(np.median([r["rss_quarter_mib"] for r in replays]))
    peak = float(np.median([r["rss_peak_mib"] for r in replays]))
    print(f"\n{n:,} binary events, model {args.model}, {args.rounds} rounds (medians)\n")
    print("| measure | worker, 1 version | replay, 2 versions | replay / worker | target |")
    print("|---|---|---|---|---|")
    print(f"| events/s | {worker:,.0f} | {rep:,.0f} | {rep / worker:.2f} | >= {TARGET_RATIO:.2f} |")
    print(f"| replay RSS, MiB (at 1/4 of the range -> peak) | | {quarter:,.0f} -> {peak:,.0f} | "
          "| flat |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
