"""How ``tripwire drift`` shows its reports: a table for a person and a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tripwire.core.drift import DriftConfig, DriftReport, FeatureDrift

#: Windows shown in the table; beyond it, quiet windows are left out first.
MAX_ROWS = 40


def table(reports: list[DriftReport], label: str, data: str, config: DriftConfig) -> str:
    """The summary lines, one row per (shown) window, and the last window's top features."""
    alarms = [r for r in reports if r.alarm]
    rows = len(reports) and reports[-1].events
    lines = [
        f"drift of {data} ({rows} rows) against {label}: window {config.drift_window}, "
        f"step {config.drift_step}, false-alarm rate {config.drift_false_alarm_rate:g} per window",
        f"windows {len(reports)}, alarmed {len(alarms)} (alert rate "
        f"{sum(r.rate_alarm for r in reports)}, score {sum(r.score_alarm for r in reports)}, "
        f"features {sum(r.feature_alarm for r in reports)})"
        + (f"; first at event {alarms[0].events}" if alarms else ""),
        "",
        f"{'events':>10}  {'alerts [band]':>18}  {'score KS / crit':>16}  {'drifting':>8}  "
        f"{'largest':>7}  top features",
    ]
    shown = reports if len(reports) <= MAX_ROWS else alarms[:MAX_ROWS]
    lines += [_row(r) for r in shown]
    if len(shown) < len(reports):
        lines.append(f"({len(reports) - len(shown)} windows without alarm not shown)")
    if reports:
        lines += ["", f"top features of the last window (events {reports[-1].events}):"]
        lines += [_feature_line(f) for f in reports[-1].ranked_features()]
    return "\n".join(lines)


def _row(r: DriftReport) -> str:
    band = f"{r.alerts} [{r.band_low},{r.band_high}]" + ("!" if r.rate_alarm else " ")
    ks = f"{r.score_ks:.3f}/{r.score_ks_critical:.3f}" + ("!" if r.score_alarm else " ")
    top = ", ".join(r.top_features()) or "-"
    return (
        f"{r.events:>10}  {band:>18}  {ks:>16}  {r.drifting_features:>8}  "
        f"{r.largest_drift:>7.2f}  {top}"
    )


def _feature_line(f: FeatureDrift) -> str:
    return (
        f"  {f.name!s:<24} drift {f.drift:7.2f}  p {f.p_value:9.2e}  "
        f"psi {f.psi:6.3f}  mean shift {f.mean_shift_sd:+6.2f} sd  "
        f"sd ratio {f.std_ratio:5.2f}"
    )


def plot_reports(path: Path, reports: list[DriftReport], label: str) -> Path:
    """Three panels over the windows: alert rate in its band, score KS, largest drift."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    x = np.array([r.events for r in reports])
    n = np.array([r.window for r in reports], dtype=np.float64)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    try:
        ax = axes[0]
        ax.plot(x, [r.alerts for r in reports] / n, marker=".", label="alert rate")
        ax.fill_between(x, [r.band_low for r in reports] / n, [r.band_high for r in reports] / n,
                        alpha=0.25, label="calibrated band")  # fmt: skip
        ax.set_ylabel("alert rate")
        ax.legend(loc="upper left")
        ax = axes[1]
        ax.plot(x, [r.score_ks for r in reports], marker=".", label="KS distance")
        ax.plot(x, [r.score_ks_critical for r in reports], "k--", label="critical")
        ax.set_ylabel("score KS")
        ax.legend(loc="upper left")
        ax = axes[2]
        ax.plot(x, [r.largest_drift for r in reports], marker=".", label="largest feature drift")
        ax.axhline(1.0, color="black", linestyle="--", label="critical")
        ax.set_ylabel("chi2 / critical")
        ax.set_xlabel("events")
        ax.legend(loc="upper left")
        fig.suptitle(f"drift against {label}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
