"""``tripwire worker``: its --help, its refusal to start without a model or a port."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

from tripwire.stream.settings import WorkerSettings


def test_help_documents_every_setting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tripwire", "worker", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    for f in fields(WorkerSettings):
        option = "--model" if f.name == "model_ref" else "--" + f.name.replace("_", "-")
        assert option in out, option
        assert f"TRIPWIRE_{f.name.upper()}" in out, f.name
    assert "docs/formats.md" in out


def test_worker_refuses_to_start_without_a_model(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire", "worker", "--bootstrap", "127.0.0.1:1",
         "--model", "nope", "--registry", str(tmp_path), "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "cannot load model nope" in proc.stderr


def test_a_taken_metrics_port_is_a_clear_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "tripwire", "worker", "--bootstrap", "127.0.0.1:1",
             "--model", "m", "--metrics-host", "127.0.0.1", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in proc.stderr


def test_the_worker_parses_with_its_module_alone() -> None:
    """`tripwire worker` imports only its own command module (it must answer /healthz
    within its first second); that module is the one the full CLI registers."""
    from tripwire.cli import COMMAND_MODULES, FAST_COMMANDS, command_of

    assert set(FAST_COMMANDS.values()) <= set(COMMAND_MODULES)
    assert command_of(["--log-level", "DEBUG", "worker", "--max-batch", "8"]) == "worker"
    assert command_of(["--log-level=DEBUG", "train"]) == "train"
    code = (
        "import sys; from tripwire.cli import build_parser, FAST_COMMANDS; "
        "build_parser((FAST_COMMANDS['worker'],)); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('stream', 'training') "
        "or m.startswith(('tripwire.training', 'tripwire.bench', 'torch', 'faust'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "[]", out.stdout
