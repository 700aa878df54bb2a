"""One micro-batch, from input records to output records: decode, score, build.

``BatchProcessor.process`` is synchronous and free of I/O: the worker runs it on the
event loop while batches are quick, in a thread once they are slow (see
``tripwire.stream.worker.StreamWorker.score``), then produces ``BatchResult.outputs`` and
acknowledges the input. Every vector of the batch goes through **one**
``Scorer.score`` call; a record that cannot be decoded becomes a dead letter and
takes nothing else with it, and so does a record on which any later step raises
(reason ``processing_error``; the model call is isolated by halves:
:mod:`tripwire.stream.processing.isolation`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tripwire.core.scorer import Scorer, ScoreResult, TopFeature
from tripwire.core.untrusted import escaped
from tripwire.stream.compat import observe_many
from tripwire.stream.observability.metrics import Metrics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.processing.isolation import score_isolating
from tripwire.stream.processing.refusals import DeadLetters, RefusedVector
from tripwire.stream.processing.shadow import Describe, Shadow, ShadowBatch
from tripwire.stream.wire.alerts import ALERT_HEADERS, AlertBuilder, Scored
from tripwire.stream.wire.codecs import Codec, InvalidEvent
from tripwire.stream.wire.dead_letters import DeadLetterReason, dead_letter
from tripwire.stream.wire.errors import PROCESSING_ERROR, describe
from tripwire.stream.wire.limits import DEFAULT_MAX_OUTPUT_BYTES, output_key
from tripwire.stream.wire.records import Decoded, InputRecord, OutputRecord, Rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    """Where outputs go; ``scores`` is ``None`` when the scores topic is off."""

    alerts: str
    dlq: str
    scores: str | None = None


@dataclass
class BatchResult:
    """What one micro-batch produced, and the figures for the metrics.

    Attributes
    ----------
    consumed : int
        Feature vectors seen (a record that cannot be decoded counts as one).
    scores : ndarray of shape (scored,)
        Scores of the scored vectors.
    features : ndarray of shape (scored, d)
        The scored vectors themselves (for the drift monitor).
    event_ms : ndarray of shape (scored,)
        Their event times (epoch ms; NaN when unknown), for the latency histogram.
    """

    outputs: list[OutputRecord] = field(default_factory=list)
    consumed: int = 0
    scored: int = 0
    anomalies: int = 0
    suppressed: int = 0
    invalid: Counter[DeadLetterReason] = field(default_factory=Counter)
    scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    features: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))
    event_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    inference_seconds: float | None = None
    inference_cpu_seconds: float = 0.0
    #: The shadow's comparison (``None``: no shadow loaded).
    shadow: ShadowBatch | None = None
    #: Which vectors were scored, aligned with ``scores`` (``None`` unless ``keep_rows``).
    rows: Rows | None = None


class BatchProcessor:
    """Turns micro-batches of input records into output records.

    Parameters
    ----------
    topics : Topics
    builder : AlertBuilder
    cooldown : Cooldown
    top_k : int
        Features named in each alert.
    max_message_bytes : int
        Size limit of input values (larger ones are dead-lettered, truncated).
    max_output_bytes : int
        Size limit of a produced record (dead letters are cut to fit).
    clock, monotonic, thread_clock : callables
        Wall clock (detection time), monotonic clock (cooldown, timing) and the
        calling thread's CPU clock (inference CPU time).
    shadow : Shadow, optional
        Scores each batch's matrix again with the shadow version (its figures go to
        ``BatchResult.shadow``, never into ``outputs``).
    keep_rows : bool
        Fill ``BatchResult.rows`` (ids, entities, positions of the scored vectors),
        for ``tripwire replay``; the worker leaves it off.
    """

    def __init__(
        self,
        topics: Topics,
        builder: AlertBuilder,
        cooldown: Cooldown,
        *,
        top_k: int,
        max_message_bytes: int,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.perf_counter,
        thread_clock: Callable[[], float] = time.thread_time,
        shadow: Shadow | None = None,
        keep_rows: bool = False,
    ) -> None:
        self.topics = topics
        self.builder = builder
        self.cooldown = cooldown
        self.top_k = top_k
        self.max_message_bytes = max_message_bytes
        self.max_output_bytes = max_output_bytes
        self.clock = clock
        self.monotonic = monotonic
        self.thread_clock = thread_clock
        self.shadow = shadow
        self.keep_rows = keep_rows
        self._codec: tuple[tuple[str, ...], Codec] | None = None

    def codec(self, scorer: Scorer) -> Codec:
        """The decoder for ``scorer``'s feature schema (kept while the schema holds)."""
        if self._codec is None or self._codec[0] != scorer.feature_names:
            codec = Codec(scorer.feature_names, self.max_message_bytes)
            self._codec = (scorer.feature_names, codec)
        return self._codec[1]

    def decode(
        self, records: Sequence[InputRecord], scorer: Scorer
    ) -> list[Decoded | InvalidEvent]:
        """What :meth:`process` decodes ``records`` into for ``scorer``'s features."""
        return _decode_all(self.codec(scorer), records)

    def process(
        self,
        records: Sequence[InputRecord],
        scorer: Scorer,
        decoded: Sequence[Decoded | InvalidEvent] | None = None,
    ) -> BatchResult:
        """Decode, score and build the outputs of one micro-batch.

        ``decoded``: :meth:`decode` of ``records`` for these features, done already
        (``tripwire replay`` decodes once for the versions that share a feature schema;
        processing never changes it).
        """
        result = BatchResult()
        if decoded is None:
            decoded = self.decode(records, scorer)
        good: list[tuple[InputRecord, Decoded]] = []
        dead = DeadLetters()
        for record, one in zip(records, decoded, strict=True):
            if isinstance(one, InvalidEvent):
                dead.record(record, one)
                continue
            result.consumed += len(one) + len(one.rejected)
            for i, reason, detail in one.rejected:
                dead.vector(record, i, reason, "InvalidEvent", detail)
            if len(one):
                good.append((record, one))
        if good:
            self._score(result, good, scorer, dead)
        for record, error, vectors in dead.in_order(records):
            if error is not None:
                self._dead_letter(result, record, error.reason, error.error, error.detail, count=1)
            else:
                self._refuse_vectors(result, record, vectors)
        if result.invalid[PROCESSING_ERROR]:
            first = next(o for o in result.outputs if o.headers and _reason(o) == PROCESSING_ERROR)
            raw = dict(first.headers or ()).get("tripwire-detail", b"")
            log.warning(
                "%d vectors dead-lettered as %s (processing them raised), first: %s",
                result.invalid[PROCESSING_ERROR], PROCESSING_ERROR,
                escaped(raw.decode("utf-8", "replace")),
            )  # fmt: skip
        return result

    def _dead_letter(
        self,
        result: BatchResult,
        record: InputRecord,
        reason: DeadLetterReason,
        error: str,
        detail: str,
        *,
        count: int,
        indices: Sequence[int] = (),
        decoded: bool = False,
    ) -> None:
        """Dead-letter ``record``; ``decoded``: its vectors were already counted."""
        result.invalid[reason] += count
        if not decoded:
            result.consumed += count
        result.outputs.append(
            dead_letter(
                record,
                self.topics.dlq,
                reason=reason,
                error=error,
                detail=detail,
                max_value_bytes=self.max_message_bytes,
                indices=indices,
                max_output_bytes=self.max_output_bytes,
            )  # fmt: skip
        )

    def _refuse_vectors(
        self, result: BatchResult, record: InputRecord, vectors: list[RefusedVector]
    ) -> None:
        """One dead letter for the refused vectors of a record (counted already)."""
        vectors.sort(key=lambda v: -1 if v.index is None else v.index)
        indices = [v.index for v in vectors if v.index is not None]
        first = vectors[0]
        self._dead_letter(
            result, record, first.reason, first.error, "; ".join(v.detail for v in vectors),
            count=len(vectors), indices=indices, decoded=True,
        )  # fmt: skip

    def _score(
        self,
        result: BatchResult,
        good: list[tuple[InputRecord, Decoded]],
        scorer: Scorer,
        dead: DeadLetters,
    ) -> None:
        started, cpu = self.monotonic(), self.thread_clock()
        isolated = score_isolating(scorer, [d.X for _, d in good])
        result.inference_seconds = self.monotonic() - started
        result.inference_cpu_seconds = self.thread_clock() - cpu
        for k, error in isolated.failed:
            record, decoded = good[k]
            for j in range(len(decoded)):
                _refuse(dead, record, decoded, j, error, "scoring")
        if isolated.failed:
            good = [good[k] for k in isolated.kept]
            if not good:
                return
        X = np.concatenate([d.X for _, d in good])  # a fresh, writable array
        scored = isolated.scored
        detected_at = self.clock()
        scores = scored.scores
        finite = np.isfinite(scores)
        # None (unknown event time) becomes NaN
        event_ms = np.array([e for _, d in good for e in d.event_ms], dtype=np.float64)
        # Per-vector work only where there is an output: an alert, a score record, a
        # dead letter. At 1% anomalies and no scores topic that is 1 vector in 100.
        wanted = np.ones_like(finite) if self.topics.scores else scored.is_anomaly | ~finite
        rows = np.flatnonzero(wanted)
        emitted = finite.copy()  # scored and every output built
        if rows.size:
            starts = np.cumsum([0] + [len(d) for _, d in good])
            owners = np.searchsorted(starts, rows, side="right") - 1
            tops = self._top_features(scorer, X, scored, finite)
            for i, k in zip(rows.tolist(), owners.tolist(), strict=True):
                record, decoded = good[k]
                j = i - int(starts[k])
                if not finite[i]:
                    _unscorable(dead, record, decoded, j, float(scores[i]))
                    continue
                try:
                    s = _scored(record, decoded, j, float(scores[i]), bool(scored.is_anomaly[i]))
                    self._emit(result, s, scorer, detected_at, tops.get(i))
                except Exception as e:  # this vector's id, key or time: refuse it alone
                    emitted[i] = False
                    _refuse(dead, record, decoded, j, e, "building its outputs")
        if self.shadow is not None:  # on the events production scored; never raises
            describe = _describer(good)
            result.shadow = self.shadow.compare(scorer, X, scored, emitted, describe, detected_at)
        result.scores = scores[emitted]
        result.features = X if emitted.all() else X[emitted]
        result.event_ms = event_ms[emitted]
        result.scored = int(emitted.sum())
        if self.keep_rows:
            result.rows = Rows.of(good, emitted)

    def _emit(
        self,
        result: BatchResult,
        s: Scored,
        scorer: Scorer,
        detected_at: float,
        top: list[TopFeature] | Exception | None,
    ) -> None:
        """Build every output of ``s``, then add them (all or none: any step may raise)."""
        model = (scorer.name, scorer.version)
        key = output_key(s.entity)
        outputs: list[OutputRecord] = []
        if s.anomaly:
            if isinstance(top, Exception):
                raise top
            alert = self.builder.anomaly_event(
                s, detected_at=detected_at, threshold=scorer.threshold, model=model,
                top_features=top or [],
            )  # fmt: skip
            outputs.append(
                OutputRecord(self.topics.alerts, key, alert, ALERT_HEADERS, s.record, s.index)
            )
        if self.topics.scores is not None:
            value = self.builder.score_record(s, threshold=scorer.threshold, model=model)
            outputs.append(OutputRecord(self.topics.scores, key, value, None, s.record, s.index))
        if s.anomaly and not self.cooldown.allow(s.entity, self.monotonic()):
            result.suppressed += 1
            outputs.pop(0)
        elif s.anomaly:
            result.anomalies += 1
        result.outputs.extend(outputs)

    def _top_features(
        self, scorer: Scorer, X: np.ndarray, scored: ScoreResult, finite: np.ndarray
    ) -> dict[int, list[TopFeature] | Exception]:
        """The top features of every anomalous row, by row, in one vectorised pass
        (row by row if that pass fails: a row whose own pass fails gets its error)."""
        rows = np.flatnonzero(scored.is_anomaly & finite)
        contrib = None if scored.contributions is None else scored.contributions[rows]
        try:
            tops = scorer.top_features_rows(X[rows], contrib, self.top_k)
            return dict(zip(rows.tolist(), tops, strict=True))
        except Exception:  # find the rows that explain it
            by_row: dict[int, list[TopFeature] | Exception] = {}
            for n, i in enumerate(rows.tolist()):
                one = None if contrib is None else contrib[n : n + 1]
                try:
                    by_row[i] = scorer.top_features_rows(X[i : i + 1], one, self.top_k)[0]
                except Exception as e:
                    by_row[i] = e
            return by_row


