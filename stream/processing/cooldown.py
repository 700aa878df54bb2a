"""Per-entity alert suppression: at most one alert per entity per ``seconds``.

Memory is bounded twice: entries older than the cooldown are dropped as time moves
on (they can no longer suppress anything), and at most ``max_entities`` are kept
(the least recently alerted are forgotten first, so an entity evicted early may
alert again before its cooldown ends — the safe direction for an alerting system).
The state is per worker process and starts empty: after a restart or a rebalance
an entity may alert once more.
"""

from __future__ import annotations

from collections import OrderedDict


class Cooldown:
    """Decide whether an entity may alert now.

    Parameters
    ----------
    seconds : float
        Minimum time between two alerts of one entity; ``0`` disables suppression.
    max_entities : int
        Most entities remembered at once.

    Examples
    --------
    >>> c = Cooldown(60.0, max_entities=10)
    >>> c.allow("card-1", now=0.0), c.allow("card-1", now=30.0), c.allow("card-1", now=61.0)
    (True, False, True)
    """

    def __init__(self, seconds: float, max_entities: int = 100_000) -> None:
        if seconds < 0 or max_entities < 1:
            raise ValueError("seconds must be >= 0 and max_entities >= 1")
        self.seconds = seconds
        self.max_entities = max_entities
        # entity -> time of its last alert; ordered oldest alert first.
        self._last: OrderedDict[str, float] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def __len__(self) -> int:
        return len(self._last)

    def allow(self, entity: str, now: float) -> bool:
        """True if ``entity`` may alert at ``now`` (and record that it did)."""
        if not self.enabled:
            return True
        self._expire(now)
        last = self._last.get(entity)
        if last is not None and now - last < self.seconds:
            return False
        self._last[entity] = now
        self._last.move_to_end(entity)
        while len(self._last) > self.max_entities:
            self._last.popitem(last=False)
        return True

    def _expire(self, now: float) -> None:
        last = self._last
        horizon = now - self.seconds
        while last:
            entity, t = next(iter(last.items()))
            if t > horizon:
                break
            del last[entity]
