"""``fpr:<rate>``: a target false-positive rate on held-out normal rows."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tripwire.training.thresholds.base import CalibrationData, Threshold, finite_scores

log = logging.getLogger(__name__)

#: Fewer expected calibration scores above the quantile than this draws a warning:
#: the realised rate's relative spread is about ``1 / sqrt(rows * rate)``.
MIN_EXCEEDANCES = 20


class FprThreshold(Threshold):
    """The (1 - rate) quantile of scores of held-out normal rows.

    The training rows are not used: the detector has seen them, so their scores
    are optimistically low and would give more false positives than ``rate``.
    The quantile is taken with ``method="higher"`` (an observed score, rounded up),
    so at most ``rate`` of the calibration rows score strictly above it. ``rows_``
    (the manifest's ``rows``) is how many scores it rests on; fewer than
    ``MIN_EXCEEDANCES / rate`` logs a warning.

    Parameters
    ----------
    rate : float in (0, 1)
        Target false-positive rate.

    Examples
    --------
    >>> import numpy as np
    >>> data = CalibrationData(np.zeros(1), normal_scores=np.arange(100.0))
    >>> FprThreshold(0.05).fit(data).value_
    95.0
    """

    method = "fpr"

    def __init__(self, rate: float = 0.01) -> None:
        super().__init__()
        self.rate = rate

    @property
    def params(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def _fit(self, data: CalibrationData) -> float:
        s = finite_scores(data.normal_scores, "held-out normal scores", self.method)
        self.rows_ = len(s)
        if len(s) * self.rate < MIN_EXCEEDANCES:
            log.warning(
                "threshold %s rests on %d out-of-sample normal scores (%.1f expected above it):"
                " the realised false-positive rate may be far from %g; %d or more would do",
                self.spec(), len(s), len(s) * self.rate, self.rate,
                int(np.ceil(MIN_EXCEEDANCES / self.rate)),
            )  # fmt: skip
        return float(np.quantile(s, 1.0 - self.rate, method="higher"))
