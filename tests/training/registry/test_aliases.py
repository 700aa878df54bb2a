"""Aliases (promote, rollback, history, atomic switching) and reference resolution."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from tripwire.core.errors import RegistryError
from tripwire.core.registry import parse_ref
from tripwire.training.registry import Registry


@pytest.fixture
def three(registry: Registry, publish_mean: Callable[..., str]) -> Registry:
    for seed in range(3):
        publish_mean(seed=seed)
    return registry


def test_promote_and_rollback_walk_the_history(three: Registry) -> None:
    reg = three
    assert reg.alias_version("demo", "production") is None
    first = reg.promote("demo", "production", "1")
    assert (first.previous, first.version) == (None, "1")
    reg.promote("demo", "production", "2")
    move = reg.promote("demo", "production", "3")
    assert str(move) == "demo@production: 2 -> 3"
    assert reg.alias_record("demo", "production")["history"] == ["1", "2"]

    back = reg.rollback("demo", "production")
    assert (back.previous, back.version) == ("3", "2")
    assert reg.alias_version("demo", "production") == "2"
    assert reg.rollback("demo", "production").version == "1"
    with pytest.raises(RegistryError, match="no previous version to roll back to"):
        reg.rollback("demo", "production")
    assert reg.alias_version("demo", "production") == "1"


def test_aliases_are_independent(three: Registry) -> None:
    three.promote("demo", "production", "1")
    three.promote("demo", "staging", "3")
    assert three.aliases("demo") == {"production": "1", "staging": "3"}
    record = json.loads((three.root / "demo" / "aliases" / "staging.json").read_text())
    assert record["version"] == "3" and record["history"] == [] and record["updated_at"]


def test_promoting_the_current_version_changes_nothing(three: Registry) -> None:
    three.promote("demo", "production", "2")
    move = three.promote("demo", "production", "2")
    assert (move.previous, move.version) == ("2", "2")
    assert three.alias_record("demo", "production")["history"] == []


def test_promote_refuses_missing_and_corrupt_versions(three: Registry) -> None:
    with pytest.raises(RegistryError, match=r"no version 9 \(versions: 1, 2, 3\)"):
        three.promote("demo", "production", "9")
    (three.version_dir("demo", "2") / "mean.npy").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="refusing to promote.*mean.npy.*sha256 mismatch"):
        three.promote("demo", "production", "2")
    assert three.alias_version("demo", "production") is None


def test_rollback_refuses_a_corrupt_previous_version(three: Registry) -> None:
    three.promote("demo", "production", "1")
    three.promote("demo", "production", "2")
    (three.version_dir("demo", "1") / "mean.npy").unlink()
    with pytest.raises(RegistryError, match="mean.npy: listed in the manifest but missing"):
        three.rollback("demo", "production")
    assert three.alias_version("demo", "production") == "2"


def test_rollback_of_unknown_alias_lists_the_aliases(three: Registry) -> None:
    three.promote("demo", "staging", "1")
    with pytest.raises(RegistryError, match=r"no alias 'production' \(aliases: staging\)"):
        three.rollback("demo", "production")


@pytest.mark.parametrize("alias", ["latest", "7", "-x", "a/b", ""])
def test_reserved_and_invalid_alias_names_are_refused(three: Registry, alias: str) -> None:
    with pytest.raises(RegistryError, match="invalid alias"):
        three.promote("demo", alias, "1")


def test_resolve(three: Registry) -> None:
    three.promote("demo", "production", "2")
    three.promote("demo", "canary", "3")
    assert three.resolve("demo") == ("demo", "2")
    assert three.resolve("demo@production") == ("demo", "2")
    assert three.resolve("demo@canary") == ("demo", "3")
    assert three.resolve("demo@latest") == ("demo", "3")
    assert three.resolve("demo@1") == ("demo", "1")
    assert three.resolve("demo@01") == ("demo", "1")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("demo", r"no 'production' alias.*demo@latest.*versions: 1, 2, 3.*aliases: none"),
        ("demo@7", r"no version 7 \(versions: 1, 2, 3\)"),
        ("demo@qa", r"no alias 'qa' \(aliases: none\)"),
        ("nope@1", r"no model 'nope' in registry .* \(models: demo\)"),
        ("demo@", "bad model reference"),
        ("demo@0", "versions start at 1"),
        ("@1", "bad model reference"),
    ],
)
def test_resolve_errors_say_what_exists(three: Registry, ref: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        three.resolve(ref)


def test_alias_pointing_at_a_missing_version(three: Registry) -> None:
    path = three.alias_path("demo", "production")
    path.parent.mkdir()
    path.write_text(json.dumps({"version": "8", "history": [], "updated_at": "x"}))
    with pytest.raises(RegistryError, match="points at version 8, which does not exist"):
        three.resolve("demo")
    assert [p.message for p in three.verify()] == ["points at version 8, which is missing"]


def test_resolve_in_a_missing_registry(tmp_path) -> None:
    with pytest.raises(RegistryError, match="registry directory .* does not exist"):
        Registry(tmp_path / "nowhere").resolve("demo@1")


def test_parse_ref() -> None:
    assert parse_ref("m.v-2_x@stage_1") == ("m.v-2_x", "stage_1")
    assert parse_ref("m@latest") == ("m", "latest")
    for bad in ("m@a@b", "m@٣", "m@-x", "a b"):
        with pytest.raises(RegistryError):
            parse_ref(bad)


def test_a_concurrent_reader_never_sees_a_torn_alias(three: Registry) -> None:
    reg = three
    reg.promote("demo", "production", "1")
    path = reg.alias_path("demo", "production")
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.append(json.loads(path.read_bytes())["version"])
                seen.append(reg.alias_version("demo", "production") or "None")
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(150):
            reg.promote("demo", "production", "2")
            reg.rollback("demo", "production")
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert len(seen) > 100 and set(seen) <= {"1", "2"}
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "production.json"]


def test_concurrent_promotes_lose_no_history(registry: Registry, publish_mean) -> None:
    """Each promote records the version it replaced: with the lock none is lost."""
    n = 6
    for seed in range(n):
        publish_mean(seed=seed)
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        try:
            start.wait()
            registry.promote("demo", "production", version)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=promote, args=(str(v),)) for v in range(1, n + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    record = registry.alias_record("demo", "production")
    assert sorted([*record["history"], record["version"]], key=int) == [
        str(v) for v in range(1, n + 1)
    ]
