"""Decisions of the worker that need no broker: where a batch is processed (on the
event loop while quick, in a thread once slow), the GIL switch interval."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP
from prometheus_client import CollectorRegistry

from tests.fixtures.registry import N_FEATURES, Published, normal_rows
from tests.stream.harness import f32_event
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.stream import worker as worker_module
from tripwire.stream.kafka.consumer import Batch
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.batch import BatchResult
from tripwire.stream.settings import WorkerSettings
from tripwire.stream.wire.records import InputRecord
from tripwire.stream.worker import GIL_SWITCH_INTERVAL, StreamWorker


def batch(n: int) -> Batch:
    X = normal_rows(n, N_FEATURES, seed=1)
    records = []
    for i in range(n):
        out = f32_event(f"e{i}", X[i], "k")
        headers = tuple(out.headers or ())
        records.append(
            ConsumerRecord("in", 0, i, 1_700_000_000, 0, out.key, out.value, None, 1, 200, headers)
        )
    return Batch(records, {TP("in", 0): n - 1}, generation=1)


@pytest.fixture
def worker(registry_factory: Callable[..., Published]) -> Iterator[StreamWorker]:
    pub = registry_factory()
    settings = WorkerSettings(bootstrap="127.0.0.1:9", model_ref="demo", registry=str(pub.root))
    interval = sys.getswitchinterval()
    w = StreamWorker(settings, load_scorer(pub.root, "demo"), Metrics(CollectorRegistry()))
    yield w
    w.close()
    sys.setswitchinterval(interval)  # process-wide: leave the other tests as they were


def test_the_consumer_thread_waits_less_for_the_gil(worker: StreamWorker) -> None:
    assert GIL_SWITCH_INTERVAL < 0.005
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)


async def test_quick_batches_run_on_the_loop_slow_ones_in_the_scoring_thread(
    worker: StreamWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How long a batch took is read from the worker's clock, which the test moves by
    each batch's ``delay``: no sleep, so a loaded machine cannot make a quick batch
    slow (issue 11 §6)."""
    monkeypatch.setattr(worker_module, "INLINE_SECONDS", 0.05)
    threads: list[str] = []
    delay = [0.0]
    now = [0.0]
    process = worker.processor.process

    class Clock:
        """``time`` for the worker module, with a ``perf_counter`` the test moves."""

        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        @staticmethod
        def perf_counter() -> float:
            return now[0]

    monkeypatch.setattr(worker_module, "time", Clock())

    def traced(records: Sequence[InputRecord], scorer: Scorer) -> BatchResult:
        threads.append(threading.current_thread().name)
        result = process(records, scorer)
        now[0] += delay[0]  # the batch took exactly this long
        return result

    monkeypatch.setattr(worker.processor, "process", traced)
    loop_thread = threading.current_thread().name
    _, result = await worker.score(batch(5))
    assert result.scored == 5 and threads == [loop_thread]
    delay[0] = 0.08  # slower than INLINE_SECONDS: the next batch goes to the thread
    await worker.score(batch(5))
    await worker.score(batch(5))
    delay[0] = 0.0
    await worker.score(batch(5))  # still there: the previous one was slow
    await worker.score(batch(5))  # quick again: back on the loop
    assert threads[1] == loop_thread and threads[4] == loop_thread
    assert threads[2].startswith("tripwire-score") and threads[3].startswith("tripwire-score")
    assert np.isfinite(result.scores).all()