def _reason(output: OutputRecord) -> str:
    return dict(output.headers or ()).get("tripwire-reason", b"").decode("utf-8", "replace")


def _decode_all(codec: Codec, records: Sequence[InputRecord]) -> list[Decoded | InvalidEvent]:
    """``codec.decode_batch(records)``; record by record if the batch call raises."""
    try:
        return codec.decode_batch(records)
    except Exception:  # decode_batch refuses what it knows; this is what it does not
        return [codec.decode_or_error(r) for r in records]


def _refuse(
    dead: DeadLetters, record: InputRecord, decoded: Decoded, j: int, error: Exception, step: str
) -> None:
    """Vector ``j`` of ``record`` made ``step`` raise: dead-letter it, the rest goes on."""
    index = None if decoded.index is None else decoded.index[j]
    detail = describe(error, f"{step}, vector {escaped(decoded.ids[j], 100)}")
    dead.vector(record, index, PROCESSING_ERROR, type(error).__name__, detail)


def _unscorable(
    dead: DeadLetters, record: InputRecord, decoded: Decoded, j: int, score: float
) -> None:
    """A finite input the model gave a NaN/inf score: dead-letter it, loudly."""
    log.warning("model returned score %r for input %s", score, escaped(decoded.ids[j]))
    index = None if decoded.index is None else decoded.index[j]
    detail = f"the model returned a non-finite score ({score!r}) for {decoded.ids[j]}"
    dead.vector(record, index, DeadLetterReason.NON_FINITE, "ScoreError", detail)


