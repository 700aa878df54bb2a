"""``tripwire replay`` as a command: the table, the evidence the gate reads, the PNG, options."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tripwire.cli
from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import anomalous_rows, normal_rows, publish_model
from tests.stream.harness import f32_event, produce
from tripwire.core.config import load_env
from tripwire.core.errors import ConfigError
from tripwire.core.registry.evidence import evidence_problems
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.replay.settings import ReplaySettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("TRIPWIRE_"):
            monkeypatch.delenv(k)


@pytest.fixture(scope="module")
def stream(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A registry with demo@production (1) and demo@candidate (2, half the threshold)."""
    root = tmp_path_factory.mktemp("replay-cli") / "registry"
    prod = publish_model(root)
    publish_model(root, threshold=prod.threshold * 0.5, promote="candidate")
    X = np.vstack([normal_rows(1500, seed=41), anomalous_rows(30, seed=42)])
    topic = f"cli-{np.random.default_rng().integers(1 << 40)}"
    asyncio.run(create_topics(broker.bootstrap, [topic], 2))
    produce(broker.bootstrap, topic, [f32_event(f"e{i}", x, f"k{i % 9}") for i, x in enumerate(X)])
    return root, topic


def main(*argv: str) -> int:
    return tripwire.cli.main(list(argv))


@pytest.mark.integration
def test_the_report_is_a_table_and_evidence_the_gate_reads(
    broker: EmbeddedBroker, stream: tuple[Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], clean_env: None,
) -> None:  # fmt: skip
    root, topic = stream
    out = tmp_path / "replay.json"
    rc = main("replay", "--bootstrap", broker.bootstrap, "--registry", str(root),
              "--input-topic", topic, "--model", "demo@production", "--model", "demo@candidate",
              "--json", str(out))  # fmt: skip
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    doc = json.loads(out.read_text())
    assert evidence_problems(doc) == [] and doc["source"] == "replay"
    assert doc["input"] == {"topic": topic, "partitions": [0, 1], "from": None, "to": None}
    base, cand = doc["models"]["demo@1"], doc["models"]["demo@2"]
    assert base["events"] == cand["events"] == 1530
    assert cand["alerts"] > base["alerts"] > 0
    (c,) = doc["comparisons"]
    assert c["only_baseline"] == 0 and c["both"] == base["alerts"]  # a lower threshold only adds
    assert c["only_candidate"] == cand["alerts"] - base["alerts"]
    assert c["score_shift"]["p50"] > 0  # same scores, threshold halved: every margin grows
    assert f"only demo@2 {c['only_candidate']:,}" in printed.out
    assert "1,530 events compared" in printed.err and "/ 1,530 (100%) records" in printed.err
    # the gate, on a copy of the registry
    copy = tmp_path / "registry"
    shutil.copytree(root, copy)
    gate = ["registry", "promote", "demo", "2", "--registry", str(copy), "--evidence", str(out),
            "--min-events", "1000"]  # fmt: skip
    assert main(*gate, "--max-alert-rate-change", "10%") == 1
    assert (
        "refusing to promote demo@2 to production: the alert rate changes"
        in capsys.readouterr().err
    )
    assert main(*gate, "--max-alert-rate-change", "100000%") == 0
    assert main("registry", "show", "demo@production", "--registry", str(copy), "--history") == 0
    assert "promote 1 -> 2" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_png(broker: EmbeddedBroker, stream: tuple[Path, str], tmp_path: Path,
             clean_env: None) -> None:  # fmt: skip
    root, topic = stream
    png = tmp_path / "replay.png"
    assert main("replay", "--bootstrap", broker.bootstrap, "--registry", str(root),
                "--input-topic", topic, "--model", "demo@production,demo@candidate",
                "--png", str(png), "--no-progress", "--to", "100") == 0  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_matplotlib_is_refused_before_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install 'tripwire\[replay\]'"):
        ReplaySettings(bootstrap="b:1", models=("demo@1",), png="x.png").validate()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"models": ("d@1",)}, "--bootstrap"),
        ({"bootstrap": "b:1"}, "--model"),
        ({"bootstrap": "b:1", "models": ("d@1",), "partitions": ("0", "x")}, "integers"),
        ({"bootstrap": "b:1", "models": ("d@1",), "partitions": ("1", "1")}, "distinct"),
        ({"bootstrap": "b:1", "models": ("d@1",), "max_batch": 0}, "--max-batch"),
    ],
)
def test_settings_name_the_bad_option(kwargs: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        ReplaySettings(**kwargs).validate()


def test_models_from_env_or_options(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("TRIPWIRE_MODELS", "demo@production,demo@candidate")
    assert load_env(ReplaySettings).models == ("demo@production", "demo@candidate")
    parser = tripwire.cli.build_parser(("tripwire.stream.replay.cli",))
    assert parser.parse_args(["replay"]).models == ("demo@production", "demo@candidate")
    args = parser.parse_args(["replay", "--model", "demo@3", "--model", "demo@4",
                              "--from", "2026-11-27T00:00:00Z", "--partitions", "0,2"])  # fmt: skip
    assert args.models == ("demo@3", "demo@4") and args.range_from == "2026-11-27T00:00:00Z"
    assert args.partitions == ("0", "2")
