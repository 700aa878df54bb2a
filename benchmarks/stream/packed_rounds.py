"""Packed-only rounds: ceiling A and the worker alternated on one broker.

``python -m benchmarks stream`` measures every row once; the packed ratio sits near
its bound and ceiling A moves with the host, so this repeats just those two rows::

    python -m benchmarks.stream.packed_rounds 5      # ~3 min on 2 cores

It prints each round's vectors/s and ratio, then the medians (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path

from benchmarks.stream.ceilings import raw_aiokafka
from benchmarks.stream.run import Harness, HarnessResult, HarnessSettings
from tripwire.bench.stream import worker_for
from tripwire.bench.stream_worker import throughput
from tripwire.stream.wire.codecs import Codec


def rounds(n: int, out: Path = Path("out/bench/packed-rounds")) -> list[tuple[float, float]]:
    """``n`` rounds of (ceiling A, worker) packed vectors/s."""
    s = HarnessSettings(out=str(out), events=1000, profile=False)
    results: list[tuple[float, float]] = []
    with Harness.started(s, HarnessResult(meta={})) as b:
        b.topics = {"packed": b.topics["packed"]}
        b.prepare()
        codec = Codec(b.scorer.feature_names, 1_000_000)
        tag = b.tag
        for i in range(n):
            a = asyncio.run(
                raw_aiokafka(b.bootstrap, b.topics["packed"], b.n_records("packed"), codec)
            )
            b.tag = f"{tag}r{i}"  # a fresh consumer group per round
            with worker_for(b, "packed") as worker:
                window, _ = throughput(worker, b.counts["packed"], timeout=900)
            results.append((a.vectors_per_s, window.vectors_per_s))
            print(f"round {i}: A {a.vectors_per_s:,.0f}  worker {window.vectors_per_s:,.0f}  "
                  f"ratio {window.vectors_per_s / a.vectors_per_s:.1%}", flush=True)  # fmt: skip
    return results


def main() -> None:
    results = rounds(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    ratios = [w / a for a, w in results]
    print(f"median ratio {statistics.median(ratios):.1%} "
          f"(range {min(ratios):.1%}-{max(ratios):.1%})")  # fmt: skip


if __name__ == "__main__":
    main()
