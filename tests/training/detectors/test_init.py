"""``make_detector`` / ``detector_class``: the lookup everyone else calls."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tripwire.core import kinds
from tripwire.core.errors import DetectorError
from tripwire.training.detectors import detector_class, make_detector
from tripwire.training.detectors.ae import AutoEncoder
from tripwire.training.detectors.vae import VAE


def test_builtin_kinds_resolve():
    assert detector_class("ae") is AutoEncoder
    assert detector_class(" vae ") is VAE
    assert detector_class("pyod:ECOD").kind == "pyod:ECOD"
    assert "ae" in kinds.kinds() and "vae" in kinds.kinds()
    # every kind the registry names (families as their examples) resolves to its class
    assert all(detector_class(kind).kind == kind for kind in kinds.examples())


def test_make_detector_passes_seed_and_params():
    det = make_detector("vae", seed=9, n_samples=4, hidden_sizes=[6])
    assert isinstance(det, VAE)
    params = det.get_params()
    assert (params["seed"], params["n_samples"], params["hidden_sizes"]) == (9, 4, [6])


@pytest.mark.parametrize("spec", ["nope", "AE", "pyod", "pyod:", ""])
def test_unknown_kinds_raise(spec):
    with pytest.raises(DetectorError):
        make_detector(spec)


def test_unknown_params_raise_and_name_the_accepted_ones():
    with pytest.raises(DetectorError, match=r"unknown parameter.*'hiden_sizes'.*hidden_sizes"):
        make_detector("ae", hiden_sizes=[4])
    with pytest.raises(DetectorError, match="unknown parameter"):
        make_detector("vae", beta=1.0, n_sample=3)


def test_invalid_values_raise():
    with pytest.raises(DetectorError):
        make_detector("ae", epochs="many")
    with pytest.raises(DetectorError):
        make_detector("vae", n_samples=0)


def test_importing_the_package_does_not_import_torch_or_pyod():
    code = (
        "import sys, tripwire.training.detectors; "
        "print('torch' in sys.modules, 'pyod' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
