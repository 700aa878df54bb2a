"""Shadow scoring: a second model version scores every micro-batch and never alerts.

``tripwire worker --shadow-model NAME@ALIAS`` follows a second alias
(:class:`ShadowWatcher`, hot-reloaded like the serving model). Each micro-batch's
decoded matrix, once production scored it, is scored again by the shadow in one
more model call (:meth:`Shadow.compare`, on a copy of the matrix), and the two
decisions are compared on every event production scored: alerted by production
only, by the shadow only, or by both (``tripwire_shadow_alerts_total``).

What production does never depends on the shadow: the shadow's decisions reach
neither the alert topic nor any production output, a shadow that cannot load,
has other features than production, or raises while scoring is counted
(``tripwire_shadow_failures_total``), logged at most once a minute per cause, and
skipped, and its records (``--shadow-topic``) are produced on the side
(:class:`ShadowSender`): never awaited before an input offset is committed, never
retried, never dead-lettered. Agreement counts model decisions (``score >
threshold``), before the cooldown, on the events both models scored finitely.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer, ScoreResult
from tripwire.core.untrusted import escaped
from tripwire.stream.compat import observe_many
from tripwire.stream.observability.metrics import ShadowMetrics
from tripwire.stream.processing.model_watcher import AliasWatcher, Loader
from tripwire.stream.wire.alerts import ALERT_HEADERS, AlertBuilder, Scored
from tripwire.stream.wire.limits import RECORD_OVERHEAD, output_key
from tripwire.stream.wire.records import OutputRecord

log = logging.getLogger(__name__)

#: The Kafka header that marks a record of the shadow topic (value ``b"1"``).
SHADOW_HEADER = "tripwire-shadow"
#: Headers of every shadow record: an anomaly event's, plus the marker.
SHADOW_HEADERS: list[tuple[str, bytes]] = [*ALERT_HEADERS, (SHADOW_HEADER, b"1")]
#: Seconds between two log lines of the same kind of shadow failure.
LOG_EVERY = 60.0
#: Micro-batches of shadow records awaiting the broker at once; more are dropped.
MAX_SENDS_IN_FLIGHT = 32

#: ``produce(records)`` queues records with the producer: the worker's ``BatchProducer``
#: (its ``Queued`` results: ``records``, ``ack``, ``error``).
Produce = Callable[[Sequence[OutputRecord]], Awaitable[Sequence[Any]]]
#: ``describe(row, score, anomaly)``: the ``Scored`` of a row of the batch's matrix.
Describe = Callable[[int, float, bool], Scored]


def shadow_source(source: str) -> str:
    """The CloudEvents ``source`` of shadow records: production's, plus ``/shadow``.

    >>> shadow_source("tripwire://g/features")
    'tripwire://g/features/shadow'
    """
    return f"{source}/shadow"


class Throttled:
    """Log a recurring problem at most once per ``every`` seconds per kind, with a count."""

    def __init__(
        self, every: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, kind: str, message: str, *args: object) -> None:
        now = self._clock()
        last, quiet = self._last.get(kind, (-float("inf"), 0))
        if now - last < self.every:
            self._last[kind] = (last, quiet + 1)
            return
        self._last[kind] = (now, 0)
        more = f" ({quiet} more since the last such line)" if quiet else ""
        log.warning(message + "%s", *args, more)


class ShadowWatcher(AliasWatcher):
    """Follows the shadow's alias; a version must have production's features.

    Starts with no version: call :meth:`check` to load the first one (a failure is
    counted and logged like any later one; the worker starts regardless).
    """

    def __init__(
        self,
        registry: str,
        name: str,
        alias: str,
        metrics: ShadowMetrics,
        production: Callable[[], Scorer],
        *,
        retry_after: float = 60.0,
        loader: Loader = load_scorer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            registry, name, alias, None, retry_after=retry_after, loader=loader, clock=clock
        )
        self.metrics = metrics
        self._production = production

    @property
    def current(self) -> Scorer | None:
        """The shadow version to score the next micro-batch with (``None``: none)."""
        return self._current

    def _reference(self) -> tuple[str, ...] | None:
        return self._production().feature_names

    def _failed(self, problem: str, incompatible: bool) -> None:
        reason = "incompatible" if incompatible else "load"
        self.metrics.failures.labels(reason=reason).inc()
        now = "no shadow scoring" if self._current is None else (
            f"the shadow stays version {self._current.version}"
        )  # fmt: skip
        log.error(
            "shadow model refused: %s@%s %s; %s (production unaffected)",
            self.name, self.alias, escaped(problem, 1000), now,
        )  # fmt: skip

    def _swapped(self, scorer: Scorer, old: Scorer | None) -> None:
        if old is not None:
            self.metrics.reloads.inc()
        self.metrics.set_model(scorer.name, scorer.version, scorer.threshold)
        log.info(
            "shadow model: %s@%s is version %s (was %s), threshold %.6g",
            self.name, self.alias, scorer.version, old.version if old else "none",
            scorer.threshold,
        )  # fmt: skip


@dataclass
class ShadowBatch:
    """What the shadow made of one micro-batch, for the metrics and the shadow topic.

    Attributes
    ----------
    pair : tuple of str
        ``(production NAME@VERSION, shadow NAME@VERSION)`` of this batch.
    events : int
        Events production scored that the shadow scored finitely (the compared ones).
    production_only, shadow_only, both : int
        Of those, the ones only production, only the shadow, or both alerted on.
    ratios : dict of str to ndarray
        Score / threshold of each model (``"production"``, ``"shadow"``) per compared event.
    """

    pair: tuple[str, str]
    events: int = 0
    production_only: int = 0
    shadow_only: int = 0
    both: int = 0
    ratios: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    inference_seconds: float | None = None
    outputs: list[OutputRecord] = field(default_factory=list)


class Shadow:
    """Scores micro-batches with the shadow version and compares its decisions.

    Parameters
    ----------
    watcher : ShadowWatcher
    metrics : ShadowMetrics
    builder : AlertBuilder
        Builds the shadow's records (its ``source``: :func:`shadow_source`).
    topic : str or None
        The shadow topic (``None``: no records).
    top_k, max_output_bytes : int
        As for production's alerts.
    """

    def __init__(
        self,
        watcher: ShadowWatcher,
        metrics: ShadowMetrics,
        builder: AlertBuilder,
        topic: str | None,
        *,
        top_k: int,
        max_output_bytes: int,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.watcher = watcher
        self.metrics = metrics
        self.builder = builder
        self.topic = topic
        self.top_k = top_k
        self.max_output_bytes = max_output_bytes
        self.monotonic = monotonic
        self.warn = Throttled()
        self._pair: tuple[str, str] | None = None
        self._tally = np.zeros(3, dtype=np.int64)  # events, production alerts, shadow alerts

    def compare(
        self,
        production: Scorer,
        X: np.ndarray,
        scored: ScoreResult,
        compared: np.ndarray,
        describe: Describe,
        detected_at: float,
    ) -> ShadowBatch | None:
        """Score ``X`` (n, d) with the shadow; compare on the rows ``compared`` (n,) marks.

        ``scored`` is production's result on ``X``. Never raises; ``None`` when no
        shadow version is loaded.
        """
        shadow = self.watcher.current
        if shadow is None:
            return None
        batch = ShadowBatch((_key(production), _key(shadow)))
        try:
            self._compare(batch, production, shadow, X, scored, compared, describe, detected_at)
        except Exception as e:  # the shadow's problem, never production's
            batch = ShadowBatch(batch.pair, failures={"scoring": 1})
            self.warn("scoring", "shadow %s failed on a batch: %s", batch.pair[1], escaped(e))
        return batch

    def _compare(
        self,
        batch: ShadowBatch,
        production: Scorer,
        shadow: Scorer,
        X: np.ndarray,
        scored: ScoreResult,
        compared: np.ndarray,
        describe: Describe,
        detected_at: float,
    ) -> None:
        if shadow.feature_names != production.feature_names:
            raise ValueError("its features are not production's")
        started = self.monotonic()
        result = shadow.score(X.copy())  # a copy: a detector that writes its input stays apart
        batch.inference_seconds = self.monotonic() - started
        scores = np.asarray(result.scores, dtype=np.float64)
        flags = np.asarray(result.is_anomaly, dtype=bool)
        if scores.shape != (len(X),) or flags.shape != (len(X),):
            raise ValueError(f"{scores.shape} scores for {len(X)} rows")
        finite = np.isfinite(scores)
        rows = compared & finite
        if (lost := int((compared & ~finite).sum())) > 0:
            batch.failures["non_finite"] = lost
            self.warn("non_finite", "shadow %s: %d non-finite scores", batch.pair[1], lost)
        p, s = scored.is_anomaly[rows], flags[rows]
        batch.events = int(rows.sum())
        batch.both = int((p & s).sum())
        batch.production_only = int(p.sum()) - batch.both
        batch.shadow_only = int(s.sum()) - batch.both
        both = (("production", production, scored.scores), ("shadow", shadow, scores))
        for name, model, values in both:
            if model.threshold > 0:
                batch.ratios[name] = values[rows] / model.threshold
        if self.topic is not None:
            alerting = np.flatnonzero(rows & flags)
            self._records(batch, shadow, X, result, alerting, describe, detected_at)

    def _records(
        self,
        batch: ShadowBatch,
        shadow: Scorer,
        X: np.ndarray,
        result: ScoreResult,
        rows: np.ndarray,
        describe: Describe,
        detected_at: float,
    ) -> None:
        """The shadow's anomaly events of ``rows``, each within the output limit."""
        assert self.topic is not None
        if not rows.size:
            return
        contrib = None if result.contributions is None else result.contributions[rows]
        tops = shadow.top_features_rows(X[rows], contrib, self.top_k)
        model = (shadow.name, shadow.version)
        failed = 0
        for i, top in zip(rows.tolist(), tops, strict=True):
            try:
                s = describe(i, float(result.scores[i]), True)
                value = self.builder.anomaly_event(
                    s, detected_at=detected_at, threshold=shadow.threshold, model=model,
                    top_features=top,
                )  # fmt: skip
                record = OutputRecord(self.topic, output_key(s.entity), value, SHADOW_HEADERS)
            except Exception as e:  # this row's shadow record only
                failed += 1
                self.warn("output", "a shadow record could not be built: %s", escaped(e))
                continue
            if _size(record) > self.max_output_bytes:
                failed += 1
                self.warn("output", "a %d-byte shadow record exceeds --max-output-bytes, dropped",
                          _size(record))  # fmt: skip
                continue
            batch.outputs.append(record)
        if failed:
            batch.failures["output"] = failed

    def record(self, batch: ShadowBatch | None) -> None:
        """Add one delivered batch's shadow figures to the metrics (on the event loop)."""
        if batch is None:
            return
        m = self.metrics
        for reason, n in batch.failures.items():
            m.failures.labels(reason=reason).inc(n)
        if batch.inference_seconds is not None:
            m.inference_seconds.observe(batch.inference_seconds)
        m.events_scored.inc(batch.events)
        for agreement in ("production_only", "shadow_only", "both"):
            m.alerts.labels(agreement=agreement).inc(getattr(batch, agreement))
        for name, ratios in batch.ratios.items():
            observe_many(m.score_ratio.labels(model=name), ratios)
        if batch.pair != self._pair:  # the rates are of one pair of versions
            self._pair, self._tally[:] = batch.pair, 0
        self._tally += (batch.events, batch.production_only + batch.both,
                        batch.shadow_only + batch.both)  # fmt: skip
        events = int(self._tally[0])
        if events:
            m.alert_rate.labels(model="production").set(self._tally[1] / events)
            m.alert_rate.labels(model="shadow").set(self._tally[2] / events)


