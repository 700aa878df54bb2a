"""The versioned model registry: ``training`` writes it, ``stream`` reads it.

Import-light (standard library only until a model is actually loaded), because the
stream worker imports it and polls aliases every few seconds.

>>> from training.registry import Registry, load_scorer  # doctest: +SKIP
>>> reg = Registry("registry")  # doctest: +SKIP
>>> version = reg.publish("demo", detector.save, manifest)  # doctest: +SKIP
>>> reg.promote("demo", "production", version)  # doctest: +SKIP
>>> scorer = load_scorer("registry", "demo@production")  # doctest: +SKIP
"""

from __future__ import annotations

from training.registry.loader import load_scorer
from training.registry.manifest import MANIFEST_FILE, SCHEMA_VERSION, validate_manifest
from training.registry.reader import DEFAULT_ALIAS, RegistryReader, parse_ref
from training.registry.store import AliasMove, Registry
from training.registry.verify import Problem

__all__ = [
    "DEFAULT_ALIAS",
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "AliasMove",
    "Problem",
    "Registry",
    "RegistryReader",
    "load_scorer",
    "parse_ref",
    "validate_manifest",
]
