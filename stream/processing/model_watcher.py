"""The serving model: loaded at start, then hot-reloaded when its alias moves.

``load_initial`` refuses to start on a model that cannot serve. ``ModelWatcher``
polls the alias (one small file read); when it points at another version, that
version is loaded and verified off the event loop (``check`` runs in a thread) and
becomes ``current`` atomically. A micro-batch takes ``current`` once when it
starts and keeps that scorer to its end, so a swap always falls between batches
and every output names the version that scored it.

Every failed reload, whatever its cause, keeps the old version serving, counts
one ``tripwire_model_reloads_total{result="failure"}`` and logs one ERROR line
ending "still serving version N". A reload fails when the alias cannot be read
(garbage JSON, a symlink, a newer alias schema, I/O errors), is unset (its file
or model removed), or names a version that fails to load (missing or
half-written directory, sha256 mismatch, newer manifest schema, broken weights,
anything outside the registry — see ``tripwire.core.registry.load_scorer``),
whose detector is not batch independent, or whose feature schema (count and
names) differs from the serving model's: the producers of the input topic cannot
have changed with it. The same failure is counted and logged again only after
``retry_after`` seconds (a refused version is then tried again, in case it was
being repaired), so a registry that stays broken keeps the alert firing without
a line per poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tripwire.core.errors import ModelLoadError
from tripwire.core.registry import RegistryReader, load_scorer
from tripwire.core.registry.manifest import LATEST
from tripwire.core.scorer import Scorer
from tripwire.core.untrusted import escaped
from tripwire.stream.observability.metrics import Metrics

log = logging.getLogger(__name__)

Loader = Callable[[str, str], Scorer]


def serving_problem(scorer: Scorer) -> str | None:
    """Why ``scorer`` cannot serve a stream, or ``None``."""
    if not type(scorer.detector).batch_independent:
        return (
            f"detector {type(scorer.detector).__name__} is not batch independent: "
            "its score of an event would depend on the other events of its micro-batch"
        )
    return None


def load_initial(registry: str, ref: str, loader: Loader = load_scorer) -> Scorer:
    """Load the model to start with; ``ModelLoadError`` if it cannot serve."""
    scorer = loader(registry, ref)
    problem = serving_problem(scorer)
    if problem is not None:
        raise ModelLoadError(ref, problem)
    return scorer


class AliasWatcher:
    """Follows ``name@alias`` in the registry and swaps in verified versions.

    The mechanics shared by the serving model (:class:`ModelWatcher`) and the shadow
    (:class:`tripwire.stream.processing.shadow.ShadowWatcher`); a subclass says what a
    swap and a failure mean (``_swapped``, ``_failed``) and which features a version
    must have (``_reference``).

    Parameters
    ----------
    registry : str
        Registry directory.
    name, alias : str
        The model and the alias to follow.
    scorer : Scorer or None
        The version in use now (``None``: none yet).
    retry_after : float
        Seconds before a refused version is tried again.
    """

    def __init__(
        self,
        registry: str,
        name: str,
        alias: str,
        scorer: Scorer | None,
        *,
        retry_after: float = 60.0,
        loader: Loader = load_scorer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.name = name
        self.alias = alias
        self.retry_after = retry_after
        self._loader = loader
        self._clock = clock
        self._current = scorer
        #: failure key (a version, or the alias's problem) -> when it was last counted
        self._refused: dict[str, float] = {}

    def check(self) -> str | None:
        """Poll the alias once; load, verify and swap in a new version.

        Blocking (reads files, may load a model): run it in a thread. Never
        raises. Returns ``"success"`` or ``"failure"`` when a reload was tried or
        failed (and counted), else ``None``.
        """
        try:
            return self._check()
        except Exception as e:  # whatever broke, the serving model stays and it is counted
            return self._refuse(f"alias:{type(e).__name__}", f"reload check failed: {e!r}")

    def _check(self) -> str | None:
        try:
            version = self._target()
        except Exception as e:  # garbage JSON, a symlink, I/O: a failed reload all the same
            return self._refuse(f"alias:{e}", f"cannot read the alias: {e}")
        if version is None:
            return self._refuse("alias:unset", "the alias is unset (no alias file or model)")
        self._refused = {k: t for k, t in self._refused.items() if not k.startswith("alias:")}
        if self._current is not None and version == self._current.version:
            return None
        if self._recently(version):
            return None
        incompatible = False
        try:
            scorer = self._loader(self.registry, f"{self.name}@{version}")
            problem = serving_problem(scorer) or self._schema_problem(scorer)
            incompatible = problem is not None
        except ModelLoadError as e:
            problem = e.problem
        except Exception as e:  # a broken model must never take the worker down
            problem = f"{type(e).__name__}: {e}"
        if problem is not None:
            return self._refuse(version, f"-> version {version}: {problem}", incompatible)
        self._swap(scorer)
        return "success"

    def _target(self) -> str | None:
        """The version the followed alias names (``latest``: the highest version)."""
        reader = RegistryReader(self.registry)
        if self.alias == LATEST:
            versions = reader.versions(self.name)
            return versions[-1] if versions else None
        return reader.alias_version(self.name, self.alias)

    def _recently(self, key: str) -> bool:
        """True if the failure ``key`` was counted less than ``retry_after`` s ago."""
        failed_at = self._refused.get(key)
        return failed_at is not None and self._clock() - failed_at < self.retry_after

    def _reference(self) -> tuple[str, ...] | None:
        """The feature names a new version must have (``None``: any)."""
        return None if self._current is None else self._current.feature_names

    def _schema_problem(self, scorer: Scorer) -> str | None:
        old, new = self._reference(), scorer.feature_names
        if old is None or new == old:
            return None
        if len(new) != len(old):
            return f"feature count {len(new)} != serving model's {len(old)}"
        diff = [f"{a!r}->{b!r}" for a, b in zip(old, new, strict=True) if a != b]
        return f"feature names differ from the serving model's: {', '.join(diff[:5])}"

    def _refuse(self, key: str, problem: str, incompatible: bool = False) -> str | None:
        """Count and log one failed reload (once per ``retry_after`` for the same ``key``)."""
        if self._recently(key):
            return None
        self._refused[key] = self._clock()
        self._failed(problem, incompatible)
        return "failure"

    def _swap(self, scorer: Scorer) -> None:
        old, self._current = self._current, scorer  # one reference swap: atomic
        self._refused.pop(scorer.version, None)
        self._swapped(scorer, old)

    def _failed(self, problem: str, incompatible: bool) -> None:
        """Count and log a failed reload (``incompatible``: loaded, but cannot serve here)."""
        raise NotImplementedError

    def _swapped(self, scorer: Scorer, old: Scorer | None) -> None:
        """Count and log that ``scorer`` replaced ``old``."""
        raise NotImplementedError


class ModelWatcher(AliasWatcher):
    """Follows ``name@alias`` for the serving model (see :class:`AliasWatcher`).

    Parameters
    ----------
    registry, name, alias, retry_after
        As for :class:`AliasWatcher`.
    scorer : Scorer
        The model serving now.
    metrics : Metrics
    """

    def __init__(
        self,
        registry: str,
        name: str,
        alias: str,
        scorer: Scorer,
        metrics: Metrics,
        *,
        retry_after: float = 60.0,
        loader: Loader = load_scorer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            registry, name, alias, scorer, retry_after=retry_after, loader=loader, clock=clock
        )
        self._serving = scorer
        self.metrics = metrics
        metrics.set_model(scorer.name, scorer.version, scorer.threshold)

    @property
    def current(self) -> Scorer:
        """The scorer to use for the next micro-batch."""
        return self._serving

    def _failed(self, problem: str, incompatible: bool) -> None:
        self.metrics.reloads.labels(result="failure").inc()
        log.error(
            "model reload refused: %s@%s %s; still serving version %s",
            self.name, self.alias, escaped(problem, 1000), self._serving.version,
        )  # fmt: skip

    def _swapped(self, scorer: Scorer, old: Scorer | None) -> None:
        self._serving = scorer
        self.metrics.reloads.labels(result="success").inc()
        self.metrics.set_model(scorer.name, scorer.version, scorer.threshold)
        log.info(
            "model reloaded: %s@%s now serves version %s (was %s), threshold %.6g",
            self.name, self.alias, scorer.version, old.version if old else "none",
            scorer.threshold,
        )  # fmt: skip
