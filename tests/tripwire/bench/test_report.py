"""Summaries of a quality run: averages, ranks, the calibration check, the doc section."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tripwire.bench import report
from tripwire.bench.quality import QualityResult, RunRecord
from tripwire.training.thresholds import CalibrationData, parse_threshold


def _rec(dataset: str, det: str, seed: int, roc: float | None, fpr: float = 0.01,
         n_test_normal: int = 600) -> RunRecord:  # fmt: skip
    rec = RunRecord(dataset, det, seed, n_fit=10, n_calibration=5,
                    n_test_normal=n_test_normal, n_test_anomaly=3)  # fmt: skip
    if roc is None:
        rec.error = "ValueError: nope"
        return rec
    rec.roc_auc, rec.pr_auc, rec.fpr, rec.recall = roc, roc / 2, fpr, 0.5
    rec.fit_seconds, rec.score_seconds = 1.0, 0.1
    return rec


def _result(runs: list[RunRecord], detectors: tuple[str, ...]) -> QualityResult:
    meta: dict[str, Any] = {
        "command": "tripwire bench quality", "date": "2026-01-01T00:00:00Z",
        "wall_seconds": 60.0, "versions": {"pyod": "x"},
        "machine": {"platform": "linux", "cpus_usable": 2},
        "settings": {"detectors": list(detectors), "seeds": ["0", "1"], "target_fpr": 0.01,
                     "torch_threads": 1},
    }  # fmt: skip
    datasets = {d: {"rows": 1} for d in dict.fromkeys(r.dataset for r in runs)}
    return QualityResult(meta, datasets, runs)


def test_average_is_mean_over_datasets_of_means_over_seeds() -> None:
    runs = [
        _rec("a", "X", 0, 0.8), _rec("a", "X", 1, 0.9), _rec("b", "X", 0, 0.6),
        _rec("b", "X", 1, None),  # failed seed: b's mean is over the other one
        _rec("a", "Y", 0, 0.7), _rec("a", "Y", 1, 0.7), _rec("b", "Y", 0, 0.9),
        _rec("b", "Y", 1, 0.9),
    ]  # fmt: skip
    s = report.summary(_result(runs, ("X", "Y")))
    assert s["averaged"]["X"]["roc_auc"] == pytest.approx((0.85 + 0.6) / 2)
    assert s["averaged"]["Y"]["roc_auc"] == pytest.approx(0.8)
    # X best on a, Y best on b
    assert s["averaged"]["X"]["rank_roc_auc"] == 1.5 == s["averaged"]["Y"]["rank_roc_auc"]
    md = report.markdown(_result(runs, ("X", "Y")))
    assert "| b | 0.600* | **0.900** |" in md  # partial cell marked, best in bold


def test_a_detector_failing_everywhere_is_not_ranked() -> None:
    runs = [_rec(d, "X", 0, r) for d, r in (("a", 0.9), ("b", 0.5))]
    runs += [_rec(d, "Z", 0, None) for d in ("a", "b")]
    runs += [_rec(d, "Y", 0, r) for d, r in (("a", 0.8), ("b", 0.7))]
    avg = report.summary(_result(runs, ("X", "Z", "Y")))["averaged"]
    assert avg["Z"]["roc_auc"] is None and avg["Z"]["datasets_ok"] == 0
    assert avg["Z"]["rank_roc_auc"] is None
    assert avg["X"]["rank_roc_auc"] == avg["Y"]["rank_roc_auc"] == 1.5
    md = report.markdown(_result(runs, ("X", "Z", "Y")))
    assert "| a | **0.900** | ERR | 0.800 |" in md
    assert "- a / Z / seed 0: ValueError: nope" in md


def test_calibration_band_and_minimum_test_normals() -> None:
    runs = [
        _rec("a", "X", 0, 0.9, fpr=0.005), _rec("a", "X", 1, 0.9, fpr=0.0201),
        _rec("a", "Y", 0, 0.9, fpr=0.02), _rec("a", "Y", 1, 0.9, fpr=0.0049),
        _rec("small", "X", 0, 0.9, fpr=0.2, n_test_normal=499),
    ]  # fmt: skip
    cal = report.calibration(_result(runs, ("X", "Y")))
    assert cal["datasets"] == ["a"]
    assert cal["band"] == [0.005, 0.02]
    for det in ("X", "Y"):
        stats = cal["per_detector"][det]
        assert (stats["runs"], stats["in_band"]) == (2, 1)
        assert stats["expected"] == pytest.approx(
            2 * report.ideal_in_band(5, 600, 0.01, 0.005, 0.02)
        )
    assert {(m["detector"], m["seed"]) for m in cal["misses"]} == {("X", 1), ("Y", 1)}


def test_ideal_in_band_matches_simulated_fpr_thresholds() -> None:
    """The beta-binomial rate agrees with Tripwire's real fpr threshold on uniform scores."""
    rng = np.random.default_rng(0)
    n_cal, n_test, n = 230, 600, 3000
    hits = 0
    for _ in range(n):
        data = CalibrationData(np.empty(0), normal_scores=rng.random(n_cal))
        value = parse_threshold("fpr:0.01").fit(data).value
        fpr = np.mean(rng.random(n_test) > value)
        hits += 0.005 <= fpr <= 0.02
    expected = report.ideal_in_band(n_cal, n_test, 0.01, 0.005, 0.02)
    assert 0.5 < expected < 0.9  # a case where chance misses matter
    assert hits / n == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / n))
    assert report.ideal_in_band(20_000, 50_000, 0.01, 0.005, 0.02) > 0.999


