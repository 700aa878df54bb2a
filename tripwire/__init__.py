"""Tripwire: the ``tripwire`` command, the demo and the benchmarks.

This package is the composition root: it may import both ``training`` and
``stream``; neither of them imports it (except ``tripwire.embedded`` for tests).
"""

__version__ = "0.1.0"
