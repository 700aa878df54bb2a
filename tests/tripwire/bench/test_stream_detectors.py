"""The per-detector step's pieces that need no broker (the run itself: test_stream_broker)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tripwire.bench import stream_detectors
from tripwire.bench.stream_settings import StreamBenchSettings


def bench(tmp_path: Path, trained: dict[str, str]) -> Any:
    return SimpleNamespace(s=StreamBenchSettings(seed=0), work=tmp_path, trained=trained)


def test_a_model_the_run_trained_already_is_reused(tmp_path: Path) -> None:
    b = bench(tmp_path, {"ae": "bench@production"})
    assert stream_detectors._model(b, "ae", "bench-0") == ("bench@production", None)
    assert not (tmp_path / "registry").exists()  # nothing trained


def test_a_new_spec_is_trained_once_and_remembered(tmp_path: Path) -> None:
    b = bench(tmp_path, {})
    ref, seconds = stream_detectors._model(b, "pyod:IForest", "bench-3")
    assert ref == "bench-3@production" and seconds is not None and seconds > 0
    assert b.trained == {"pyod:IForest": ref}
    assert stream_detectors._model(b, "pyod:IForest", "bench-4") == (ref, None)


def test_specs_become_topic_and_file_name_parts() -> None:
    assert stream_detectors._safe("pyod:IForest") == "pyod-IForest"
    assert stream_detectors._safe("a/b c") == "a-b-c"