def test_the_scoring_rate_sits_beside_the_quality() -> None:
    runs = [_rec(d, "X", s, 0.9) for d in ("a", "b") for s in (0, 1)]
    for r, rate in zip(runs, (1000.0, 3000.0, 5000.0, 7000.0), strict=True):
        r.score_rate = rate
    runs += [_rec(d, "Y", 0, 0.8) for d in ("a", "b")]  # measured without a rate
    result = _result(runs, ("X", "Y"))
    avg = report.summary(result)["averaged"]
    assert avg["X"]["score_rate"] == pytest.approx((2000 + 6000) / 2)
    assert avg["Y"]["score_rate"] is None and avg["Y"]["roc_auc"] == pytest.approx(0.8)
    md = report.markdown(result)
    assert "| detector | ROC-AUC | PR-AUC | vectors/s (batch 256) | test FPR |" in md
    assert "| X (Tripwire) | 0.900 | 0.450 | 4,000 | 1.00% |" in md
    assert "| Y (Tripwire) | 0.800 | 0.400 | – | 1.00% |" in md
    assert "| a | 2,000 | – |" in md  # the per-dataset rate table


def test_threshold_rows_beside_the_fpr_and_in_the_ideal() -> None:
    runs = [_rec(d, "X", s, 0.9) for d in ("a", "b") for s in (0, 1)]
    for r, rows in zip(runs, (1000, 3000, 5000, 7000), strict=True):
        r.threshold_rows = rows
    runs[1].fpr = 0.03  # a miss, listed with its rows
    result = _result(runs, ("X",))
    assert report.summary(result)["averaged"]["X"]["threshold_rows"] == 4000
    md = report.markdown(result)
    assert "| test FPR | threshold rows | recall |" in md
    assert "| X (Tripwire) | 0.900 | 0.450 | – | 1.50% | 4,000 | 0.500 |" in md
    assert "| a | 2,000 |" in md  # the per-dataset rows table
    assert "a 1: 3.00%, 3,000" in md and "| all detectors | 3/4 |" in md
    # the ideal in-band count rests on the rows the threshold rests on, not the split's
    expected = sum(
        report.ideal_in_band(n, 600, 0.01, 0.005, 0.02) for n in (1000, 3000, 5000, 7000)
    )
    cal = report.calibration(result)
    assert cal["per_detector"]["X"]["expected"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("abc1234", "; code abc1234  \n"),
        ("abc1234+dirty", "; code abc1234 (+dirty: uncommitted edits in the checkout)  \n"),
        (None, "; code unknown  \n"),
    ],
)
def test_the_revision_is_marked_dirty_only_when_it_was(code: str | None, line: str) -> None:
    result = _result([_rec("a", "X", 0, 0.9)], ("X",))
    result.meta["code"] = code
    assert line in report.markdown(result)
    del result.meta["code"]  # a run outside the project's harness records none
    assert "; code" not in report.markdown(result)
