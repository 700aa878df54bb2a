"""Detector kinds -> classes, found through the ``tripwire.detectors`` entry points."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from tripwire.core import kinds
from tripwire.core.errors import DetectorError


def test_the_builtin_entry_point_names_training_detectors() -> None:
    (ep,) = [e for e in metadata.entry_points(group=kinds.ENTRY_POINT_GROUP) if e.name == "builtin"]
    assert ep.value == "tripwire.training.detectors"


def test_a_fresh_process_finds_the_builtin_kinds_without_importing_training_first() -> None:
    code = (
        "import sys\n"
        "from tripwire.core.kinds import detector_class\n"
        "assert 'tripwire.training' not in sys.modules\n"
        "print(detector_class('ae').__module__, detector_class('pyod:ECOD').kind)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tripwire.training.detectors.ae", "pyod:ECOD"]


def test_unknown_kinds_list_every_registered_one() -> None:
    assert kinds.kinds() == ("ensemble", "knn", "ae", "vae", "pyod:<Name>")
    with pytest.raises(DetectorError, match=r"choose one of ensemble, knn, ae, vae, pyod:<Name>"):
        kinds.detector_class("nope")
