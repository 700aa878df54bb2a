"""The rollout evidence format: its JSON Schema, the cross-field rules, the docs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.evidence import comparison, label_scores, model_figures, report
from tripwire.core.registry.evidence import evidence_problems, schema

DOCS = Path(__file__).resolve().parents[3] / "docs" / "formats.md"
A, B = "0" * 64, "1" * 64


def valid(with_labels: bool = False) -> dict[str, Any]:
    labels = {"source": "labels.csv", "labelled_events": 1000, "positives": 12}
    return report(
        {
            "demo@2": model_figures(
                A, 1000, 10, labels=label_scores(8, 2, 4, 986) if with_labels else None
            ),
            "demo@3": model_figures(
                B,
                1000,
                12,
                ref="demo@candidate",
                labels=label_scores(10, 2, 2, 986) if with_labels else None,
            ),
        },  # fmt: skip
        [comparison("demo@2", "demo@3", 1, 3, 9)],
        labels=labels if with_labels else None,
    )


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("with_labels", [False, True])
def test_a_consistent_report_has_no_problems(with_labels: bool) -> None:
    assert evidence_problems(valid(with_labels)) == []


def _edit(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target: Any = doc
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("format", "other", "format: 'tripwire-evidence' was expected"),
        ("source", "guess", "source: 'guess' is not one of ['replay', 'shadow']"),
        ("created_at", "yesterday", "created_at: 'yesterday' does not match"),
        ("models.demo@3.alerts", -1, "models.demo@3.alerts: -1 is less than the minimum of 0"),
        ("models.demo@3.alert_rate", 1.5, "1.5 is greater than the maximum of 1"),
        ("models.demo@3.manifest_sha256", "abc", "does not match '^[0-9a-f]{64}$'"),
        (
            "models.demo@3.extra",
            1,
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        ("comparisons.0.both", "9", "comparisons.0.both: '9' is not of type 'integer'"),
        ("models.demo@3.alert_rate", 0.5, "models.demo@3: alert_rate 0.5 != alerts / events 0.012"),
        ("models.demo@3.alerts", 2000, "models.demo@3: alerts 2000 > events 1000"),
        ("models.demo@3.score_quantiles", None, "score_quantiles must be null exactly when"),
        ("models.demo@3.score_quantiles.p90", 9.0, "score_quantiles are not in order"),
        ("models.demo@3.labels", label_scores(1, 0, 0, 0), "labels must be null exactly when"),
        ("comparisons.0.both", 8, "only_baseline + both != the baseline's alerts (10)"),
        ("comparisons.0.candidate", "demo@4", "comparisons[0]: names demo@4, not in models"),
        ("models.demo@3.events", 999, "baseline and candidate scored different events"),
    ],
)
def test_each_broken_rule_is_named(path: str, value: Any, problem: str) -> None:
    doc = valid()
    if path == "models.demo@3.events":
        doc = _edit(doc, "models.demo@3.alert_rate", 12 / 999)
    problems = evidence_problems(_edit(doc, path, value))
    assert any(problem in p for p in problems), problems


def test_labels_must_agree_with_their_counts() -> None:
    doc = valid(with_labels=True)
    problems = evidence_problems(_edit(doc, "models.demo@3.labels.recall", 0.99))
    assert problems == [
        "models.demo@3: recall 0.99 does not agree with tp/fp/fn (expected 0.8333333333333334)"
    ]


def test_a_newer_report_is_refused_alone() -> None:
    assert evidence_problems({**valid(), "schema_version": 2, "models": "new shape"}) == [
        "evidence schema_version 2 was written by a newer Tripwire (this one reads up to 1)"
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(valid())), json_values, max_size=6))
def test_checking_never_crashes_on_arbitrary_json(overrides: dict[str, Any]) -> None:
    problems = evidence_problems({**valid(), **overrides})
    assert all(isinstance(p, str) and "\n" not in p for p in problems)


def _fields(node: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """Every property name the schema defines, through $refs and oneOfs."""
    if "$ref" in node:
        return _fields(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    found = set()
    for sub in node.get("oneOf", []):
        found |= _fields(sub, defs)
    for name, sub in node.get("properties", {}).items():
        found |= {name} | _fields(sub, defs)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found |= _fields(node[key], defs)
    return found


def test_docs_describe_every_field_of_the_schema() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Rollout evidence") :]
    section = section[: section.find("\n## ", 1)]
    documented = set(re.findall(r"^\| `([a-z_0-9]+)`", section, flags=re.M))
    s = schema()
    assert _fields(s, s["$defs"]) == documented