def _scored(record: InputRecord, decoded: Decoded, j: int, score: float, anomaly: bool) -> Scored:
    return Scored(
        input_id=decoded.ids[j],
        entity=decoded.keys[j],
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        index=None if decoded.index is None else decoded.index[j],
        event_ms=decoded.event_ms[j],
        score=score,
        anomaly=anomaly,
        record=record,
    )


def _describer(good: list[tuple[InputRecord, Decoded]]) -> Describe:
    """The ``Scored`` of a row of the batch's matrix (for the shadow's records)."""
    starts = np.cumsum([0] + [len(d) for _, d in good])

    def describe(i: int, score: float, anomaly: bool) -> Scored:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        record, decoded = good[k]
        return _scored(record, decoded, i - int(starts[k]), score, anomaly)

    return describe


def record_batch(metrics: Metrics, result: BatchResult, threshold: float) -> None:
    """Add one delivered micro-batch to the metrics."""
    metrics.events_consumed.inc(result.consumed)
    for reason, n in result.invalid.items():
        metrics.invalid.labels(reason=reason).inc(n)
    if result.scored:
        metrics.events_scored.inc(result.scored)
        metrics.batch_size.observe(result.scored)
        if threshold > 0:
            observe_many(metrics.score_ratio, result.scores / threshold)
    if result.inference_seconds is not None:
        metrics.inference_seconds.observe(result.inference_seconds)
        metrics.inference_cpu_seconds.inc(result.inference_cpu_seconds)
    metrics.anomalies.inc(result.anomalies)
    metrics.suppressed.inc(result.suppressed)
    now = time.time()
    if result.event_ms.size:
        # An event time ahead of our clock (skew) counts as zero latency.
        observe_many(metrics.latency_seconds, np.maximum(now - result.event_ms / 1000.0, 0.0))
    metrics.last_processed.set(now)
