"""Every detector measured where it runs: the worker on binary events, and in-process.

For each spec of ``--detectors``, one after another on the run's broker:

1. it is trained on the tutorial's data (``tripwire train --demo --model SPEC``) into
   the run's registry, as model ``bench-<i>`` (a spec the run trained already, such as
   the ``ae`` of the encodings' runs, is reused: same data, same seed);
2. its in-process rate: ``Scorer.score`` on batches of the worker's ``--max-batch``
   with one torch thread, as the worker scores
   (:func:`tripwire.bench.speed.scoring_rate`, median of repeats);
3. a ``tripwire worker`` serving it reads a binary backlog of its own, then gets
   ``detector_rate`` binary events/s for ``rate_seconds``
   (:func:`tripwire.bench.stream_serve.backlog_then_rate`); the backlog is sized to
   take about ``detector_seconds`` at the in-process rate (at most ``--events``, at
   least :data:`MIN_EVENTS`), so a slow detector's run stays short and a fast
   one's is long enough to time.

A detector that fails (it cannot be trained, its worker dies) is recorded with its
error and the others go on.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from tripwire.bench.quality import torch_threads
from tripwire.bench.speed import scoring_rate
from tripwire.bench.stream_data import train_model, vectors
from tripwire.bench.stream_serve import backlog_then_rate
from tripwire.core.registry import load_scorer

if TYPE_CHECKING:
    from tripwire.bench.stream import WorkerBench

log = logging.getLogger(__name__)

#: The fewest events of a detector's backlog (enough batches to time).
MIN_EVENTS = 2_000
#: Vectors the in-process rate draws its batches from.
INPROCESS_ROWS = 16 * 256


def run_detectors(bench: WorkerBench) -> None:
    """Measure every detector of ``bench.s.detectors`` into ``bench.result.detectors``."""
    for i, spec in enumerate(bench.s.detectors):
        started = time.perf_counter()
        try:
            row = measure(bench, spec, f"bench-{i}")
        except Exception as e:  # one detector failing must not stop the others
            log.warning("detector %s failed: %s", spec, e, exc_info=True)
            row = {"detector": spec, "error": f"{type(e).__name__}: {e}"[:500]}
        row["wall_seconds"] = time.perf_counter() - started
        bench.result.detectors.append(row)


def measure(bench: WorkerBench, spec: str, name: str) -> dict[str, Any]:
    """Train ``spec`` as ``name``, then its in-process and worker figures (module doc)."""
    s = bench.s
    ref, train_seconds = _model(bench, spec, name)
    scorer = load_scorer(bench.work / "registry", ref)
    X = vectors(bench.rows, 0, INPROCESS_ROWS, s.anomaly_fraction)
    wall, cpu = time.perf_counter(), time.process_time()
    with torch_threads(1):  # as the worker (stream.worker.single_threaded_inference)
        rate = scoring_rate(scorer.score, X, s.max_batch, min_seconds=0.2)
    # A share well below 100% means the host starved this process (noisy neighbours).
    cpu_percent = 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
    log.info("%s in-process: %.0f vectors/s at batch %d", spec, rate.vectors_per_s, s.max_batch)
    n = int(min(s.events, max(MIN_EVENTS, rate.vectors_per_s * s.detector_seconds)))
    row: dict[str, Any] = {
        "detector": spec, "model": ref, "train_seconds": train_seconds, "events": n,
        "inprocess": {"vectors_per_s": rate.vectors_per_s, "batch": rate.batch,
                      "repeats": list(rate.repeats), "torch_threads": 1,
                      "cpu_percent": cpu_percent},
    }  # fmt: skip
    tag = f"det-{name}-{_safe(spec)}-{bench.tag}"
    served = backlog_then_rate(bench, ref.split("@")[0], n, tag, s.detector_rate)
    log.info("%s worker: %.0f events/s", spec, served.worker["vectors_per_s"])
    return {**row, "worker": served.worker, "latency": served.latency}


def _model(bench: WorkerBench, spec: str, name: str) -> tuple[str, float | None]:
    """``spec``'s model ref and training seconds (``None``: the run had trained it already)."""
    ref = bench.trained.get(spec)
    if ref is not None:
        return ref, None
    started = time.perf_counter()
    ref = train_model(bench.work / "registry", bench.s.seed, model=spec, name=name)
    bench.trained[spec] = ref
    return ref, time.perf_counter() - started


def _safe(spec: str) -> str:
    """``spec`` as a topic/file name part (``pyod:IForest`` -> ``pyod-IForest``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", spec)
