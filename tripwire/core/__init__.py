"""The shared room: what ``tripwire.training`` and ``tripwire.stream`` both use.

- :mod:`tripwire.core.errors`: the exception hierarchy (root ``TripwireError``);
- :mod:`tripwire.core.config`: settings dataclasses <-> ``TRIPWIRE_*`` env vars and
  CLI options;
- :mod:`tripwire.core.detector`: the ``Detector`` contract;
  :mod:`tripwire.core.kinds`: detector kind -> class (training's detectors register
  through the ``tripwire.detectors`` entry-point group);
- :mod:`tripwire.core.scorer`: ``Scorer``, the one scoring path of ``tripwire score``
  and the worker;
- :mod:`tripwire.core.registry`: the read side of the model registry (resolve a
  reference, verify a version, load its scorer).

This package imports neither ``tripwire.training`` nor ``tripwire.stream``
(enforced by import-linter, see ``[tool.importlinter]`` in pyproject.toml).
"""
