"""``tripwire drift``: the monitor's statistics over a file, table + JSON + PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tripwire.cli import main
from tripwire.core.drift import DriftConfig, DriftMonitor
from tripwire.core.drift.artifact import load_reference
from tripwire.core.registry import load_scorer
from tripwire.training.pipeline import train
from tripwire.training.settings import TrainSettings


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("drift-cli")
    rng = np.random.default_rng(0)
    np.savez(tmp / "train.npz", X=rng.normal(size=(3000, 6)).astype(np.float32))
    settings = TrainSettings(
        data=str(tmp / "train.npz"), registry=str(tmp / "reg"), model="knn", name="m",
        plot="none", seed=0, promote="production",
    )  # fmt: skip
    train(settings)
    return tmp / "reg"


def rows(tmp_path: Path, shift_from: int | None, n: int = 8000) -> Path:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 6))
    if shift_from is not None:
        X[shift_from:, 2] += 1.0
    path = tmp_path / "rows.npz"
    np.savez(path, X=X.astype(np.float32))
    return path


def drift(registry: Path, data: Path, *extra: str) -> int:
    base = ["drift", "--registry", str(registry), "--model", "m", "--data", str(data)]
    return main([*base, "--drift-window", "2000", "--drift-step", "1000", *extra])


def test_stationary_file_passes(registry: Path, tmp_path: Path, capsys: Any) -> None:
    assert drift(registry, rows(tmp_path, None)) == 0
    out = capsys.readouterr().out
    assert "against m@1: window 2000, step 1000" in out and "windows 7, alarmed 0" in out


def test_shift_alarms_and_names_the_feature(registry: Path, tmp_path: Path, capsys: Any) -> None:
    out_json, out_png = tmp_path / "d.json", tmp_path / "d.png"
    code = drift(registry, rows(tmp_path, 5000), "--json", str(out_json), "--plot", str(out_png))
    assert code == 1
    doc = json.loads(out_json.read_text())
    assert doc["model"] == "m@1" and doc["config"]["window"] == 2000
    evaluations = doc["evaluations"]
    assert [e["events"] for e in evaluations] == list(range(2000, 8001, 1000))
    assert not any(e["alarm"] for e in evaluations[:3])  # up to event 4000: no shifted rows
    last = evaluations[-1]["features"]
    assert last["alarm"] and last["drifting"] == 1 and last["top"][0]["name"] == "f2"
    assert last["top"][0]["mean_shift_sd"] == pytest.approx(1.0, abs=0.15)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "f2" in capsys.readouterr().out


def test_same_statistics_as_a_monitor_fed_in_order(registry: Path, tmp_path: Path) -> None:
    """What the command reports is what a worker's monitor computes on the events."""
    data = rows(tmp_path, 5000)
    out = tmp_path / "d.json"
    drift(registry, data, "--json", str(out))
    reference, _, names = load_reference(registry, "m@1")
    assert reference is not None
    X = np.load(data)["X"]
    scores = load_scorer(registry, "m@1").score(X).scores
    monitor = DriftMonitor(reference, names, DriftConfig(drift_window=2000, drift_step=1000))
    want = [
        r for s in range(0, 8000, 250) if (r := monitor.update(X[s : s + 250], scores[s : s + 250]))
    ]
    got = json.loads(out.read_text())["evaluations"]
    assert [g["score"]["ks"] for g in got] == [w.score_ks for w in want]
    assert [g["features"]["largest_drift"] for g in got] == [w.largest_drift for w in want]


def test_short_file_is_one_window(registry: Path, tmp_path: Path, capsys: Any) -> None:
    assert drift(registry, rows(tmp_path, None, n=500)) == 0
    assert "window 500, step 500" in capsys.readouterr().out


def test_version_without_reference_is_an_error(
    registry_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    pub = registry_factory(name="old", kind="ae")
    data = tmp_path / "x.npz"
    np.savez(data, X=np.zeros((20, len(pub.feature_names)), np.float32))
    args = ["drift", "--registry", str(pub.root), "--model", "old@1", "--data", str(data)]
    assert main(args) == 2
    assert "old@1 has no drift reference" in capsys.readouterr().err
