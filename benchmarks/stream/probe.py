"""The broker's own latency: a plain aiokafka reader, in a process of its own.

It reads every partition of a topic from the end (assigned, no group) and records,
for each record, the time it was received minus its record timestamp (the time it
was sent). With the same offered load as the worker's latency runs, this is the
floor the worker cannot beat: producer -> broker -> fetch, without any processing.
Its fetch long-poll is the worker's (``--fetch-max-wait-ms``).

Run as ``python -m benchmarks.stream.probe ...`` (internal); :func:`run_probe`
starts it, lets ``offer`` send, and returns the percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks import child_env
from tripwire.bench.stream_worker import stop
from tripwire.stream.kafka.security import env_security_options


async def probe(
    bootstrap: str, topic: str, n: int, ready: Path, fetch_max_wait_ms: int
) -> list[float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms, **env_security_options(),
    )  # fmt: skip
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        while not partitions:
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.touch()
        latencies: list[float] = []
        while len(latencies) < n:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                now = time.time() * 1000.0
                latencies += [now - r.timestamp for r in batch]
        return latencies
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream.probe")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=10)
    args = parser.parse_args(argv)
    out = Path(args.out)
    latencies = asyncio.run(probe(args.bootstrap, args.topic, args.events,
                                  out.with_suffix(".ready"), args.fetch_max_wait_ms))  # fmt: skip
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(latencies))
    tmp.rename(out)
    return 0


def run_probe(
    bootstrap: str, topic: str, events: int, workdir: Path, send: Callable[[], Any],
    fetch_max_wait_ms: int, timeout: float = 120.0,
) -> list[float]:  # fmt: skip
    """Start the probe on ``topic``, call ``send()`` once it reads, its latencies (ms)."""
    out = workdir / f"probe-{topic}.json"
    ready = out.with_suffix(".ready")
    for path in (out, ready):
        path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.stream.probe", "--bootstrap", bootstrap,
           "--topic", topic, "--events", str(events), "--out", str(out),
           "--fetch-max-wait-ms", str(fetch_max_wait_ms)]  # fmt: skip
    with open(workdir / "probe.log", "ab") as logfile:
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=child_env())
        try:
            _wait_for(ready, proc, timeout)
            send()
            _wait_for(out, proc, timeout)
        finally:
            stop(proc)
    return list(json.loads(out.read_text()))


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None and not path.exists():
            raise RuntimeError(f"latency probe exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"latency probe: no {path.name} within {timeout}s")
        time.sleep(0.05)


if __name__ == "__main__":
    raise SystemExit(main())
