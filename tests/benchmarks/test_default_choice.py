"""The default-detector table: candidate specs, verdicts, and one small real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import default_choice
from benchmarks.knn_speed import Rate


def test_a_candidate_spec_carries_typed_hyperparameters() -> None:
    kind, params = default_choice.parse_candidate("knn@scaling=none@max_reference=2000")
    assert (kind, params) == ("knn", {"scaling": "none", "max_reference": 2000})
    det = default_choice.make_candidate("ensemble@max_reference=300", seed=4)
    assert det.get_params()["max_reference"] == 300 and det.get_params()["seed"] == 4


def test_the_speed_verdict_reads_the_cpu_rate() -> None:
    assert default_choice.speed_verdict(Rate(wall=50_000, cpu=100_000)) == "met"
    assert default_choice.speed_verdict(Rate(wall=200_000, cpu=75_000)) == "short 25%"


def test_a_run_rates_and_judges_every_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 4)), rng.normal(6.0, 1.0, size=(30, 4))])
    y = np.r_[np.zeros(300), np.ones(30)]
    np.savez(tmp_path / "toy.npz", X=X, y=y)
    default_choice.main([
        "--datasets", str(tmp_path), "--seeds", "0", "--rows", "400", "--features", "4",
        "--test-rows", "512", "--repeats", "1", "--baseline", "ensemble",
        "--candidates", "ensemble;ensemble@max_reference=20",
    ])  # fmt: skip
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ens")]
    assert [r.split(" | ")[0] for r in rows] == ["| ensemble", "| ensemble@max_reference=20"]
    assert rows[0].endswith("| met |")  # the baseline matches itself
    # 20 of 135 fit rows as the reference: a different model, with its own quality
    assert "@max_reference=20 | " in rows[1] and rows[1].count("|") == 8
