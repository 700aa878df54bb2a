"""Every PromQL expression the deployment uses, and small tools to inspect them.

One place for "which queries do the dashboard and the alert rules run": the static
tests check their metric names against ``tripwire.stream.observability.metrics`` and
their syntax with promtool, and the live test runs each one against a real Prometheus
scraping a real worker. Add a panel or a rule and it is picked up here.

The lexer knows just enough PromQL for that: strings, label matchers ``{...}``, range
and subquery brackets ``[...]``, identifiers, numbers and operators.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "tripwire.json"
RULES_DIR = REPO / "deploy" / "rules"

#: Grafana's built-in interval variables, replaced before Prometheus sees a query.
GRAFANA_INTERVALS = ("__rate_interval", "__interval", "__range")
#: The dashboard's own template variables and what "All" selects.
GRAFANA_VARIABLES = {"instance": ".*"}

#: Series the worker does not export but the rules and the dashboard read: kafka-
#: exporter's (danielqsj/kafka-exporter v1.8, the compose file's), the recording rule
#: written by deploy/prometheus-entrypoint.sh, and kube-state-metrics' (Kubernetes).
EXTERNAL_SERIES = frozenset(
    {
        "kafka_consumergroup_lag",
        "kafka_consumergroup_lag_sum",
        "kafka_consumergroup_current_offset",
        "kafka_consumergroup_current_offset_sum",
        "kafka_consumergroup_members",
        "kafka_topic_partition_current_offset",
        "tripwire:workers_expected",
        "kube_deployment_spec_replicas",
    }
)

AGGREGATORS = frozenset(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile "
    "limitk limit_ratio".split()
)
#: Keywords followed by a parenthesised list of label names (not metrics).
LABEL_LIST_KEYWORDS = frozenset("by without on ignoring group_left group_right".split())
KEYWORDS = frozenset("bool and or unless offset atan2 inf nan".split()) | LABEL_LIST_KEYWORDS
COMPARISONS = frozenset(("==", "!=", ">", "<", ">=", "<="))

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<matchers>\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|[^}"'`])*\})
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=@])
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int


@dataclass(frozen=True)
class Expr:
    """One query: where it comes from (for test ids and messages) and its text."""

    source: str
    expr: str
    kind: str  # "panel", "alert" or "record"


def tokenize(expr: str) -> list[Token]:
    """The tokens of ``expr`` without whitespace and comments; ValueError on junk."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot tokenize {expr[pos : pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def _skip_group(tokens: list[Token], i: int) -> int:
    """Index after the parenthesised group opening at ``tokens[i]``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "(":
            depth += 1
        elif tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError("unbalanced parentheses")


def metric_names(expr: str) -> set[str]:
    """Names of the series ``expr`` selects (not functions, keywords or label names)."""
    tokens = tokenize(expr)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        word = tok.text.lower()
        if tok.kind != "ident":
            i += 1
        elif word in LABEL_LIST_KEYWORDS and nxt is not None and nxt.text == "(":
            i = _skip_group(tokens, i + 1)
        elif word in KEYWORDS or word in AGGREGATORS:
            i += 1
        elif nxt is not None and nxt.text == "(":  # a function call
            i += 1
        else:
            names.add(tok.text)
            i += 1
    return names


def substitute_grafana(expr: str, interval: str = "1m") -> str:
    """``expr`` with Grafana's interval variables replaced by ``interval``."""
    for var in GRAFANA_INTERVALS:
        expr = expr.replace("${" + var + "}", interval).replace("$" + var, interval)
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace("${" + var + "}", value).replace("$" + var, value)
    if "$" in expr:
        raise ValueError(f"unsubstituted Grafana variable in {expr!r}")
    return expr


def probe(expr: str, interval: str = "1m") -> str:
    """A query that returns data exactly when every series ``expr`` reads exists.

    An alert expression filters: ``up == 0`` returns nothing while all is well, which
    says nothing about whether ``up`` exists. The probe turns every comparison into
    its ``bool`` form (0/1 instead of a filter) and unwraps ``absent(...)``, so the
    result is non-empty iff its inputs are there. Dashboard queries pass through
    unchanged apart from Grafana's variables.
    """
    expr = substitute_grafana(expr, interval)
    tokens = tokenize(expr)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.kind == "op" and tok.text in COMPARISONS:
            if nxt is None or nxt.text.lower() != "bool":
                # `a > on () b` takes bool before the matching clause: `a > bool on () b`
                edits.append((tok.start + len(tok.text), tok.start + len(tok.text), " bool"))
        elif tok.kind == "ident" and tok.text in ("absent", "absent_over_time"):
            if tok.text == "absent_over_time":
                raise ValueError("absent_over_time() has no probe form; use absent()")
            edits.append((tok.start, tok.start + len(tok.text), ""))
    for start, end, text in sorted(edits, reverse=True):
        expr = expr[:start] + text + expr[end:]
    return expr


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows nest panels


def dashboard_exprs(path: Path = DASHBOARD) -> list[Expr]:
    """Every target expression of every panel of the dashboard JSON at ``path``."""
    dashboard = json.loads(path.read_text())
    out: list[Expr] = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                source = f"panel {panel['title']!r} {target.get('refId', '?')}"
                out.append(Expr(source, target["expr"], "panel"))
    return out


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    return sorted(rules_dir.glob("*.rules.yml"))


def rules(rules_dir: Path = RULES_DIR) -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of every rule file, in file order."""
    out: list[dict[str, Any]] = []
    for path in rule_files(rules_dir):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def rule_exprs(rules_dir: Path = RULES_DIR) -> list[Expr]:
    out: list[Expr] = []
    for rule in rules(rules_dir):
        if "alert" in rule:
            out.append(Expr(f"alert {rule['alert']}", rule["expr"], "alert"))
        else:
            out.append(Expr(f"record {rule['record']}", rule["expr"], "record"))
    return out


def all_exprs() -> list[Expr]:
    """The dashboard's queries and the rules' expressions."""
    return dashboard_exprs() + rule_exprs()


def exported_names(registry_metrics: Any) -> set[str]:
    """Series names a ``prometheus_client`` registry exposes, from each family's type.

    Types rather than samples: a labelled metric without children (the model info
    gauge before a model is set) has no samples yet but will have its name.
    """
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry_metrics.collect():
        for suffix in suffixes[family.type]:
            names.add(family.name + suffix)
    return names


ENTRYPOINT = REPO / "deploy" / "prometheus-entrypoint.sh"


def generated_rules(directory: Path, workers: int) -> Path:
    """The rule file deploy/prometheus-entrypoint.sh writes for ``TRIPWIRE_WORKERS``.

    Runs the real script (``PROMETHEUS_BIN=true`` in place of Prometheus).
    """
    env = {
        "PATH": "/usr/bin:/bin",
        "TRIPWIRE_WORKERS": str(workers),
        "TRIPWIRE_GENERATED_RULES": str(directory),
        "PROMETHEUS_BIN": "true",
    }
    subprocess.run(["sh", str(ENTRYPOINT)], env=env, check=True, capture_output=True)
    return directory / "expected.rules.yml"
