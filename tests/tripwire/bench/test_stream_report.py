"""``tripwire bench stream``'s report: the worker's own tables, nothing of the harness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tripwire.bench import stream_report
from tripwire.bench.stream import StreamResult


def result() -> StreamResult:
    return StreamResult(
        meta={
            "command": "tripwire bench stream", "date": "2026-01-01T00:00:00Z",
            "machine": {"cpu": "cpu", "cpus_usable": 2, "platform": "linux"},
            "broker": "kafka:9092", "versions": {"faust-streaming": "0.15.3"},
            "settings": {"anomaly_fraction": 0.01}, "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [2.0, 1.0, 1.0],
        },
        worker={"binary": {"records_per_s": 60_000.0, "vectors_per_s": 60_000.0,
                           "cpu_percent": 90.0, "mean_batch": 256.0}},
        latency=[{"offered": 5000.0, "achieved": 4990.0, "events": 100, "alerts": 10,
                  "cpu_percent": 20.0, "p50": 10.0, "p95": 20.0, "p99": 40.0, "max": 45.0,
                  "broker": {"p50": None, "p95": None, "p99": None, "max": None}}],
        memory={"rss_after_warmup": 100 * 2**20, "rss_end": 105 * 2**20,
                "peak_rss": 110 * 2**20, "growth": 0.05},
    )  # fmt: skip


def test_markdown_has_the_worker_tables_only(tmp_path: Path) -> None:
    md = stream_report.markdown(result())
    assert "| binary | 60,000 | 60,000 | 90% | 256 |" in md
    assert "| 5,000 | 4,990 | 10 | 10 ms | 20 ms | 40 ms | 45 ms | 20% |\n" in md
    assert "broker: kafka:9092" in md and "(+5.0%)" in md and "code " not in md
    assert "ceiling" not in md.lower() and "naive" not in md and "broker alone" not in md
    md_path, js_path = stream_report.write(result(), tmp_path / "out")
    assert md_path.read_text() == "# Stream benchmark\n\n" + md
    assert json.loads(js_path.read_text())["worker"]["binary"]["vectors_per_s"] == 60_000.0


def detector(name: str, inproc: float, worker: float, p99: float | None) -> dict[str, Any]:
    return {
        "detector": name, "model": f"{name}@production", "train_seconds": 1.0, "events": 4000,
        "inprocess": {"vectors_per_s": inproc, "batch": 256, "repeats": [inproc],
                      "torch_threads": 1, "cpu_percent": 99.0},
        "worker": {"vectors": 4000.0, "seconds": 1.0, "vectors_per_s": worker,
                   "records_per_s": worker, "cpu_percent": 95.0, "cpu_seconds": 2.0,
                   "inference_seconds": 1.0, "inference_cpu_seconds": 0.5, "mean_batch": 256.0},
        "latency": {"offered": 5000.0, "achieved": 4900.0, "events": 30000,
                    "scored_per_s": 4800.0, "alerts": 300, "cpu_percent": 50.0,
                    "p50": None if p99 is None else p99 / 2, "p95": p99, "p99": p99, "max": p99},
    }  # fmt: skip


def test_detector_table_divides_by_the_ae_and_keeps_errors_in_one_cell() -> None:
    r = result()
    r.meta["settings"].update(max_batch=256, detector_rate=5000.0)
    r.detectors = [
        detector("knn", 50_000.0, 20_000.0, 30.0),
        detector("ae", 500_000.0, 80_000.0, 20.0),
        {"detector": "pyod:Nope", "error": "DetectorError: no such\nmodel | really"},
    ]
    md = stream_report.markdown(r)
    assert "latency at 5,000 events/s" in md and "÷ ae" in md
    knn = "| knn | 50,000 | 99% | 0.10× | 20,000 | 0.25× | 95% | 25% | 15 ms | 30 ms |"
    assert knn + " 4,900 / 4,800 | 4,000 |" in md
    assert "| ae | 500,000 | 99% | 1.00× | 80,000 | 1.00× |" in md
    error_row = next(line for line in md.splitlines() if line.startswith("| pyod:Nope"))
    assert error_row.count("|") == md.splitlines()[md.splitlines().index(error_row) - 3].count("|")
    assert "no such model / really" in error_row


def test_without_the_ae_the_first_measured_detector_is_the_reference() -> None:
    r = result()
    r.detectors = [{"detector": "bad", "error": "x"}, detector("knn", 50_000.0, 20_000.0, None)]
    assert stream_report.reference_detector(r) == "knn"
    assert "| knn | 50,000 | 99% | 1.00× | 20,000 | 1.00× | 95% | 25% | n/a | n/a |" in (
        stream_report.markdown(r)
    )


def test_a_detectors_only_run_has_no_encoding_tables() -> None:
    r = StreamResult(meta=result().meta, detectors=[detector("ae", 1e5, 5e4, 20.0)])
    md = stream_report.markdown(r)
    assert "### Every detector where it runs" in md
    assert "### Throughput" not in md and "### Latency" not in md and "memory" not in md


def variant_round(r: int, rate: float, p99: float) -> dict[str, Any]:
    return {"position": r, "round": r, "worker": {"vectors_per_s": rate, "cpu_percent": 90.0},
            "latency": {"p50": p99 / 2, "p99": p99, "achieved": 4990.0, "scored_per_s": 4950.0},
            "evidence": {}}  # fmt: skip


def test_variant_table_has_medians_per_round_rates_and_the_targets() -> None:
    from tripwire.bench.stream_variants import COMPARISONS, VARIANTS, _summary, compare

    default = _summary(VARIANTS["default"], [variant_round(0, 50_000.0, 20.0),
                                             variant_round(1, 40_000.0, 30.0),
                                             variant_round(2, 60_000.0, 25.0)], None)  # fmt: skip
    off = _summary(VARIANTS["drift-off"], [variant_round(0, 50_000.0, 20.0),
                                           {"round": 1, "error": "RuntimeError: died | x"},
                                           variant_round(2, 60_000.0, 20.0)], None)  # fmt: skip
    shadow = _summary(VARIANTS["shadow"], [], "setup: DetectorError: no")
    assert default["vectors_per_s"] == 50_000.0 and default["p99"] == 25.0
    assert off["vectors_per_s"] == 55_000.0 and off["measured"] == 2
    r = result()
    r.meta["settings"].update(variant_rate=5000.0, variant_repeats=3)
    r.variants = [default, off, shadow]
    drift, shadowing = COMPARISONS
    r.comparisons = [compare(drift, default, off), compare(shadowing, shadow, default)]
    md = stream_report.markdown(r)
    assert "3 interleaved rounds, medians; latency at 5,000 events/s" in md
    assert ("| default | `none (drift on, no shadow)` | 50,000 | 50,000, 40,000, 60,000 | 90% | "
            "12 ms | 25 ms | 4,990 / 4,950 |") in md  # fmt: skip
    assert "| drift-off | `--no-drift` | 55,000 | 50,000, error, 60,000 |" in md
    assert "| shadow | `--shadow-model bench@candidate` | error: setup: DetectorError: no |" in md
    assert ("| drift monitoring on ÷ off (issue 16): default ÷ drift-off | 0.91 | 1.00, 1.00 | "
            "≥ 0.90 | yes |") in md  # fmt: skip
    assert ("| shadow scoring on ÷ off (issue 17): shadow ÷ default | n/a |  | ≥ 0.60, shadow "
            "p99 ≤ 50 ms (here n/a) | n/a |") in md  # fmt: skip
