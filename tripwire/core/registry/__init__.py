"""The read side of the versioned model registry: ``training`` writes it, ``stream`` reads it.

Import-light (standard library only until a model is actually loaded), because the
stream worker imports it and polls aliases every few seconds. The writer
(publish, aliases, gc, the ``tripwire registry`` command) is
:mod:`tripwire.training.registry`.

>>> from tripwire.core.registry import RegistryReader, load_scorer, parse_ref
>>> parse_ref("demo@production")
('demo', 'production')
>>> scorer = load_scorer("registry", "demo@production")  # doctest: +SKIP
"""

from __future__ import annotations

from tripwire.core.registry.loader import load_scorer
from tripwire.core.registry.manifest import MANIFEST_FILE, SCHEMA_VERSION, validate_manifest
from tripwire.core.registry.reader import DEFAULT_ALIAS, RegistryReader, parse_ref

__all__ = [
    "DEFAULT_ALIAS",
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "RegistryReader",
    "load_scorer",
    "parse_ref",
    "validate_manifest",
]
