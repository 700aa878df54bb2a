"""Base class for the torch detectors: training loop, early stopping, scoring, I/O.

``DeepDetector`` owns everything that is the same for every network (PyOD's
``base_dl.py`` split): standardisation, a seeded validation split, mini-batch Adam,
early stopping that restores the best weights, batched scoring and safetensors
weights. A subclass supplies the ``nn.Module`` (its own small class), the loss and
the per-row score.

Determinism: all torch randomness (weight init, shuffling, dropout, sampling)
happens inside ``torch.random.fork_rng`` seeded from ``seed``, so fitting twice
with one seed gives the same weights and the caller's global RNG state is left as
it was. (``fork_rng`` is process-global: do not fit two detectors in parallel
threads of one process.) Scoring does not run torch: the fitted network is packed
into arrays once (``tripwire.training.detectors.layers``) and a numba kernel scores one row
at a time with the same instructions whatever the batch, the row's position in it
or its address, so a row's score and contributions are the same bits in any batch
by construction (a BLAS matrix multiply gives no such guarantee).
"""

from __future__ import annotations

import logging
import math
import sys
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from tripwire.core.detector import Detector
from tripwire.core.errors import DetectorError
from tripwire.training.detectors.scaling import Standardizer

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.safetensors"

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

#: One training step's loss terms; ``"loss"`` is minimised, the rest are logged.
LossTerms = dict[str, torch.Tensor]
#: Scores standardised float32 rows (n, d) into float64 ``scores`` (n,) and float32
#: ``contributions`` (n, d), row by row: ``score_rows(Z, scores, contributions)``.
RowScorer = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def mlp(
    sizes: list[int], activation: str, dropout: float, batch_norm: bool = False
) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]``, each followed by [batch norm,]
    activation [and dropout]."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(nn.Linear(n_in, n_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def parse_sizes(value: Any, name: str) -> list[int] | None:
    """Accept ``None``, a sequence of ints or a comma-separated string like ``"64,32"``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    try:
        sizes = [int(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{name} must be a list of positive ints, got {value!r}") from exc
    if not sizes or any(s < 1 for s in sizes):
        raise DetectorError(f"{name} must be a non-empty list of positive ints, got {value!r}")
    return sizes


class DeepDetector(Detector):
    """Torch detector trained on standardised rows with early stopping.

    Parameters
    ----------
    seed : int
        Seeds the validation split, weight init, shuffling, dropout and sampling.
    epochs : int
        Maximum number of passes over the training rows.
    batch_size : int
        Rows per optimiser step.
    lr, weight_decay : float
        Adam learning rate and L2 penalty.
    patience : int
        Stop after this many epochs without a validation-loss improvement; the
        best epoch's weights are restored.
    min_delta : float
        Relative improvement of the validation loss that counts as progress.
    validation_fraction : float
        Share of the fit rows held out for early stopping (0 disables the split:
        the training loss is monitored instead).
    hidden_sizes : list of int or None
        Encoder layer sizes; ``None`` derives them from the feature count.
    activation : str
        One of ``relu, leaky_relu, elu, gelu, tanh, sigmoid``.
    dropout : float
        Dropout after every hidden layer while training (0 = off).
    """

    fitted_attribute = "module_"
    #: ``module_`` and its :class:`RowScorer`, built on first use.
    _compiled_: tuple[nn.Module, RowScorer] | None = None

    def __init__(
        self,
        seed: int = 0,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 10,
        min_delta: float = 1e-4,
        validation_fraction: float = 0.1,
        hidden_sizes: list[int] | str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.validation_fraction = float(validation_fraction)
        self.hidden_sizes = parse_sizes(hidden_sizes, "hidden_sizes")
        self.activation = str(activation)
        self.dropout = float(dropout)
        self._check_params()

    def _check_params(self) -> None:
        problems = []
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            problems.append("epochs, batch_size and patience must be >= 1")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.min_delta >= 0):
            problems.append("lr must be > 0, weight_decay and min_delta >= 0")
        if not 0 <= self.validation_fraction < 1:
            problems.append("validation_fraction must be in [0, 1)")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be in [0, 1)")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {sorted(ACTIVATIONS)}")
        if problems:
            raise DetectorError(f"{self.kind}: " + "; ".join(problems))

    # -- what a subclass supplies ------------------------------------------------

    @abstractmethod
    def _build_module(self, n_features: int) -> nn.Module:
        """A fresh network for ``n_features`` inputs (called inside the seeded RNG)."""

    @abstractmethod
    def _loss(self, module: nn.Module, batch: torch.Tensor) -> LossTerms:
        """Mean loss over ``batch`` (n, d) in standardised space, key ``"loss"``."""

    @abstractmethod
    def _row_scorer(self, module: nn.Module) -> RowScorer:
        """Pack the fitted ``module`` (eval mode) into a function scoring rows.

        The function writes raw float64 scores (n,) and non-negative float32
        contributions (n, d) of standardised rows into the given arrays, each row a
        function of that row alone (a kernel built on ``tripwire.training.detectors.layers``);
        it must not keep per-call state (it is shared by every call, possibly from
        several threads).
        """

    def _after_fit(self, Z: np.ndarray) -> None:
        """Hook run on the standardised fit rows once the best weights are restored."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        """Read back what :meth:`_extra_state` wrote."""

    # -- fitting -------------------------------------------------------------

    def fit(self, X: np.ndarray) -> Self:
        """Train on rows ``X`` of shape (n_samples, n_features), assumed normal."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise DetectorError(f"{self.kind}: need at least 2 rows of features, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise DetectorError(f"{self.kind}: training data contains NaN or inf")
        self.scaler_ = Standardizer().fit(X)
        Z = self.scaler_.transform(X)
        train_idx, val_idx = self._split(len(Z))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = self._build_module(Z.shape[1])
            self.history_: list[dict[str, float]] = []
            self._train(module, torch.from_numpy(Z[train_idx]), torch.from_numpy(Z[val_idx]))
        self.module_ = module.eval()
        self.n_features_ = Z.shape[1]
        self._after_fit(Z)
        return self

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(n)
        n_val = int(round(n * self.validation_fraction))
        if n_val < 1 or n - n_val < 1:
            return np.sort(perm), perm[:0]
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def _train(self, module: nn.Module, train: torch.Tensor, val: torch.Tensor) -> None:
        opt = torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best_loss, best_state, wait = math.inf, _copy_state(module), 0
        bar = tqdm(
            range(1, self.epochs + 1),
            desc=f"train {self.kind}",
            unit="epoch",
            disable=not sys.stderr.isatty(),
            leave=False,
        )
        for epoch in bar:
            terms = self._train_epoch(module, opt, train)
            val_loss = self._validation_loss(module, val) if len(val) else terms["loss"]
            if not math.isfinite(val_loss):
                raise DetectorError(
                    f"{self.kind}: training diverged (loss {val_loss} at epoch {epoch});"
                    " try a lower lr"
                )
            self.history_.append({"epoch": epoch, **terms, "val_loss": val_loss})
            bar.set_postfix(loss=f"{terms['loss']:.4g}", val=f"{val_loss:.4g}")
            logger.debug("%s epoch %d: %s val_loss=%.6g", self.kind, epoch, terms, val_loss)
            if best_loss == math.inf or val_loss < best_loss - self.min_delta * abs(best_loss):
                best_loss, best_state, wait = val_loss, _copy_state(module), 0
                self.best_epoch_ = epoch
            else:
                wait += 1
                if wait >= self.patience:
                    break
        bar.close()
        module.load_state_dict(best_state)
        self.best_loss_ = best_loss
        self.epochs_trained_ = len(self.history_)
        logger.info(
            "%s: trained %d epochs, best epoch %d, best validation loss %.6g",
            self.kind, self.epochs_trained_, self.best_epoch_, best_loss,
        )  # fmt: skip

    def _train_epoch(
        self, module: nn.Module, opt: torch.optim.Optimizer, train: torch.Tensor
    ) -> dict[str, float]:
        module.train()
        order = torch.randperm(len(train))
        sums: dict[str, float] = {}
        for start in range(0, len(train), self.batch_size):
            batch = train[order[start : start + self.batch_size]]
            terms = self._loss(module, batch)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(batch)
        return {key: total / len(train) for key, total in sums.items()}

    def _validation_loss(self, module: nn.Module, val: torch.Tensor) -> float:
        module.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(val), 4096):
                batch = val[start : start + 4096]
                total += float(self._loss(module, batch)["loss"]) * len(batch)
        return total / len(val)

    # -- scoring -------------------------------------------------------------

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Score rows ``X`` (n, n_features); higher = more anomalous.

        Returns float64 scores of shape (n,) and non-negative per-feature
        contributions of shape (n, n_features) in the network's float32 (converting
        them all to float64 cost a noticeable share of a big batch; callers use a
        few rows). Rows with NaN/inf give NaN/inf.
        """
        raw, contrib = self._score_standardised(self._standardise(X))
        return self._finish_scores(raw), contrib

    def _score_standardised(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw float64 scores (n,) and float32 contributions (n, d) of standardised rows."""
        Z = np.ascontiguousarray(Z, dtype=np.float32)
        scores = np.empty(len(Z), dtype=np.float64)
        contrib = np.empty(Z.shape, dtype=np.float32)
        if len(Z):
            self._compiled_scorer()(Z, scores, contrib)
        return scores, contrib

    def _compiled_scorer(self) -> RowScorer:
        """The :class:`RowScorer` of ``module_``, packed once per module."""
        compiled = self._compiled_
        if compiled is None or compiled[0] is not self.module_:
            compiled = self._compiled_ = (self.module_, self._row_scorer(self.module_))
        return compiled[1]

    def _finish_scores(self, raw: np.ndarray) -> np.ndarray:
        """Map raw float64 scores to reported scores (identity unless overridden)."""
        return raw

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise DetectorError(
                f"{self.kind}: expected an array of shape (n, {self.n_features_}), got {X.shape}"
            )
        return self.scaler_.transform(X)

    # -- persistence ---------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "n_features": self.n_features_,
            "scaler": self.scaler_.to_dict(),
            "epochs_trained": self.epochs_trained_,
            "best_epoch": self.best_epoch_,
            "best_loss": self.best_loss_,
            **self._extra_state(),
        }

    def save(self, directory: Path) -> list[str]:
        """Write ``weights.safetensors`` (no pickle) into ``directory``."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.module_.state_dict().items()}
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"kind": self.kind})
        return [WEIGHTS_FILE]

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], state: dict[str, Any]) -> Self:
        """Rebuild from ``weights.safetensors`` + manifest params/state; never unpickles."""
        try:
            det = cls(**params)
        except TypeError as exc:
            raise DetectorError(f"{cls.kind}: invalid parameters {params}: {exc}") from exc
        try:
            n_features = int(state["n_features"])
            det.scaler_ = Standardizer.from_dict(state["scaler"])
            det.epochs_trained_ = int(state["epochs_trained"])
            det.best_epoch_ = int(state["best_epoch"])
            det.best_loss_ = float(state["best_loss"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"{cls.kind}: invalid detector state: {exc!r}") from exc
        if det.scaler_.mean_.shape != (n_features,):
            raise DetectorError(f"{cls.kind}: scaler does not match n_features={n_features}")
        det._restore_extra_state(state)
        with torch.random.fork_rng(devices=[]):
            module = det._build_module(n_features)
        path = Path(directory) / WEIGHTS_FILE
        try:
            module.load_state_dict(load_file(str(path), device="cpu"), strict=True)
        except Exception as exc:  # safetensors raises its own error type for bad files
            raise DetectorError(f"{cls.kind}: cannot load weights from {path}: {exc}") from exc
        det.module_ = module.eval()
        det.n_features_ = n_features
        det.history_ = []
        return det


def _copy_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
