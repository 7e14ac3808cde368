"""What the gateway exports (read from src/, never listed by hand) and what a PromQL expression
refers to, so the chart's alert rules, KEDA query and Grafana dashboard can be checked to use
only real metrics and labels.

`gateway_metrics()` reads the metric-name constants of src/telemetry.rs, their kinds from the
describe_* calls, and their labels from every metrics::counter!/gauge!/histogram! call in src/.
`refs(expr)` is a small PromQL reader: it returns the metric selectors (name and label matchers)
and the grouping labels of an expression, and refuses a function it does not know, so a typo
cannot hide as a "metric". PromQL syntax itself is checked by promtool (tests wrap the
expressions into a rule file for `promtool check rules`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from deploy_helpers import REPO

SRC = REPO / "src"

# labels a Prometheus Operator scrape (ServiceMonitor) adds to every series of a target
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

# series from other exporters the chart's rules and dashboard use (documented in docs/deploy.md):
# Prometheus' own `up`, and kube-state-metrics' pod series
EXTERNAL = {
    "up": set(),
    "kube_pod_status_ready": {"uid", "condition"},
    "kube_pod_status_phase": {"uid", "phase"},
    "kube_pod_owner": {"uid", "owner_kind", "owner_name", "owner_is_controller"},
}


@dataclass
class Metric:
    name: str
    kind: str  # counter, gauge, histogram
    labels: set[str] = field(default_factory=set)


def _macro_calls(text: str, macro: str):
    """(args text) of each `metrics::<macro>!(...)` call, parentheses balanced."""
    for m in re.finditer(rf"metrics::{macro}!\(", text):
        depth, i = 1, m.end()
        while depth:
            ch = text[i]
            depth += {"(": 1, ")": -1}.get(ch, 0)
            i += 1
        yield text[m.end():i - 1]


def gateway_metrics() -> dict[str, Metric]:
    """Metric name -> Metric, from src/telemetry.rs and the metrics macro calls in src/."""
    telemetry = (SRC / "telemetry.rs").read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([a-z_:][a-z0-9_:]*)";', telemetry))
    metrics: dict[str, Metric] = {}
    for kind in ("counter", "gauge", "histogram"):
        for args in _macro_calls(telemetry, f"describe_{kind}"):
            const = args.split(",")[0].strip()
            metrics[consts[const]] = Metric(consts[const], kind)
    # The process_* figures, written into the page by telemetry::render as metric(name, kind, ...)
    for name, kind in re.findall(r'metric\(\s*"(process_[a-z_]+)",\s*"(counter|gauge)"', telemetry):
        metrics[name] = Metric(name, kind)
    for path in SRC.rglob("*.rs"):
        for body in _functions(path.read_text()):
            for kind in ("counter", "gauge", "histogram"):
                for args in _macro_calls(body, kind):
                    for const, labels in _names_and_labels(body, args, consts):
                        name = consts[const]
                        assert name in metrics and metrics[name].kind == kind, \
                            f"{path}: {kind}!({name}) without a matching describe_{kind} in src/telemetry.rs"
                        metrics[name].labels |= labels
    return metrics


def _functions(text: str) -> list[str]:
    """The text from each `fn` to the next: a table or label list a call uses is in its function."""
    starts = [m.start() for m in re.finditer(r"\bfn\s+\w+", text)] or [0]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _names_and_labels(body: str, args: str, consts: dict[str, str]) -> list[tuple[str, set[str]]]:
    """The telemetry constants a macro call records and the labels it gives them. The name is
    `telemetry::X` (or `X` in src/telemetry.rs), or a variable bound by a loop over a table of `(telemetry::X, ...)` rows in
    the same function; labels are `"label" => value` pairs, or `&list` for a
    `let list = [("label", value), ...]` in the same function."""
    first = args.split(",")[0].strip()
    const = re.fullmatch(r"(?:crate::)?telemetry::(\w+)", first)
    if const:
        names = [const.group(1)]
    elif first in consts:
        names = [first]
    elif re.fullmatch(r"\w+", first):
        names = re.findall(r"(?<!!)\(\s*(?:crate::)?telemetry::(\w+)\s*,", body)
        assert names, f"metric name {first!r} is neither telemetry::X nor a row of a telemetry table"
    else:
        return []
    labels = set(re.findall(r'"([a-z_][a-z0-9_]*)"\s*=>', args))
    listed = re.search(r",\s*&(\w+)\s*$", args.strip())
    if listed:
        decl = re.search(rf"let\s+{listed.group(1)}\s*=\s*\[(.*?)\];", body, re.S)
        assert decl, f"label list {listed.group(1)!r} is not declared in the calling function"
        labels |= set(re.findall(r'\(\s*"([a-z_][a-z0-9_]*)"\s*,', decl.group(1)))
    return [(n, labels) for n in names]


def documented_outcomes() -> set[str]:
    """The `outcome` label values documented on REQUESTS in src/telemetry.rs."""
    telemetry = (SRC / "telemetry.rs").read_text()
    doc = re.search(r"`outcome` \(([^)]*)\)", telemetry)
    assert doc, "src/telemetry.rs no longer documents the outcome values"
    return {v.strip() for v in re.sub(r"\s*///\s*", " ", doc.group(1)).split(",")}


def series_catalogue() -> dict[str, set[str]]:
    """Every series name Prometheus stores for the gateway and the external exporters used,
    with the labels each may carry."""
    out: dict[str, set[str]] = {}
    for m in gateway_metrics().values():
        labels = m.labels | TARGET_LABELS
        if m.kind == "histogram":
            out[f"{m.name}_bucket"] = labels | {"le"}
            out[f"{m.name}_sum"] = labels
            out[f"{m.name}_count"] = labels
        else:
            out[m.name] = labels
    for name, labels in EXTERNAL.items():
        out[name] = labels | TARGET_LABELS
    return out


AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "group"}
FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
             "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time",
             "last_over_time", "quantile_over_time", "abs", "ceil", "floor", "round", "clamp",
             "clamp_min", "clamp_max", "absent", "absent_over_time", "changes", "resets", "vector",
             "scalar", "time", "timestamp", "label_replace", "label_join", "sort", "sort_desc",
             "predict_linear", "sgn", "exp", "ln", "log2", "log10", "sqrt"}
# Grafana's label_values(metric{...}, label) template query
GRAFANA = {"label_values"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "Inf", "NaN", "inf", "nan"}

TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<dur>\d+(?:ms|s|m|h|d|w|y))
  | (?P<id>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},])
)""", re.X)


