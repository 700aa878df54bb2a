"""Per-entity alert suppression and its bounded memory."""

from __future__ import annotations

from tripwire.stream.processing.cooldown import Cooldown


def test_cooldown_suppresses_per_entity_for_its_window() -> None:
    c = Cooldown(10.0)
    assert c.allow("a", 0.0) and c.allow("b", 1.0)
    assert not c.allow("a", 9.9) and not c.allow("b", 10.9)
    assert c.allow("a", 10.0) and c.allow("b", 11.0)


def test_cooldown_off_allows_everything_and_remembers_nothing() -> None:
    c = Cooldown(0.0)
    assert all(c.allow("a", float(t)) for t in range(5)) and len(c) == 0


def test_cooldown_memory_is_bounded_by_time_and_by_count() -> None:
    c = Cooldown(10.0, max_entities=100)
    for i in range(1000):
        c.allow(f"e{i}", i * 0.001)
    assert len(c) == 100  # count bound: the oldest are forgotten
    assert c.allow("e0", 1.0)  # forgotten, so it may alert again (safe direction)
    assert not c.allow("e999", 1.0)
    c.allow("late", 100.0)
    assert len(c) == 1  # time bound: everything older than the window expired
