"""The wheel: one top-level name, ``tripwire``, every module in it, built without warnings.

Built the way ``pip install .`` builds it (setuptools' PEP 517 backend, here without
build isolation: the venv's setuptools), from a copy of what the Docker build context
holds, so the checkout is not written to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS: dict[str, str] = PROJECT["tool"]["setuptools"]["package-dir"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The built wheel and everything the backend printed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", PROJECT["project"]["readme"]):
        shutil.copy(REPO / name, src / name)
    for directory in PACKAGE_DIRS.values():
        shutil.copytree(REPO / directory, src / directory,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    build = "import setuptools.build_meta as b, sys; b.build_wheel(sys.argv[1])"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", build, str(tmp / "dist")],
        cwd=src, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    (whl,) = (tmp / "dist").glob("*.whl")
    return whl, output


def test_the_build_prints_no_setuptools_warning(wheel: tuple[Path, str]) -> None:
    _, output = wheel
    assert "Warning" not in output and "!!" not in output, output


def test_tripwire_is_the_only_top_level_name(wheel: tuple[Path, str]) -> None:
    whl, _ = wheel
    with zipfile.ZipFile(whl) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    assert tops == {"tripwire", f"tripwire-{PROJECT['project']['version']}.dist-info"}


def test_every_source_module_is_in_the_wheel(wheel: tuple[Path, str]) -> None:
    whl, _ = wheel
    expected = set()
    for package, directory in PACKAGE_DIRS.items():
        root = REPO / directory
        files = root.glob("*.py") if package == "tripwire" else root.rglob("*.py")
        prefix = package.replace(".", "/")
        expected |= {f"{prefix}/{f.relative_to(root).as_posix()}" for f in files}
    expected |= {f"tripwire/{f.relative_to(REPO / 'tripwire').as_posix()}"
                 for f in (REPO / "tripwire").rglob("*.py")}  # fmt: skip
    with zipfile.ZipFile(whl) as z:
        shipped = {n for n in z.namelist() if n.endswith(".py")}
    assert shipped == expected


def test_installed_wheel_imports_tripwire_not_stream_or_training(
    wheel: tuple[Path, str], tmp_path: Path
) -> None:
    whl, _ = wheel
    site = tmp_path / "site"
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
    # -S: no site module, so not the checkout's editable install; the dependencies
    # come from this venv's site-packages, the package only from the wheel.
    code = (
        "import importlib.util as u, tripwire.stream.worker, tripwire.training.pipeline\n"
        "import tripwire.core.registry, tripwire.stream.compat\n"
        f"assert tripwire.stream.worker.__file__.startswith({str(site)!r})\n"
        "print(u.find_spec('stream'), u.find_spec('training'))"
    )
    paths = [str(site), sysconfig.get_paths()["purelib"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run(
        [sys.executable, "-S", "-P", "-c", code], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None"]
