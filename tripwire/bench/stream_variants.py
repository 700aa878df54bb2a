"""Worker variants: the same worker with other settings, measured side by side.

A :class:`Variant` is a name, the ``tripwire worker`` settings it adds
(``TRIPWIRE_<KEY>``), what it needs in the registry first, and a check on the
worker's own metrics that those settings took effect. :func:`run_variants`
measures every variant of ``--variants`` ``--variant-repeats`` times, interleaved
(round 0 in the order given, round 1 reversed, round 2 as given...), each round a
worker of its own serving the run's AE on a fresh backlog of ``--events`` binary
events, then at ``--variant-rate`` events/s
(:func:`tripwire.bench.stream_serve.backlog_then_rate`). A variant's figures are
the medians of its rounds; a :class:`Comparison` divides one variant's median
throughput by another's (the targets of issues 16 and 17).

The worker monitors drift by default and has no shadow (:class:`WorkerSettings`),
so ``default`` is the drift-on side of the drift comparison and the shadow-off
side of the shadow one. A round whose worker's metrics contradict its variant
(drift not monitored, or monitored with ``--no-drift``; no shadow scores) is an
error, not a figure.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tripwire.bench.stream_data import MODEL_NAME, train_model
from tripwire.bench.stream_serve import backlog_then_rate
from tripwire.stream.settings import WorkerSettings

if TYPE_CHECKING:
    from tripwire.bench.stream import WorkerBench

log = logging.getLogger(__name__)

DEFAULTS = WorkerSettings()
#: The alias the shadow variant's second version is published under.
CANDIDATE = "candidate"
#: The worker's metrics that show what its settings did (kept for every round).
EVIDENCE = (
    "tripwire_drift_monitoring",
    "tripwire_drift_evaluations_total",
    "tripwire_shadow_events_scored_total",
)


def expect(*, drift: bool, shadow: bool) -> Callable[[Mapping[str, float]], str | None]:
    """A check of a round's :data:`EVIDENCE`: what is wrong with it, ``None`` if nothing."""

    def check(m: Mapping[str, float]) -> str | None:
        monitored = m.get("tripwire_drift_monitoring") == 1.0
        evaluated = m.get("tripwire_drift_evaluations_total", 0.0) > 0
        scored = m.get("tripwire_shadow_events_scored_total", 0.0) > 0
        if drift and not (monitored and evaluated):
            return "the worker did not monitor drift (tripwire_drift_* metrics)"
        if not drift and (monitored or evaluated):
            return "the worker monitored drift although the variant turns it off"
        if shadow != scored:
            return f"the worker's shadow scored {'nothing' if shadow else 'events'}"
        return None

    return check


#: Training epochs of the shadow's AE: its scoring costs what any AE's does, and a
#: full training takes minutes on a busy host.
CANDIDATE_EPOCHS = 3


