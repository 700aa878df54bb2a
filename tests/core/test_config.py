"""Settings namespaces: a command reads only its own variables, and only it reports them."""

from __future__ import annotations

import argparse

import pytest

from tripwire.bench.quality import QualitySettings
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.cli import main
from tripwire.core.config import add_arguments, env_name, load_env
from tripwire.demo import DemoSettings
from tripwire.stream.settings import WorkerSettings

#: every subcommand, as a user types it
COMMANDS = [["worker"], ["train"], ["score"], ["drift"], ["demo"], ["bench", "stream"],
            ["bench", "quality"], ["registry", "list"], ["registry", "promote"]]  # fmt: skip


def test_a_workers_environment_does_not_steer_the_demo_or_the_benchmarks() -> None:
    """The compose worker's TRIPWIRE_REGISTRY/BOOTSTRAP/OUT would have pointed the demo at
    the live registry and topics, and the benchmarks' --out at score's file."""
    worker_env = {"TRIPWIRE_REGISTRY": "/live", "TRIPWIRE_BOOTSTRAP": "kafka:9092",
                  "TRIPWIRE_OUT": "scores.csv", "TRIPWIRE_METRICS_PORT": "9464"}  # fmt: skip
    assert load_env(DemoSettings, worker_env) == DemoSettings()
    assert load_env(StreamBenchSettings, worker_env) == StreamBenchSettings()
    assert load_env(QualitySettings, worker_env) == QualitySettings()
    assert load_env(WorkerSettings, worker_env).registry == "/live"  # the worker's own
    own = {"TRIPWIRE_DEMO_REGISTRY": "/tmp/r", "TRIPWIRE_BENCH_OUT": "out/x"}
    assert load_env(DemoSettings, own).registry == "/tmp/r"
    assert load_env(StreamBenchSettings, own).out == "out/x"
    assert env_name("registry", DemoSettings) == "TRIPWIRE_DEMO_REGISTRY"
    assert env_name("registry", WorkerSettings) == env_name("registry") == "TRIPWIRE_REGISTRY"


#: one variable of each command's settings, each with a value its converter refuses
BAD = {name: "abc" for name in (
    "TRIPWIRE_MAX_BATCH", "TRIPWIRE_EPOCHS", "TRIPWIRE_TOP_K", "TRIPWIRE_DRIFT_WINDOW",
    "TRIPWIRE_MAX_ALERT_RATE_CHANGE", "TRIPWIRE_DEMO_SEED", "TRIPWIRE_BENCH_EVENTS",
    "TRIPWIRE_BENCH_SEEDS",
)}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_bad_variables_break_no_help(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in BAD.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0 and "usage: tripwire" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "variable"),
    [(["demo"], "TRIPWIRE_DEMO_SEED"), (["bench", "stream"], "TRIPWIRE_BENCH_EVENTS"),
     (["score", "--model", "m", "--data", "x.csv", "--out", "y.npy"], "TRIPWIRE_TOP_K")],
)  # fmt: skip
def test_the_command_that_owns_a_bad_variable_names_it(
    command: list[str], variable: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv(variable, "abc")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{variable}='abc'" in err and "Traceback" not in err


def test_an_empty_list_means_none_on_the_command_line_and_in_the_environment() -> None:
    """``--detectors ''`` ("empty = none") once parsed to None, and the stream
    benchmark crashed on it after all its runs, writing no report."""
    env = load_env(
        StreamBenchSettings, {"TRIPWIRE_BENCH_DETECTORS": "", "TRIPWIRE_BENCH_VARIANTS": ""}
    )
    assert env.detectors == () and env.variants == ()
    parser = argparse.ArgumentParser()
    add_arguments(parser, StreamBenchSettings, StreamBenchSettings())
    args = parser.parse_args(["--detectors", "", "--variants", ""])
    assert args.detectors == () and args.variants == ()
