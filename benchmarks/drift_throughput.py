"""``python -m benchmarks.drift_throughput``: worker events/s with drift monitoring on vs off.

One embedded broker, one topic of packed records (100 vectors of 50 features each)
written once, then ``tripwire worker`` runs alternately with ``--drift`` and
``--no-drift`` (a fresh consumer group each time) over the same records. A run's
rate is the scored vectors over the time from its first to its last scored batch,
read from ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from benchmarks import REPO_ROOT
from tripwire.embedded import EmbeddedBroker, free_port
from tripwire.stream.kafka.topics import create_topics
from tripwire.stream.wire.encodings import Events, encoding
from tripwire.training.pipeline import train
from tripwire.training.settings import TrainSettings

D = 50


async def _fill(bootstrap: str, topic: str, n: int, seed: int) -> None:
    await create_topics(bootstrap, {topic: 3})
    rng = np.random.default_rng(seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=20_000_000)
    await producer.start()
    try:
        for start in range(0, n, 100):
            X = rng.normal(size=(100, D)).astype(np.float32)
            ids = [f"e{start + i}" for i in range(100)]
            [r] = encoding("packed").encode(Events(X, ids=ids, keys=[str(start % 97)] * 100))
            await producer.send(topic, r.value, key=r.key, headers=r.headers)
        await producer.flush()
    finally:
        await producer.stop()


def _scored(port: int) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0.0
    for line in body.decode().splitlines():
        if line.startswith("tripwire_events_scored_total "):
            return float(line.split()[1])
    return 0.0


def run_worker(bootstrap: str, registry: Path, topic: str, n: int, drift: bool, log: Path) -> float:
    """Events/s of one worker over the topic's ``n`` vectors."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    env.update(
        TRIPWIRE_BOOTSTRAP=bootstrap, TRIPWIRE_REGISTRY=str(registry), TRIPWIRE_MODEL_REF="m",
        TRIPWIRE_INPUT_TOPIC=topic, TRIPWIRE_ALERT_TOPIC=f"{topic}.alerts",
        TRIPWIRE_DLQ_TOPIC=f"{topic}.dlq", TRIPWIRE_GROUP_ID=f"g-{time.monotonic_ns()}",
        TRIPWIRE_METRICS_PORT=str(port), TRIPWIRE_METRICS_HOST="127.0.0.1",
        TRIPWIRE_DRIFT=str(drift).lower(), PYTHONPATH=str(REPO_ROOT),
    )  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tripwire", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            first = last = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                scored = _scored(port)
                now = time.monotonic()
                if scored > 0 and first is None:
                    first = (now, scored)
                if scored >= n:
                    last = (now, scored)
                    break
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(60)
    if first is None or last is None:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the worker did not score {n} vectors (saw {_scored(port)}):\n{tail}")
    return (last[1] - first[1]) / (last[0] - first[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drift_throughput")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "b.log") as b:
        rng = np.random.default_rng(0)
        np.savez(Path(tmp) / "train.npz", X=rng.normal(size=(5000, D)).astype(np.float32))
        train(TrainSettings(data=str(Path(tmp) / "train.npz"), registry=str(Path(tmp) / "reg"),
                            model="knn", name="m", plot="none", promote="production"))  # fmt: skip
        topic = f"drift-bench-{time.monotonic_ns()}"
        asyncio.run(_fill(b.bootstrap, topic, args.events, 1))
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                log = Path(tmp) / f"worker-{mode}.log"
                rate = run_worker(b.bootstrap, Path(tmp) / "reg", topic, args.events,
                                  mode == "on", log)  # fmt: skip
                rates[mode].append(rate)
                print(json.dumps({"drift": mode, "events_per_s": round(rate)}), flush=True)
        ratio = float(np.median(rates["on"]) / np.median(rates["off"]))
        print(json.dumps({"median_on_over_off": round(ratio, 3), **rates}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
