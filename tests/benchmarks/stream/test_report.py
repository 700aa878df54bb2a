"""The harness's stream pieces that need no broker: profile grouping, targets, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.stream import report as stream_report
from benchmarks.stream.profile import GROUPS, OTHER, ROOT, parse
from benchmarks.stream.run import HarnessResult, HarnessSettings
from tripwire.core.errors import ConfigError


def test_profile_groups_samples_by_the_first_matching_marker() -> None:
    raw = "\n".join([
        f"_run (w.py:1);score (s.py:2);Scorer.score ({ROOT}tripwire/core/scorer.py:55) 6",
        "main (a.py:1);Codec.decode_batch (/x/stream/codecs.py:130) 3",
        "main (a.py:1);select (/usr/lib/python3.11/selectors.py:468) 1",
        "garbage line",
    ])  # fmt: skip
    p = parse(raw)
    assert p.samples == 10
    assert p.scoring_share == pytest.approx(0.6)
    assert p.groups[GROUPS[1][0]] == pytest.approx(0.3) and p.groups[OTHER] == pytest.approx(0.1)
    assert p.top[0] == ("Scorer.score (tripwire/core/scorer.py)", pytest.approx(0.6))
    assert parse("").samples == 0


def result(**over: Any) -> HarnessResult:
    rate = {"records_per_s": 100_000.0, "vectors_per_s": 100_000.0, "cpu_percent": 90.0}
    r = HarnessResult(
        meta={
            "command": "python -m benchmarks stream", "date": "2026-01-01T00:00:00Z",
            "machine": {"cpu": "cpu", "cpus_usable": 2, "platform": "linux"},
            "broker": "embedded Tansu", "code": "abc", "versions": {"faust-streaming": "0.15.3"},
            "settings": {"anomaly_fraction": 0.01}, "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [2.0, 1.0, 1.0],
        },
        ceiling_a={"binary": rate, "json": {**rate, "records_per_s": 50_000.0},
                   "packed": {**rate, "records_per_s": 10_000.0, "vectors_per_s": 1e6}},
        ceiling_b={"events_per_s": 10_000.0, "cpu_percent": 95.0},
        ceiling_c={"vectors_per_s": 2e6, "cpu_percent": 100.0, "batch": 256},
        naive={"events_per_s": 1_000.0, "cpu_percent": 95.0},
        worker={
            enc: {"records_per_s": v / (100 if enc == "packed" else 1), "vectors_per_s": v,
                  "cpu_percent": 90.0, "cpu_seconds": 10.0, "inference_cpu_seconds": 1.0,
                  "inference_seconds": 3.0, "mean_batch": 256.0}
            for enc, v in (("binary", 60_000.0), ("json", 20_000.0), ("packed", 400_000.0))
        },
        latency=[{"offered": 5000.0, "achieved": 4990.0, "events": 100, "alerts": 10,
                  "cpu_percent": 20.0, "p50": 10.0, "p95": 20.0, "p99": 40.0, "max": 45.0,
                  "broker": {"p50": 5.0, "p99": 30.0}}],
        memory={"rss_after_warmup": 100 * 2**20, "rss_end": 105 * 2**20,
                "peak_rss": 110 * 2**20, "growth": 0.05},
    )  # fmt: skip
    for k, v in over.items():
        setattr(r, k, v)
    return r


def test_targets_are_ratios_of_one_run() -> None:
    t = {x.name: x for x in stream_report.targets(result())}
    assert t["binary vs bare stock faust (B)"].measured == pytest.approx(6.0)
    assert t["binary vs bare stock faust (B)"].holds is True
    assert t["binary vs raw aiokafka records/s (A)"].measured == pytest.approx(0.6)
    assert t["JSON vs bare stock faust (B)"].holds is False  # 2x < 2.5x
    packed = t["packed vs raw aiokafka vectors/s, same decoding (A)"]
    assert packed.measured == pytest.approx(0.4) and packed.holds is False
    assert t["binary vs naive PyOD faust agent"].measured == pytest.approx(60.0)
    share = t["inference share of the worker's CPU at max rate, binary"]
    assert share.measured == pytest.approx(0.1) and share.holds is True
    assert t["p99 event time → alert at 5k events/s"].holds is True
    assert t["RSS growth after warm-up"].holds is True


def test_missing_measurements_are_not_passed() -> None:
    targets = stream_report.targets(result(latency=[], memory={}, ceiling_b={}))
    missing = [t for t in targets if t.measured is None]
    assert len(missing) == 4 and all(t.holds is None for t in missing)


def test_markdown_json_and_doc_section(tmp_path: Path) -> None:
    r = result()
    md = stream_report.markdown(r)
    assert "| **Tripwire worker** (mean batch 256) | binary | 60,000 | 60,000 | 90% | 60.0% |" in md
    assert "| 5,000 | 4,990 | 10 | 10 ms | 20 ms | 40 ms | 45 ms | 20% | 5 ms / 30 ms |" in md
    assert "(+5.0%)" in md and "load average 1.0 -> 2.0" in md
    md_path, js_path = stream_report.write(r, tmp_path / "out")
    payload = json.loads(js_path.read_text())
    assert payload["worker"]["binary"]["vectors_per_s"] == 60_000.0
    assert {t["holds"] for t in payload["targets"]} == {True, False}
    assert md_path.read_text().startswith("# Stream benchmark")
    doc = tmp_path / "performance.md"
    doc.write_text(
        f"# P\n\nintro\n\n{stream_report.DOC_BEGIN}\nSTALE\n{stream_report.DOC_END}\ntail\n"
    )
    stream_report.update_doc(doc, md)
    text = doc.read_text()
    assert "STALE" not in text and text.startswith("# P\n\nintro") and text.endswith("tail\n")
    assert md in text
    bad = tmp_path / "bad.md"
    bad.write_text("no markers")
    with pytest.raises(ConfigError):
        stream_report.update_doc(bad, md)


def test_harness_settings_check_their_own_counts() -> None:
    assert HarnessSettings(bare_events=5).bare_events == 5
    with pytest.raises(ConfigError, match="naive_events"):
        HarnessSettings(naive_events=0)


def test_detector_targets_judge_each_detector_against_the_ae_of_the_run() -> None:
    def det(name: str, inproc: float, worker: float, p99: float | None) -> dict[str, Any]:
        return {"detector": name, "events": 4000, "inprocess": {"vectors_per_s": inproc},
                "worker": {"vectors_per_s": worker, "cpu_percent": 90.0, "cpu_seconds": 1.0,
                           "inference_cpu_seconds": 0.1},
                "latency": {"p50": p99, "p99": p99, "achieved": 5000.0}}  # fmt: skip

    r = result(detectors=[
        det("ae", 500_000.0, 60_000.0, 20.0), det("knn", 150_000.0, 21_000.0, 45.0),
        det("ensemble", 2_000.0, 1_500.0, 9_000.0), det("vae", 300_000.0, 19_000.0, None),
        {"detector": "pyod:Nope", "error": "x"},
    ])  # fmt: skip
    rows = {line.split(" | ")[0][2:]: line for line in stream_report.detector_targets(r)
            if line.startswith("| ") and not line.startswith("| detector")}  # fmt: skip
    assert rows["ae"] == "| ae | yes | yes | yes | yes |"
    assert rows["knn"] == "| knn | yes | yes | yes | yes |"
    assert rows["ensemble"] == "| ensemble | **no** | **no** | **no** | **no** |"
    assert rows["vae"] == "| vae | yes | **no** | n/a | n/a |"  # 19k < 60k / 3
    assert "pyod:Nope" not in rows
    assert stream_report.detector_targets(result()) == []
    assert "### Speed targets of a default detector" in stream_report.markdown(r)


def test_the_harness_refuses_detectors_only() -> None:
    with pytest.raises(ConfigError, match="detectors_only"):
        HarnessSettings(detectors_only=True)
