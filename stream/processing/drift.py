"""Drift monitoring in the worker: the serving version's monitor, fed per micro-batch.

:class:`DriftWatch` is called once per delivered micro-batch, in delivery order, on
the event loop: it appends the batch to the :class:`~tripwire.core.drift.DriftMonitor`
of the version that scored it (a ring-buffer copy and the batch's bin indices) and,
every ``drift_step`` events, evaluates the window and sets the drift metrics. Batches
are held until the monitor's next report is due (:attr:`DriftMonitor.due_in`) and
added in one call: the reports are those of batch-by-batch updates, at the same
events, for a fraction of the per-call cost. When
the serving version changes, its reference is loaded and verified in a thread of
its own; events scored meanwhile are not monitored, and the new window starts
empty. A version without a reference (published before them) or with a reference
that fails to load leaves monitoring off (``tripwire_drift_monitoring`` 0) with
one log line saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from tripwire.core.drift import DriftConfig, DriftMonitor, DriftReference, DriftReport
from tripwire.core.drift.artifact import load_reference
from tripwire.core.scorer import Scorer
from tripwire.core.untrusted import escaped
from tripwire.stream.observability.metrics import DriftMetrics
from tripwire.stream.settings import WorkerSettings

log = logging.getLogger(__name__)

#: ``load_reference``'s signature: ``(registry, ref) -> (reference or None, label, names)``.
Loader = Callable[[str, str], tuple[DriftReference | None, str, tuple[str, ...]]]


class DriftWatch:
    """Runs the serving version's drift monitor and exports its figures.

    Parameters
    ----------
    registry : str
        Registry directory.
    config : DriftConfig
    metrics : DriftMetrics
    """

    def __init__(
        self,
        registry: str,
        config: DriftConfig,
        metrics: DriftMetrics,
        loader: Loader = load_reference,
    ) -> None:
        config.validate()
        self.registry, self.config, self.metrics = registry, config, metrics
        self._loader = loader
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tripwire-drift")
        self._key: tuple[str, str] | None = None
        self._loading: Future[DriftMonitor | None] | None = None
        self.monitor: DriftMonitor | None = None
        self._last_alarm: tuple[object, ...] = ()
        #: Delivered batches not yet in the monitor (fewer than its ``due_in`` events).
        self._held: list[tuple[np.ndarray, np.ndarray]] = []
        self._held_events = 0
        metrics.monitoring.set(0)

    def observe(self, scorer: Scorer, features: np.ndarray, scores: np.ndarray) -> None:
        """Add one delivered micro-batch, scored by ``scorer``; never raises."""
        try:
            self._observe(scorer, features, scores)
        except Exception as e:  # monitoring must never stop the stream
            log.error("drift monitoring failed, turned off: %s", escaped(e), exc_info=e)
            self.monitor, self._key = None, (scorer.name, scorer.version)
            self._held, self._held_events = [], 0
            self.metrics.monitoring.set(0)

    def start(self, scorer: Scorer) -> None:
        """Begin loading the reference of ``scorer``'s version (the worker calls it at start)."""
        self._key, self.monitor = (scorer.name, scorer.version), None
        self._held, self._held_events = [], 0  # the previous version's rows are dropped
        self.metrics.monitoring.set(0)
        loading = self._pool.submit(self._load, f"{scorer.name}@{scorer.version}")
        self._loading = loading

        def loaded(done: Future[DriftMonitor | None]) -> None:
            if done is self._loading and not done.cancelled() and done.result() is not None:
                self.metrics.monitoring.set(1)  # visible before the next batch arrives

        loading.add_done_callback(loaded)

    def _observe(self, scorer: Scorer, features: np.ndarray, scores: np.ndarray) -> None:
        key = (scorer.name, scorer.version)
        if key != self._key:
            self.start(scorer)
        if self._loading is not None:
            if not self._loading.done():
                return
            self.monitor, self._loading = self._loading.result(), None
            self.metrics.monitoring.set(0 if self.monitor is None else 1)
        if self.monitor is None or not len(scores):
            return
        self._held.append((features, scores))
        self._held_events += len(scores)
        if self._held_events < self.monitor.due_in:
            return  # no report due yet: one update for several batches (fewer numpy calls)
        held, self._held, self._held_events = self._held, [], 0
        X = held[0][0] if len(held) == 1 else np.concatenate([x for x, _ in held])
        report = self.monitor.update(X, np.concatenate([s for _, s in held]))
        if report is not None:
            self._publish(report, f"{key[0]}@{key[1]}")

    def _load(self, ref: str) -> DriftMonitor | None:
        """The version's monitor, or ``None`` (logged) when it has no usable reference."""
        try:
            reference, label, names = self._loader(self.registry, ref)
            if reference is None:
                return None  # load_reference logged why
            monitor = DriftMonitor(reference, names, self.config)
        except Exception as e:  # a broken reference turns drift off, never the worker
            log.warning("drift monitoring off for %s: %s", ref, escaped(e, 500))
            return None
        log.info("drift monitoring %s: window %d, step %d", label, *self._window())
        return monitor

    def _window(self) -> tuple[int, int]:
        return self.config.drift_window, self.config.drift_step

    def _publish(self, report: DriftReport, label: str) -> None:
        m = self.metrics
        m.evaluations.inc()
        alarms = {"alert_rate": report.rate_alarm, "score": report.score_alarm,
                  "features": report.feature_alarm}  # fmt: skip
        for test, alarmed in alarms.items():
            m.alarm.labels(test=test).set(int(alarmed))
            if alarmed:
                m.alarms.labels(test=test).inc()
        m.alert_rate.set(report.alert_rate)
        m.alert_rate_band.labels(bound="low").set(report.band_low / report.window)
        m.alert_rate_band.labels(bound="high").set(report.band_high / report.window)
        m.score_ks.set(report.score_ks)
        m.score_ks_critical.set(report.score_ks_critical)
        m.feature_largest.set(report.largest_drift)
        m.features_drifting.set(report.drifting_features)
        top = report.top_features()
        m.top_features.info({"features": ",".join(top)})
        self._log(report, label, tuple(t for t, a in alarms.items() if a), tuple(top))

    def _log(
        self, report: DriftReport, label: str, tests: tuple[str, ...], top: tuple[str, ...]
    ) -> None:
        """One line when the alarm starts, changes or clears (not one per evaluation)."""
        state = (tests, top)
        if state == self._last_alarm or (not tests and not self._last_alarm):
            return
        self._last_alarm = state if tests else ()
        if not tests:
            log.info("drift alarm cleared for %s at event %d", label, report.events)
            return
        log.warning(
            "drift alarm for %s at event %d: %s; alert rate %.4f in [%.4f, %.4f], score KS "
            "%.4f (critical %.4f), %d drifting features, top: %s",
            label, report.events, ", ".join(tests), report.alert_rate,
            report.band_low / report.window, report.band_high / report.window,
            report.score_ks, report.score_ks_critical, report.drifting_features,
            escaped(", ".join(top) or "-", 500),
        )  # fmt: skip

    def close(self) -> None:
        """Stop the loading thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def drift_config(settings: WorkerSettings) -> DriftConfig:
    """The monitor's settings from the worker's ``drift_*`` options."""
    return DriftConfig(
        drift_window=settings.drift_window,
        drift_step=settings.drift_step,
        drift_false_alarm_rate=settings.drift_false_alarm_rate,
        drift_expected_anomaly_rate=settings.drift_expected_anomaly_rate,
    )
