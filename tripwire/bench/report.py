"""Summaries of a quality run: per-dataset means, averages, calibration, markdown, JSON.

"Averaged" always means the mean over datasets of each dataset's mean over seeds,
taken over the datasets where the detector had at least one successful seed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import betabinom, rankdata

from tripwire.bench.detectors import label
from tripwire.bench.quality import QualityResult, RunRecord

METRICS: tuple[str, ...] = (
    "roc_auc", "pr_auc", "score_rate", "fpr", "threshold_rows", "recall", "fit_seconds",
    "score_seconds",
)  # fmt: skip
#: A test split needs this many normal rows before its realised FPR is judged.
MIN_TEST_NORMALS = 500
#: Realised FPR must lie in [low * target, high * target] (0.5% - 2% for 1%).
BAND = (0.5, 2.0)


@dataclass
class Cell:
    """One (dataset, detector): means over its successful seeds."""

    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    n_ok: int = 0
    n_runs: int = 0
    errors: list[str] = field(default_factory=list)


def cells(runs: list[RunRecord]) -> dict[tuple[str, str], Cell]:
    """Per (dataset, detector) means and standard deviations over seeds."""
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[(r.dataset, r.detector)].append(r)
    out = {}
    for key, recs in groups.items():
        ok = [r for r in recs if r.ok]
        cell = Cell(n_ok=len(ok), n_runs=len(recs), errors=[r.error for r in recs if r.error])
        for m in METRICS if ok else ():
            got = [v for v in (getattr(r, m) for r in ok) if v is not None]
            if got:  # the scoring rate is optional (--rate-batch 0)
                values = np.array(got, dtype=np.float64)
                cell.mean[m], cell.std[m] = float(values.mean()), float(values.std())
        out[key] = cell
    return out


def order(result: QualityResult) -> tuple[list[str], list[str]]:
    """Datasets (in run order, loaded ones only) and detectors (as requested)."""
    datasets = [d for d, info in result.datasets.items() if "error" not in info]
    return datasets, list(result.meta["settings"]["detectors"])


def averages(
    table: dict[tuple[str, str], Cell], datasets: list[str], detectors: list[str]
) -> dict[str, dict[str, Any]]:
    """Per detector: every metric averaged over datasets, plus average ranks."""
    out: dict[str, dict[str, Any]] = {}
    for det in detectors:
        ok = [table[(d, det)] for d in datasets if (d, det) in table and table[(d, det)].n_ok]
        row: dict[str, Any] = {m: _mean([c.mean.get(m) for c in ok]) for m in METRICS}
        row["datasets_ok"], row["datasets"] = len(ok), len(datasets)
        out[det] = row
    # Rank only detectors that worked somewhere, over datasets where all of them did.
    ranked = [det for det in detectors if out[det]["datasets_ok"]]
    complete = [d for d in datasets if all(table[(d, det)].n_ok for det in ranked)]
    for metric in ("roc_auc", "pr_auc"):
        ranks = [rankdata([-table[(d, det)].mean[metric] for det in ranked]) for d in complete]
        mean_rank = dict(zip(ranked, np.mean(ranks, axis=0), strict=True)) if ranks else {}
        for det in detectors:
            r = mean_rank.get(det)
            out[det][f"rank_{metric}"] = None if r is None else float(r)
            out[det]["ranked_on"] = len(complete) if r is not None else 0
    return out


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def ideal_in_band(n_cal: int, n_test: int, target: float, low: float, high: float) -> float:
    """P(realised FPR in [low, high]) for a detector whose scores are exchangeable.

    With continuous scores, calibration and test normal rows from one distribution,
    and the threshold at the k-th smallest of ``n_cal`` out-of-sample normal scores (the
    ``method="higher"`` quantile Tripwire's ``fpr`` threshold takes), the chance
    ``p`` that a test normal scores above it is Beta(n_cal - k + 1, k), so the
    number of false positives among ``n_test`` is beta-binomial. This is the
    in-band rate the split sizes allow even for a perfectly calibrated detector.
    """
    k = int(np.quantile(np.arange(n_cal), 1.0 - target, method="higher")) + 1
    dist = betabinom(n_test, n_cal - k + 1, k)
    lo, hi = math.ceil(low * n_test - 1e-9), math.floor(high * n_test + 1e-9)
    return float(dist.cdf(hi) - dist.cdf(lo - 1))


def calibration(result: QualityResult) -> dict[str, Any]:
    """Which runs on datasets with enough test normals hit the FPR band.

    ``expected`` per detector is the sum of :func:`ideal_in_band` over its judged
    runs: how many runs an exchangeable detector would get in band on average.
    """
    target = float(result.meta["settings"]["target_fpr"])
    low, high = BAND[0] * target, BAND[1] * target
    runs = [r for r in result.runs if r.ok and r.n_test_normal >= MIN_TEST_NORMALS]
    judged = sorted({r.dataset for r in runs}, key=list(result.datasets).index)
    per_det: dict[str, dict[str, Any]] = {}
    misses: list[dict[str, Any]] = []
    for r in runs:
        d = per_det.setdefault(r.detector, {"runs": 0, "in_band": 0, "expected": 0.0})
        d["runs"] += 1
        rows = r.threshold_rows or r.n_calibration  # not recorded: the held-out split's
        d["expected"] += ideal_in_band(rows, r.n_test_normal, target, low, high)
        assert r.fpr is not None
        if low <= r.fpr <= high:
            d["in_band"] += 1
        else:
            misses.append({"dataset": r.dataset, "detector": r.detector, "seed": r.seed,
                           "fpr": r.fpr, "threshold_rows": rows,
                           "n_test_normal": r.n_test_normal})  # fmt: skip
    return {"band": [low, high], "min_test_normals": MIN_TEST_NORMALS,
            "datasets": judged, "per_detector": per_det, "misses": misses}  # fmt: skip


def summary(result: QualityResult) -> dict[str, Any]:
    """Averages, per-dataset means and the calibration check, as JSON-ready data."""
    table = cells(result.runs)
    datasets, detectors = order(result)
    return {
        "averaged": averages(table, datasets, detectors),
        "per_dataset": {
            f"{d}/{det}": {"mean": c.mean, "std": c.std, "seeds_ok": c.n_ok, "seeds": c.n_runs}
            for (d, det), c in table.items()
        },
        "calibration": calibration(result),
    }


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric == "fpr":
        return f"{100 * value:.2f}%"
    if metric in ("score_rate", "threshold_rows"):
        return f"{value:,.0f}"
    if metric.endswith("seconds"):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value:.3f}"


def _row(cells_: list[str]) -> str:
    return "| " + " | ".join(cells_) + " |"


def averaged_table(result: QualityResult, avg: dict[str, dict[str, Any]]) -> list[str]:
    """The averaged-over-datasets table, one row per detector."""
    heads = ["detector", "ROC-AUC", "PR-AUC", f"vectors/s (batch {_batch(result)})", "test FPR",
             "threshold rows", "recall", "fit s", "score s", "rank ROC", "rank PR",
             "datasets"]  # fmt: skip
    lines = [_row(heads), _row(["---"] + ["---:"] * (len(heads) - 1))]
    for det, row in avg.items():
        ranks = [f"{row[k]:.2f}" if row[k] is not None else "–"
                 for k in ("rank_roc_auc", "rank_pr_auc")]  # fmt: skip
        lines.append(_row([label(det), *(_fmt(row[m], m) for m in METRICS), *ranks,
                           f"{row['datasets_ok']}/{row['datasets']}"]))  # fmt: skip
    return lines


def _batch(result: QualityResult) -> int:
    return int(result.meta["settings"].get("rate_batch", 256))


def metric_table(
    table: dict[tuple[str, str], Cell], datasets: list[str], detectors: list[str], metric: str
) -> list[str]:
    """Datasets x detectors for one metric; best ROC/PR-AUC per row in bold."""
    lines = [_row(["dataset", *map(label, detectors)]), _row(["---"] + ["---:"] * len(detectors))]
    for d in datasets:
        got = {det: table.get((d, det), Cell()) for det in detectors}
        values = [c.mean[metric] for c in got.values() if metric in c.mean]
        best = max(values) if values and metric in ("roc_auc", "pr_auc") else None
        row = [d]
        for c in got.values():
            if not c.n_ok:
                row.append("ERR")
                continue
            value = c.mean.get(metric)
            text = _fmt(value, metric)
            text = f"**{text}**" if best is not None and value == best else text
            row.append(text + ("*" if c.n_ok < c.n_runs else ""))
        lines.append(_row(row))
    return lines


def calibration_lines(cal: dict[str, Any], detectors: list[str]) -> list[str]:
    low, high = cal["band"]
    lines = [
        f"Judged on the datasets with at least {cal['min_test_normals']} normal rows in the "
        f"test split ({', '.join(cal['datasets']) or 'none'}); a run is in band when its "
        f"realised test FPR is in [{100 * low:.2f}%, {100 * high:.2f}%]. *Ideal* is the "
        "expected number of runs in band for a detector whose calibration and test normal "
        "scores are exchangeable (beta-binomial, from the threshold rows and test normals "
        "alone): thresholds resting on few rows miss the band by chance.",
        "",
        _row(["detector", "runs in band", "ideal", "misses (dataset seed: FPR, threshold rows)"]),
        _row(["---", "---:", "---:", "---"]),
    ]
    total = {"runs": 0, "in_band": 0, "expected": 0.0}
    for det in detectors:
        stats = cal["per_detector"].get(det, {"runs": 0, "in_band": 0, "expected": 0.0})
        miss = [f"{m['dataset']} {m['seed']}: {100 * m['fpr']:.2f}%, {m['threshold_rows']:,}"
                for m in cal["misses"] if m["detector"] == det]  # fmt: skip
        lines.append(_row([label(det), f"{stats['in_band']}/{stats['runs']}",
                           f"{stats['expected']:.1f}", "; ".join(miss) or "–"]))  # fmt: skip
        total = {k: total[k] + stats[k] for k in total}
    lines.append(_row(["all detectors", f"{total['in_band']}/{total['runs']}",
                       f"{total['expected']:.1f}", ""]))  # fmt: skip
    return lines


TITLES = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC (average precision)",
    "fpr": "Realised test FPR at the threshold",
    "threshold_rows": "Rows the threshold rests on (out-of-sample normal scores)",
    "recall": "Recall at the threshold",
    "fit_seconds": "Fit time (s)",
    "score_seconds": "Test-split scoring time (s)",
    "score_rate": "Scoring rate (vectors/s at the rate batch, median of repeats)",
}


def markdown(result: QualityResult) -> str:
    """The results section: run header, averaged table, per-dataset tables, errors."""
    meta, s = result.meta, summary(result)
    table = cells(result.runs)
    datasets, detectors = order(result)
    machine, settings = meta["machine"], meta["settings"]
    out = [
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}; wall time {meta.get('wall_seconds', 0) / 60:.1f} min  ",
        f"Machine: {machine['platform']}, {machine['cpus_usable']} usable CPUs "
        f"(shared with other jobs: times are noisy), torch threads: {settings['torch_threads']}  ",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + _code(meta)
        + "  ",
        f"Seeds {', '.join(settings['seeds'])}; split, fit and threshold "
        f"`fpr:{settings['target_fpr']}` by `tripwire train`'s code (test size "
        f"{settings.get('test_size', '?')}, calibration size "
        f"{settings.get('calibration_size', '?')}; the threshold on the held-out split's "
        "scores pooled with the detector's own out-of-sample scores of training rows where "
        "it has them (the kNN's leave-one-out or held-out rows); threshold rows = how many); "
        "tested on the test split's normal rows and every anomaly; "
        "averaged = mean over datasets of the per-dataset mean over "
        "seeds; rank = mean rank among these detectors (1 = best) over datasets where all "
        f"succeeded; vectors/s = the fitted detector scoring batches of {_batch(result)} test "
        "rows in-process, median of repeats (noisy on a shared host).",
        "",
        "### Averaged over datasets",
        "",
        *averaged_table(result, s["averaged"]),
    ]
    for metric, title in TITLES.items():
        out += ["", f"### {title} per dataset", ""]
        out += metric_table(table, datasets, detectors, metric)
    out += ["", "`*` = some seeds failed (mean over the others); `ERR` = all seeds failed."]
    out += ["", "### Threshold calibration", "", *calibration_lines(s["calibration"], detectors)]
    out += ["", "### Errors", ""]
    errors = [f"- {name}: {info['error']}" for name, info in result.datasets.items()
              if "error" in info]  # fmt: skip
    errors += [f"- {r.dataset} / {r.detector} / seed {r.seed}: {r.error}"
               for r in result.runs if not r.ok]  # fmt: skip
    out += errors or ["None."]
    return "\n".join(out) + "\n"


def _code(meta: dict[str, Any]) -> str:
    """The checkout's revision, when the run recorded one (the project's harness does)."""
    if "code" not in meta:
        return ""
    code = meta["code"] or "unknown"
    if code.endswith("+dirty"):
        return f"; code {code.removesuffix('+dirty')} (+dirty: uncommitted edits in the checkout)"
    return f"; code {code}"


def write(result: QualityResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``quality.md`` and ``quality.json`` (raw runs + summary) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "quality.md", out_dir / "quality.json"
    md.write_text("# Detection quality\n\n" + markdown(result), encoding="utf-8")
    payload = {**result.to_dict(), "summary": summary(result)}
    js.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return md, js
