"""``--png``: score distributions per version and the alert diff over time.

Needs matplotlib (the ``replay`` extra); ``ReplaySettings.validate`` refuses
``--png`` up front when it is missing, so a long replay never ends without its plot.
"""

from __future__ import annotations

import numpy as np

from tripwire.core.errors import ConfigError
from tripwire.core.registry.evidence import evidence_time
from tripwire.stream.replay.report import DIFF_SERIES, Tally


def plot(tally: Tally, path: str) -> None:
    """Write the PNG of ``tally`` to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--png needs matplotlib: pip install 'tripwire[replay]'") from None
    rows = 1 + len(tally.pairs)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.2 * rows), squeeze=False)
    ax = axes[0][0]
    for m in tally.models:
        values = m.scores.values
        if len(values):
            ax.hist(values, bins=100, histtype="step", log=True, label=f"{m.ref} ({m.key})")
            ax.axvline(m.threshold, linestyle="--", linewidth=0.8)
    ax.set_title("score distributions (dashed: thresholds)")
    ax.set_xlabel("score")
    ax.set_ylabel("events")
    ax.legend(fontsize="small")
    for n, p in enumerate(tally.pairs, start=1):
        ax = axes[n][0]
        a, b = tally.models[p.a].key, tally.models[p.b].key
        bins = sorted(p.bins.counts)
        origin = bins[0] * p.bins.width_ms / 1000.0 if bins else 0.0
        if bins:
            width = p.bins.width_ms / 1000.0
            x = np.array(bins, np.float64) * width - origin
            counts = np.array([p.bins.counts[k] for k in bins])
            bottom = np.zeros(len(bins))
            for col, series in enumerate(DIFF_SERIES):
                label = {"only_baseline": f"only {a}", "only_candidate": f"only {b}",
                         "both": "both"}[series]  # fmt: skip
                ax.bar(x, counts[:, col], width=width, bottom=bottom, align="edge", label=label)
                bottom = bottom + counts[:, col]
        ax.set_title(f"alerts by event time (bins of {p.bins.width_ms / 1000:g} s): {a} vs {b}")
        ax.set_xlabel(f"seconds after {evidence_time(origin)}")
        ax.set_ylabel("alerts")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
