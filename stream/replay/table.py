"""The replay report as a table on the terminal."""

from __future__ import annotations

from typing import Any

from tripwire.stream.replay.report import Tally


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), *(fmt.format(*r) for r in rows)]


def render(tally: Tally, doc: dict[str, Any], top_entities: int) -> str:
    """The terminal report of ``tally`` (``doc``: its evidence document)."""
    lines = [f"replay of {doc['input']['topic']} partitions {doc['input']['partitions']} "
             f"from {doc['input']['from'] or 'the beginning'} "
             f"to {doc['input']['to'] or 'the end'}", ""]  # fmt: skip
    header = ["model", "version", "threshold", "events", "alerts", "rate", "p50", "p90",
              "p99", "max", "refused", "uncompared"]  # fmt: skip
    rows = []
    for m in tally.models:
        q = m.scores.quantiles()
        rows.append([
            m.ref, m.key, _g(m.threshold), f"{m.events:,}", f"{m.alerts:,}",
            f"{m.alerts / m.events:.3%}" if m.events else "-",
            *(_g(q.get(k)) for k in ("p50", "p90", "p99", "max")),
            f"{sum(m.refused.values()):,}", f"{m.uncompared:,}",
        ])  # fmt: skip
    lines += _rows(header, rows)
    for m in tally.models:
        if m.refused:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(m.refused.items()))
            lines.append(f"  {m.key} refused (as dead letters): {reasons}")
        if not m.scores.exact:
            lines.append(f"  {m.key} quantiles from a uniform sample of "
                         f"{m.scores.capacity:,} of {m.scores.seen:,} scores")  # fmt: skip
    for p, c in zip(tally.pairs, doc["comparisons"], strict=True):
        a, b = tally.models[p.a], tally.models[p.b]
        counts = f"only {a.key} {p.only_a:,}, only {b.key} {p.only_b:,}, both {p.both:,}"
        lines += ["", f"{a.ref} ({a.key}) -> {b.ref} ({b.key}): {counts}"]
        shift = c.get("score_shift")
        if shift:
            lines.append("  score shift, (score - threshold) of the candidate minus the "
                         f"baseline's, per event: p50 {_g(shift['p50'])}, p90 "
                         f"{_g(shift['p90'])}, p99 {_g(shift['p99'])}")  # fmt: skip
        top = p.top_entities(top_entities)
        if top:
            lines.append("  entities most affected (alerts only baseline / only candidate):")
            lines += [f"    {e!r}: {x:,} / {y:,}" for e, x, y in top]
        if p.untracked:
            lines.append(f"  ({p.untracked:,} changed alerts of entities beyond the "
                         "tracked ones are counted, not listed)")  # fmt: skip
    lines += _labels(doc)
    return "\n".join(lines) + "\n"


def _labels(doc: dict[str, Any]) -> list[str]:
    if doc["labels"] is None:
        return []
    lab = doc["labels"]
    lines = ["", f"labels {lab['source']}: {lab['labelled_events']:,} labelled events, "
                 f"{lab['positives']:,} anomalous"]  # fmt: skip
    header = ["version", "", "tp", "fp", "fn", "tn", "precision", "recall", "f1"]
    rows = []
    for key, m in doc["models"].items():
        s = m["labels"]
        rows.append([key, "", *(f"{s[k]:,}" for k in ("tp", "fp", "fn", "tn")),
                     *(_g(s[k]) for k in ("precision", "recall", "f1"))])  # fmt: skip
    lines += _rows(header, rows)
    for key, m in doc["models"].items():
        for n, inc in enumerate(m["labels"].get("incidents", [])):
            ttd = inc["time_to_detect_s"]
            found = "not detected" if ttd is None else f"detected after {ttd:.3f} s"
            lines.append(f"  {key} incident {n + 1} ({inc['start']} .. {inc['end']}): {found}")
    return lines