def publish_candidate(bench: WorkerBench) -> None:
    """A second AE for the same features (the next seed), as ``bench@candidate``."""
    train_model(bench.work / "registry", bench.s.seed + 1, model="ae", alias=CANDIDATE,
                epochs=CANDIDATE_EPOCHS)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One way to run the worker (module docstring)."""

    name: str
    #: the options it stands for, as one would type them
    flags: str
    check: Callable[[Mapping[str, float]], str | None]
    settings: Mapping[str, Any] = field(default_factory=dict)
    prepare: Callable[[WorkerBench], None] | None = None


def _default_flags() -> str:
    shadow = f"shadow {DEFAULTS.shadow_model}" if DEFAULTS.shadow_model else "no shadow"
    return f"none (drift {'on' if DEFAULTS.drift else 'off'}, {shadow})"


VARIANTS = {
    v.name: v
    for v in (
        Variant("default", _default_flags(),
                expect(drift=DEFAULTS.drift, shadow=bool(DEFAULTS.shadow_model))),
        Variant("drift-off", "--no-drift", expect(drift=False, shadow=False),
                {"drift": "false"}),
        Variant("shadow", f"--shadow-model {MODEL_NAME}@{CANDIDATE}",
                expect(drift=DEFAULTS.drift, shadow=True),
                {"shadow_model": f"{MODEL_NAME}@{CANDIDATE}"}, publish_candidate),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """``on``'s median throughput over ``off``'s, with its target."""

    name: str
    on: str
    off: str
    min_ratio: float
    #: bound on ``on``'s median p99 at the offered rate (ms), if the target has one
    max_p99_ms: float | None = None


COMPARISONS = (
    Comparison("drift monitoring on ÷ off (issue 16)", "default", "drift-off", 0.90),
    Comparison("shadow scoring on ÷ off (issue 17)", "shadow", "default", 0.60, 50.0),
)


def run_variants(bench: WorkerBench) -> None:
    """Measure ``bench.s.variants`` into ``bench.result.variants`` and ``.comparisons``."""
    s = bench.s
    chosen = [VARIANTS[name] for name in s.variants]
    rounds: dict[str, list[dict[str, Any]]] = {v.name: [] for v in chosen}
    failed: dict[str, str] = {}
    for v in chosen:
        if v.prepare is not None:
            try:
                v.prepare(bench)
            except Exception as e:  # the other variants go on
                log.warning("variant %s: setup failed: %s", v.name, e, exc_info=True)
                failed[v.name] = f"setup: {type(e).__name__}: {e}"[:500]
    for position, (r, name) in enumerate(schedule(list(rounds), s.variant_repeats)):
        if name not in failed:
            rounds[name].append({"position": position, **_round(bench, VARIANTS[name], r)})
    bench.result.variants = [_summary(v, rounds[v.name], failed.get(v.name)) for v in chosen]
    rows = {row["variant"]: row for row in bench.result.variants}
    bench.result.comparisons = [
        compare(c, rows[c.on], rows[c.off]) for c in COMPARISONS if c.on in rows and c.off in rows
    ]


def schedule(names: list[str], repeats: int) -> list[tuple[int, str]]:
    """(round, variant) in the order they run: as given, then reversed, and so on."""
    return [(r, n) for r in range(repeats) for n in (names if r % 2 == 0 else names[::-1])]


def _round(bench: WorkerBench, v: Variant, r: int) -> dict[str, Any]:
    name = f"var-{v.name}-{r}-{bench.tag}"
    try:
        served = backlog_then_rate(bench, bench.model_ref.split("@")[0], bench.s.events, name,
                                   bench.s.variant_rate, v.settings)  # fmt: skip
    except Exception as e:  # one round failing must not stop the others
        log.warning("variant %s round %d failed: %s", v.name, r, e, exc_info=True)
        return {"round": r, "error": f"{type(e).__name__}: {e}"[:500]}
    evidence = {k: served.metrics.get(k, 0.0) for k in EVIDENCE}
    row = {"round": r, "worker": served.worker, "latency": served.latency, "evidence": evidence}
    problem = v.check(evidence)
    if problem is not None:
        log.warning("variant %s round %d: %s", v.name, r, problem)
        row["error"] = problem
    log.info("variant %s round %d: %.0f events/s, p99 %s ms", v.name, r,
             served.worker["vectors_per_s"], served.latency["p99"])  # fmt: skip
    return row


def _median(values: list[float | None]) -> float | None:
    known = [x for x in values if x is not None]
    return statistics.median(known) if known else None


def _summary(v: Variant, rounds: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    ok = [x for x in rounds if "error" not in x]
    row: dict[str, Any] = {"variant": v.name, "flags": v.flags, "settings": dict(v.settings),
                           "rounds": rounds, "measured": len(ok)}  # fmt: skip
    if error or not ok:
        row["error"] = error or next((x["error"] for x in rounds), "no rounds")
        return row
    row["vectors_per_s"] = _median([x["worker"]["vectors_per_s"] for x in ok])
    row["cpu_percent"] = _median([x["worker"]["cpu_percent"] for x in ok])
    for key in ("p50", "p99", "achieved", "scored_per_s"):
        row[key] = _median([x["latency"][key] for x in ok])
    return row


def compare(c: Comparison, on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """``c`` on two rows of :func:`_summary`: the ratio of medians, per-round ratios, holds."""
    out: dict[str, Any] = {"name": c.name, "on": c.on, "off": c.off, "min_ratio": c.min_ratio,
                           "max_p99_ms": c.max_p99_ms, "ratio": None, "round_ratios": [],
                           "p99": on.get("p99"), "holds": None}  # fmt: skip
    if "error" in on or "error" in off:
        return out
    out["ratio"] = on["vectors_per_s"] / off["vectors_per_s"]
    paired = {x["round"]: x for x in off["rounds"] if "error" not in x}
    out["round_ratios"] = [
        x["worker"]["vectors_per_s"] / paired[x["round"]]["worker"]["vectors_per_s"]
        for x in on["rounds"] if "error" not in x and x["round"] in paired
    ]  # fmt: skip
    holds = out["ratio"] >= c.min_ratio
    if c.max_p99_ms is not None:
        holds = holds and out["p99"] is not None and out["p99"] <= c.max_p99_ms
    out["holds"] = holds
    return out
