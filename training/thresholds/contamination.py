"""``contamination:<c>``: PyOD-style, flag a fraction ``c`` of the training rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from tripwire.training.thresholds.base import CalibrationData, Threshold, finite_scores


class ContaminationThreshold(Threshold):
    """The (1 - c) quantile of training-data scores (PyOD's ``threshold_``).

    Useful when training data is unlabelled and known to hold about a fraction
    ``c`` of anomalies. Quantile rounded up to an observed score, so at most ``c``
    of the training rows score strictly above it.

    Parameters
    ----------
    contamination : float in (0, 1)

    Examples
    --------
    >>> import numpy as np
    >>> data = CalibrationData(np.arange(10.0), normal_scores=np.zeros(1))
    >>> ContaminationThreshold(0.2).fit(data).value_
    8.0
    """

    method = "contamination"

    def __init__(self, contamination: float = 0.1) -> None:
        super().__init__()
        self.contamination = contamination

    @property
    def params(self) -> dict[str, Any]:
        return {"contamination": self.contamination}

    def _fit(self, data: CalibrationData) -> float:
        s = finite_scores(data.train_scores, "training scores", self.method)
        return float(np.quantile(s, 1.0 - self.contamination, method="higher"))
