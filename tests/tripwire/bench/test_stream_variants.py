"""The worker variants' pieces that need no broker (the run itself: test_stream_broker)."""

from __future__ import annotations

from typing import Any

import pytest

from tripwire.bench import stream_variants
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.bench.stream_variants import COMPARISONS, VARIANTS, compare, schedule
from tripwire.core.errors import ConfigError
from tripwire.stream.settings import WorkerSettings


def test_the_default_variant_is_the_worker_with_drift_on_and_no_shadow() -> None:
    # The comparisons read "default" as drift on and shadow off: the worker's defaults.
    assert WorkerSettings().drift is True and WorkerSettings().shadow_model == ""
    assert VARIANTS["default"].settings == {}
    assert VARIANTS["default"].flags == "none (drift on, no shadow)"
    drift, shadow = COMPARISONS
    assert (drift.on, drift.off, drift.min_ratio) == ("default", "drift-off", 0.90)
    assert (shadow.on, shadow.off, shadow.min_ratio, shadow.max_p99_ms) == (
        "shadow", "default", 0.60, 50.0
    )  # fmt: skip
    assert VARIANTS["drift-off"].settings == {"drift": "false"}
    assert VARIANTS["shadow"].settings == {"shadow_model": "bench@candidate"}


def evidence(monitoring: float, evaluations: float, shadow: float) -> dict[str, float]:
    return {
        "tripwire_drift_monitoring": monitoring, "tripwire_drift_evaluations_total": evaluations,
        "tripwire_shadow_events_scored_total": shadow,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("variant", "metrics", "problem"),
    [
        ("default", evidence(1, 4, 0), None),
        ("default", evidence(0, 0, 0), "did not monitor drift"),
        ("default", evidence(1, 0, 0), "did not monitor drift"),  # never evaluated
        ("default", evidence(1, 4, 100), "scored events"),
        ("drift-off", evidence(0, 0, 0), None),
        ("drift-off", evidence(1, 0, 0), "monitored drift although"),
        ("drift-off", evidence(0, 3, 0), "monitored drift although"),
        ("shadow", evidence(1, 4, 100), None),
        ("shadow", evidence(1, 4, 0), "scored nothing"),
    ],
)
def test_a_round_whose_metrics_contradict_its_variant_is_refused(
    variant: str, metrics: dict[str, float], problem: str | None
) -> None:
    found = VARIANTS[variant].check(metrics)
    assert found is None if problem is None else problem in (found or "")


def test_rounds_alternate_their_order() -> None:
    assert schedule(["a", "b", "c"], 3) == [
        (0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (2, "c"),
    ]  # fmt: skip


def row(name: str, rates: list[float | None], p99: float) -> dict[str, Any]:
    rounds = [
        {"round": r, "error": "x"} if v is None
        else {"round": r, "worker": {"vectors_per_s": v}}
        for r, v in enumerate(rates)
    ]  # fmt: skip
    ok = [v for v in rates if v is not None]
    return {"variant": name, "rounds": rounds, "vectors_per_s": sorted(ok)[len(ok) // 2],
            "p99": p99}  # fmt: skip


def test_a_comparison_is_the_ratio_of_medians_with_paired_round_ratios() -> None:
    drift, shadow = COMPARISONS
    on, off = row("default", [90.0, 100.0, 80.0], 20.0), row("drift-off", [100.0, None, 100.0], 9)
    c = compare(drift, on, off)
    assert c["ratio"] == pytest.approx(0.9) and c["holds"] is True
    assert c["round_ratios"] == pytest.approx([0.9, 0.8])  # round 1 of drift-off failed
    slow = compare(drift, row("default", [89.0], 1.0), row("drift-off", [100.0], 1.0))
    assert slow["holds"] is False
    fast_but_late = compare(shadow, row("shadow", [70.0], 51.0), row("default", [100.0], 1.0))
    assert fast_but_late["ratio"] == pytest.approx(0.7) and fast_but_late["holds"] is False
    ok = compare(shadow, row("shadow", [70.0], 49.0), row("default", [100.0], 1.0))
    assert ok["holds"] is True and ok["p99"] == 49.0
    failed = compare(shadow, {"variant": "shadow", "rounds": [], "error": "x"}, on)
    assert failed["ratio"] is None and failed["holds"] is None


def test_unknown_variants_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        StreamBenchSettings(variants=("default", "turbo"))
    with pytest.raises(ConfigError, match="variant_repeats"):
        StreamBenchSettings(variant_repeats=0)
    assert StreamBenchSettings().variants == tuple(stream_variants.VARIANTS)
