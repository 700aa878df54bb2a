"""Packed-only rounds: ceiling A and the worker alternated on one broker.

``tripwire bench stream`` measures every row once; the packed ratio sits near its
bound and ceiling A moves with the host, so this repeats just those two rows::

    python -m tripwire.bench.packed_rounds 5      # ~3 min on 2 cores

It prints each round's vectors/s and ratio, then the medians (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from tripwire.bench import stream as bench
from tripwire.bench.stream_ceilings import raw_aiokafka
from tripwire.bench.stream_worker import throughput
from tripwire.stream.wire.codecs import Codec


def rounds(n: int, out: Path = Path("out/bench/packed-rounds")) -> list[tuple[float, float]]:
    """``n`` rounds of (ceiling A, worker) packed vectors/s."""
    s = bench.StreamBenchSettings(out=str(out), events=1000, profile=False)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    results: list[tuple[float, float]] = []
    with ExitStack() as stack:
        bootstrap = bench._start_broker(stack, out / "logs" / "tansu.log")
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-rounds-")))
        b = bench._Bench(s, bootstrap, work, out / "logs", bench.StreamResult(meta={}))
        b.topics = {"packed": b.topics["packed"]}
        b.prepare()
        codec = Codec(b.scorer.feature_names, 1_000_000)
        tag = b.tag
        for i in range(n):
            a = asyncio.run(
                raw_aiokafka(bootstrap, b.topics["packed"], b.n_records("packed"), codec)
            )
            b.tag = f"{tag}r{i}"  # a fresh consumer group per round
            with bench._worker(b, "packed") as worker:
                window, _ = throughput(worker, b.counts["packed"], timeout=900, profile_to=None)
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
