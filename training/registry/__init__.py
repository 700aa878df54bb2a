"""The write side of the versioned model registry: publish, aliases, verify, gc.

``training`` writes the registry, ``stream`` reads it through
:mod:`tripwire.core.registry` (resolve, verify, load). :class:`Registry` is a
``RegistryReader`` that can also publish and move aliases.

>>> from tripwire.core.registry import load_scorer  # doctest: +SKIP
>>> from tripwire.training.registry import Registry  # doctest: +SKIP
>>> reg = Registry("registry")  # doctest: +SKIP
>>> version = reg.publish("demo", detector.save, manifest)  # doctest: +SKIP
>>> reg.promote("demo", "production", version)  # doctest: +SKIP
>>> scorer = load_scorer("registry", "demo@production")  # doctest: +SKIP
"""

from __future__ import annotations

from tripwire.training.registry.store import AliasMove, Registry
from tripwire.training.registry.verify import Problem

__all__ = ["AliasMove", "Problem", "Registry"]