@dataclass
class Refs:
    selectors: list[tuple[str, dict[str, tuple[str, str]]]]  # (metric, {label: (op, value)})
    grouping: set[str]


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def refs(expr: str) -> Refs:
    toks = _tokens(expr)
    selectors: list = []
    grouping: set[str] = set()
    i = 0

    def nxt(k):
        return toks[k][1] if k < len(toks) else None

    while i < len(toks):
        kind, val = toks[i]
        if kind == "id" and val in GROUPING and nxt(i + 1) == "(":
            j = i + 2
            while toks[j][1] != ")":
                if toks[j][0] == "id":
                    grouping.add(toks[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "id" and val in AGGREGATIONS and nxt(i + 1) in ("by", "without"):
            i += 1
            continue
        if kind == "id" and nxt(i + 1) == "(":
            if val not in AGGREGATIONS | FUNCTIONS | GRAFANA:
                raise ValueError(f"unknown PromQL function {val!r} in {expr!r}")
            i += 1
            continue
        if kind == "id" and val in KEYWORDS:
            i += 1
            continue
        if kind == "id" or (kind == "op" and val == "{"):
            name = val if kind == "id" else None
            matchers: dict[str, tuple[str, str]] = {}
            j = i + 1 if kind == "id" else i
            if nxt(j) == "{":
                j += 1
                while toks[j][1] != "}":
                    label, op, value = toks[j][1], toks[j + 1][1], toks[j + 2][1]
                    matchers[label] = (op, value[1:-1])
                    j += 3
                    if toks[j][1] == ",":
                        j += 1
                j += 1
            if name is None:
                name = matchers.pop("__name__", (None, None))[1]
            selectors.append((name, matchers))
            i = j
            continue
        i += 1
    return Refs(selectors, grouping)


def problems(expr: str, catalogue: dict[str, set[str]], outcomes: set[str]) -> list[str]:
    """What in expr refers to no real series, label or outcome value."""
    found = []
    r = refs(expr)
    if not r.selectors:
        found.append(f"{expr!r} selects no metric")
    labels_in_expr: set[str] = set()
    for name, matchers in r.selectors:
        if name not in catalogue:
            found.append(f"{name!r} is not a series the gateway (src/telemetry.rs) or the documented exporters expose")
            continue
        labels_in_expr |= catalogue[name]
        for label, (op, value) in matchers.items():
            if label not in catalogue[name]:
                found.append(f"{name} has no label {label!r}")
            if label == "outcome" and op == "=" and value not in outcomes:
                found.append(f"outcome {value!r} is not one of {sorted(outcomes)}")
    for label in r.grouping - labels_in_expr:
        found.append(f"grouping label {label!r} is on none of the series in {expr!r}")
    return found