class ShadowSender:
    """Produces shadow records on the side: never awaited by production, never retried.

    At most ``max_in_flight`` batches of records await the broker; the records of
    further batches are dropped. Lost records count ``failures{reason="produce"}``.
    """

    def __init__(
        self, produce: Produce, metrics: ShadowMetrics, max_in_flight: int = MAX_SENDS_IN_FLIGHT
    ) -> None:
        self._produce = produce
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.warn = Throttled()
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, records: Sequence[OutputRecord]) -> None:
        """Start producing ``records`` (call on the event loop)."""
        if not records:
            return
        if len(self._tasks) >= self.max_in_flight:
            self._lost(len(records), "the broker is behind, dropped")
            return
        task = asyncio.get_running_loop().create_task(self._send(list(records)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, records: list[OutputRecord]) -> None:
        try:
            queued = await self._produce(records)
        except Exception as e:
            self._lost(len(records), f"not produced: {e}")
            return
        acks = [q.ack for q in queued if q.ack is not None]
        outcomes: list[Any] = list(await asyncio.gather(*acks, return_exceptions=True))
        outcomes.reverse()
        for q in queued:
            outcome = q.error if q.ack is None else outcomes.pop()
            if outcome is None or not isinstance(outcome, BaseException):
                self.metrics.records.inc(len(q.records))
            else:
                self._lost(len(q.records), f"not acknowledged: {outcome}")

    def _lost(self, n: int, why: str) -> None:
        self.metrics.failures.labels(reason="produce").inc(n)
        self.warn("produce", "%d shadow records lost (%s)", n, escaped(why))


def _key(scorer: Scorer) -> str:
    return f"{scorer.name}@{scorer.version}"


def _size(record: OutputRecord) -> int:
    """Bytes of ``record`` on the wire, with room to spare (as the broker counts them)."""
    headers = sum(len(k) + len(v) for k, v in record.headers or ())
    return len(record.key or b"") + len(record.value) + headers + RECORD_OVERHEAD
