"""Every docstring example of the installed package and the harness runs.

The doctests are collected from the modules as installed (``tripwire.stream.worker``,
not the file ``stream/worker.py``): ``pytest --doctest-modules`` names a module by
its directory, and the package-dir mapping would give it a second, top-level
``stream`` copy. One test per module that has examples.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

ROOTS = ("tripwire", "tripwire.stream", "tripwire.training", "benchmarks")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = set(ROOTS)
    for root in ROOTS:
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            names.add(info.name)
    return sorted(n for n in names if not n.endswith("__main__"))  # running them runs the CLI


def _examples(module: ModuleType) -> list[doctest.DocTest]:
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
    return [t for t in tests if t.examples]


MODULES = [name for name in _modules() if _examples(importlib.import_module(name))]


def test_the_packages_have_examples() -> None:
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(importlib.import_module(name)):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
