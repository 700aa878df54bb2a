"""The README documents what the code does: settings, metrics, commands."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tripwire.core import kinds
from tripwire.core.config import env_name
from tripwire.demo import DemoSettings
from tripwire.stream.observability.metrics import INVALID_REASONS, Metrics
from tripwire.stream.observability.shadow_report import ShadowReportSettings
from tripwire.stream.replay.settings import ReplaySettings
from tripwire.stream.settings import WorkerSettings
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.training.registry.cli import GateSettings
from tripwire.training.settings import ScoreSettings, TrainSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "cls",
    [
        WorkerSettings,
        TrainSettings,
        ScoreSettings,
        DemoSettings,
        GateSettings,
        ShadowReportSettings,
        ReplaySettings,
    ],
)
def test_every_setting_is_documented(cls: type) -> None:
    missing = [
        env_name(f.name, cls)
        for f in dataclasses.fields(cls)
        if f"`{env_name(f.name, cls)}`" not in README
    ]
    assert not missing, f"README configuration reference lacks {missing}"


def test_every_metric_and_dlq_reason_is_documented() -> None:
    metrics = Metrics(CollectorRegistry())
    names = {m.name for m in metrics.registry.collect()}
    missing = [n for n in names if n not in README and f"{n}_total" not in README]
    assert not missing
    assert all(f"`{r}`" in README for r in INVALID_REASONS)
    formats = (ROOT / "docs" / "formats.md").read_text()
    assert all(f"`{r}`" in README and f"`{r}`" in formats for r in DeadLetterReason)


def test_readme_commands_exist_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for verb in re.findall(r"^make (\w[\w-]*)", README, flags=re.M):
        assert re.search(rf"^{verb}:", makefile, flags=re.M), verb
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_the_readme_lists_exactly_the_registered_detector_kinds() -> None:
    table = README.split("| `--model` | what |\n", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `([^`]+)`", table, flags=re.M)
    assert listed == list(kinds.kinds())


@pytest.mark.parametrize("cls", [TrainSettings, DemoSettings])
def test_the_model_option_names_the_registered_kinds(cls: type) -> None:
    (model,) = [f for f in dataclasses.fields(cls) if f.name == "model"]
    assert model.metadata["help"] == f"detector: {kinds.described()}"
    assert f"| `{env_name('model', cls)}` | `--model` |" in README
    row = next(line for line in README.splitlines() if f"`{env_name('model', cls)}`" in line)
    assert row.endswith(f"| {model.metadata['help']} |")
