"""Alerts, dashboard and KEDA scaling of the chart: the PrometheusRule (templates/prometheusrule.yaml),
the Grafana dashboard ConfigMap (dashboards/hookbridge.json) and the ScaledObject refer only to
metrics the gateway exports (read from src/, see promql_refs.py) or to the documented external
series (up, kube-state-metrics); their PromQL passes promtool; the alert rules' unit tests
(prometheus/hookbridge_rules_test.yaml) pass and fail when a threshold moves; the custom resources
pass crdcheck (their projects' Go types), which refuses broken ones.

scripts/check-deploy.sh also runs promtool and crdcheck on every render; these tests need promtool
($PROMTOOL or PATH) and crdcheck ($CRDCHECK or .tools/bin/crdcheck), and are skipped without them
unless HOOKBRIDGE_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from deploy_helpers import CHART, REPO, VALUES_DIR, crd_files, find_tool, require_tools, run_crdcheck
from promql_refs import documented_outcomes, gateway_metrics, problems, series_catalogue

ALL_ON = "all-on.yaml"
KEDA = "keda.yaml"
TOKENS = "tokens-in-values.yaml"
DASHBOARD = CHART / "dashboards" / "hookbridge.json"
RULES_TEST = REPO / "tests" / "deploy" / "prometheus" / "hookbridge_rules_test.yaml"
SELECTOR = 'job="hb-hookbridge",namespace="webhooks"'
ALERTS = {
    "kafkaDown": "HookbridgeKafkaDown",
    "unavailableRatio": "HookbridgeUnavailableRatioHigh",
    "signatureFailures": "HookbridgeSignatureFailureBurst",
    "deadLetters": "HookbridgeDeadLetters",
    "publishLatency": "HookbridgeKafkaPublishSlow",
    "podNotReady": "HookbridgePodNotReady",
    "targetDown": "HookbridgeMetricsDown",
}


def tool(name: str, env: str) -> str:
    path = find_tool(name, env)
    if path is None:
        if require_tools():
            pytest.fail(f"{name} not found (${env}, .tools/bin, PATH)")
        pytest.skip(f"{name} not found: run scripts/check-deploy.sh")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool", "PROMTOOL")


@pytest.fixture(scope="session")
def crdcheck() -> str:
    return tool("crdcheck", "CRDCHECK")


@pytest.fixture(scope="session")
def catalogue():
    return series_catalogue()


@pytest.fixture(scope="session")
def outcomes():
    return documented_outcomes()


def rules_of(r) -> dict[str, dict]:
    pr = r.one("PrometheusRule")
    return {rule["alert"]: rule for g in pr["spec"]["groups"] for rule in g["rules"]}


def promtool_check(promtool: str, tmp_path, exprs: dict[str, str]) -> subprocess.CompletedProcess:
    """`promtool check rules` on the expressions as recording rules: PromQL syntax."""
    rules = {"groups": [{"name": "exprs", "rules": [
        {"record": f"check:{re.sub(r'[^a-zA-Z0-9_]', '_', name)}:{i}", "expr": e}
        for i, (name, e) in enumerate(exprs.items())]}]}
    path = tmp_path / "exprs.yaml"
    path.write_text(yaml.safe_dump(rules, width=1000))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


# --- what the gateway exports ----------------------------------------------------------------

def test_the_metric_catalogue_is_read_from_src():
    metrics = gateway_metrics()
    # the metrics docs/deploy.md tells operators to watch, with their labels
    assert metrics["hookbridge_webhook_requests_total"].labels == {"provider", "outcome", "family"}
    assert metrics["hookbridge_kafka_publish_duration_seconds"].kind == "histogram"
    assert metrics["hookbridge_webhook_in_flight"].kind == "gauge"
    assert metrics["hookbridge_signature_failures_total"].labels == {"provider", "reason"}
    assert {"hookbridge_kafka_up", "hookbridge_buffered_bytes", "hookbridge_api_tokens"} <= set(metrics)
    assert {"accepted", "dead_lettered", "unavailable", "unauthorized"} <= documented_outcomes()


@pytest.mark.parametrize("expr,complaint", [
    ('sum(rate(hookbridge_webhook_request_total[5m]))', "'hookbridge_webhook_request_total' is not a series"),
    ('hookbridge_kafka_up{topic="x"}', "has no label 'topic'"),
    ('sum by (status) (rate(hookbridge_webhook_requests_total[5m]))', "grouping label 'status'"),
    ('rate(hookbridge_webhook_requests_total{outcome="shed"}[5m])', "outcome 'shed'"),
    ('hookbridge_kafka_publish_duration_seconds{le="1"}', "is not a series"),
])
def test_the_reference_check_catches_made_up_metrics(catalogue, outcomes, expr, complaint):
    assert any(complaint in p for p in problems(expr, catalogue, outcomes)), problems(expr, catalogue, outcomes)


def test_an_unknown_function_is_refused(catalogue, outcomes):
    with pytest.raises(ValueError, match="unknown PromQL function 'rates'"):
        problems("rates(hookbridge_webhook_requests_total[5m])", catalogue, outcomes)


# --- PrometheusRule ----------------------------------------------------------------------------

def test_prometheus_rule_is_off_by_default(render):
    assert not render().all("PrometheusRule")
    assert not render(TOKENS).all("PrometheusRule")


def test_every_alert_is_there_and_uses_real_metrics(render, catalogue, outcomes):
    rules = rules_of(render(TOKENS, sets=("prometheusRule.enabled=true",)))
    assert set(rules) == set(ALERTS.values())
    for name, rule in rules.items():
        assert not problems(rule["expr"], catalogue, outcomes), (name, problems(rule["expr"], catalogue, outcomes))
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        anchor = name.lower()
        assert rule["annotations"]["runbook_url"].endswith(f"docs/deploy.md#{anchor}")
        # every gateway series is this release's: the ServiceMonitor's job and namespace
        if "hookbridge_" in rule["expr"] or rule["expr"].startswith("up{"):
            assert rule["expr"].count(SELECTOR) == rule["expr"].count("{"), rule["expr"]


def test_runbook_anchors_exist_in_docs_deploy():
    docs = (REPO / "docs" / "deploy.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^#+ (Hookbridge\w+)\s*$", docs, re.M)}
    assert {a.lower() for a in ALERTS.values()} <= headings, "docs/deploy.md needs a heading per alert"


def test_alert_expressions_are_what_the_values_say(render):
    rules = rules_of(render(TOKENS, sets=("prometheusRule.enabled=true",)))
    assert rules["HookbridgeKafkaDown"]["expr"] == \
        f"max by (namespace, job, pod) (hookbridge_kafka_up{{{SELECTOR}}}) == 0"
    assert rules["HookbridgeKafkaDown"]["for"] == "2m"
    assert rules["HookbridgeKafkaDown"]["labels"] == {"severity": "critical"}
    assert rules["HookbridgeUnavailableRatioHigh"]["expr"].endswith("[5m])) > 0.05")
    assert 'outcome="unavailable"' in rules["HookbridgeUnavailableRatioHigh"]["expr"]
    assert rules["HookbridgeSignatureFailureBurst"]["expr"] == (
        f"sum by (namespace, job, provider) (increase(hookbridge_signature_failures_total{{{SELECTOR}}}[5m])) > 20")
    assert "for" not in rules["HookbridgeSignatureFailureBurst"], "for: 0m is left out"
    assert 'outcome="dead_lettered"' in rules["HookbridgeDeadLetters"]["expr"]
    assert rules["HookbridgeDeadLetters"]["expr"].endswith("[15m])) > 0")
    # 0.75 x publishTimeout (4s)
    assert rules["HookbridgeKafkaPublishSlow"]["expr"].endswith(") > 3")
    assert "histogram_quantile(0.99," in rules["HookbridgeKafkaPublishSlow"]["expr"]
    assert 'owner_name=~"hb-hookbridge-[a-z0-9]+"' in rules["HookbridgePodNotReady"]["expr"]
    assert rules["HookbridgeMetricsDown"]["expr"] == f"up{{{SELECTOR}}} == 0"


def alerts_overlay(tmp_path, alerts: dict, **top):
    """A values file setting prometheusRule.alerts (floats: `--set` would pass them as strings)."""
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"prometheusRule": {"enabled": True, "alerts": alerts}, **top}))
    return path


@pytest.mark.parametrize("alerts,top,alert,expected", [
    ({"signatureFailures": {"threshold": 5, "window": "10m"}}, {}, "HookbridgeSignatureFailureBurst", "[10m])) > 5"),
    ({}, {"config": {"publishTimeout": "2s"}}, "HookbridgeKafkaPublishSlow", ") > 1.5"),
    ({"publishLatency": {"thresholdRatio": 0.5}}, {}, "HookbridgeKafkaPublishSlow", ") > 2"),
    ({"publishLatency": {"thresholdSeconds": 2.5}}, {}, "HookbridgeKafkaPublishSlow", ") > 2.5"),
    ({"unavailableRatio": {"threshold": 0.2}}, {}, "HookbridgeUnavailableRatioHigh", "> 0.2"),
    ({"deadLetters": {"threshold": 10}}, {}, "HookbridgeDeadLetters", "> 10"),
])
def test_thresholds_come_from_the_values(render, tmp_path, alerts, top, alert, expected):
    rules = rules_of(render(TOKENS, alerts_overlay(tmp_path, alerts, **top)))
    assert rules[alert]["expr"].endswith(expected), rules[alert]["expr"]


def test_alerts_can_be_switched_off_one_by_one(render):
    for key, alert in ALERTS.items():
        rules = rules_of(render(TOKENS, sets=("prometheusRule.enabled=true", f"prometheusRule.alerts.{key}.enabled=false")))
        assert set(rules) == set(ALERTS.values()) - {alert}


def test_labels_annotations_interval_and_selector(render):
    r = render(ALL_ON)
    pr = r.one("PrometheusRule")
    assert pr["metadata"]["labels"]["release"] == "prometheus"
    assert pr["metadata"]["annotations"] == {"example.com/owner": "platform-team"}
    group = pr["spec"]["groups"][0]
    assert group["interval"] == "1m"
    rules = rules_of(r)
    assert all(rule["labels"]["team"] == "platform" for rule in rules.values())
    # an alert's own annotation wins over the default
    assert rules["HookbridgeKafkaDown"]["annotations"]["runbook_url"] == "https://runbooks.example.com/hookbridge/kafka"
    sets = ("prometheusRule.enabled=true", "prometheusRule.runbookUrl=",
            "prometheusRule.namespace=monitoring",
            "prometheusRule.selector=service=\"hooks\"\\,cluster=\"eu1\"",
            "prometheusRule.additionalLabels.severity=page",
            "prometheusRule.alerts.kafkaDown.severity=page",
            "prometheusRule.alerts.targetDown.labels.severity=info",
            "prometheusRule.additionalAnnotations.summary=overridden",
            "prometheusRule.alerts.deadLetters.annotations.summary=mine")
    r = render(TOKENS, sets=sets)
    pr = r.one("PrometheusRule")
    assert pr["metadata"]["namespace"] == "monitoring" and "interval" not in pr["spec"]["groups"][0]
    rules = rules_of(r)
    assert all("runbook_url" not in rule["annotations"] for rule in rules.values())
    assert rules["HookbridgeKafkaDown"]["expr"] == \
        'max by (namespace, job, pod) (hookbridge_kafka_up{service="hooks",cluster="eu1"}) == 0'
    # per-alert labels > per-alert severity > additionalLabels
    assert rules["HookbridgeKafkaDown"]["labels"]["severity"] == "page"
    assert rules["HookbridgeMetricsDown"]["labels"]["severity"] == "info"
    assert rules["HookbridgeDeadLetters"]["labels"]["severity"] == "warning"
    # per-alert annotations > additionalAnnotations > defaults
    assert rules["HookbridgeDeadLetters"]["annotations"]["summary"] == "mine"
    assert rules["HookbridgeKafkaDown"]["annotations"]["summary"] == "overridden"


@pytest.mark.parametrize("sets,message", [
    (("prometheusRule.alerts.kafkaDown.for=2 minutes",), "/prometheusRule/alerts/kafkaDown/for"),
    (("prometheusRule.alerts.unavailableRatio.threshold=5",), "/prometheusRule/alerts/unavailableRatio/threshold"),
    (("prometheusRule.selector={job=\"x\"}",), "/prometheusRule/selector"),
    (("prometheusRule.additionalLabels.bad-name=x",), "invalid propertyName 'bad-name'"),
    (("prometheusRule.alerts.kafkaDown.typo=x",), "additional properties 'typo'"),
    (("prometheusRule.interval=1 minute",), "/prometheusRule/interval"),
])
def test_bad_rule_values_are_refused(render_error, sets, message):
    err = render_error(VALUES_DIR / TOKENS, sets=("prometheusRule.enabled=true", *sets))
    assert message in err, err


@pytest.mark.parametrize("values,sets", [
    ((TOKENS,), ("prometheusRule.enabled=true",)),
    ((ALL_ON,), ()),
    ((TOKENS,), ("prometheusRule.enabled=true", "prometheusRule.selector=service=\"hooks\"\\,cluster=\"eu1\"",
                 "config.publishTimeout=1500ms", "prometheusRule.alerts.signatureFailures.for=1m")),
], ids=["defaults", "all-on", "overrides"])
def test_promtool_check_rules_accepts_the_rendered_rules(render, promtool, tmp_path, values, sets):
    pr = render(*values, sets=sets).one("PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": pr["spec"]["groups"]}, width=1000))
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and f"SUCCESS: {len(rules_of(render(*values, sets=sets)))} rules found" in res.stdout, \
        res.stdout + res.stderr


def run_rule_tests(render, promtool, tmp_path, alerts: dict | None = None) -> subprocess.CompletedProcess:
    """promtool test rules with hookbridge_rules_test.yaml on the rules rendered with the
    defaults and these prometheusRule.alerts values."""
    pr = render(alerts_overlay(tmp_path, alerts or {})).one("PrometheusRule")
    groups = pr["spec"]["groups"]
    for g in groups:
        for rule in g["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (tmp_path / "hookbridge-rules.yaml").write_text(yaml.safe_dump({"groups": groups}, width=1000))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    return subprocess.run([promtool, "test", "rules", str(tmp_path / RULES_TEST.name)],
                          capture_output=True, text=True, timeout=120)


def test_promtool_unit_tests_pass(render, promtool, tmp_path):
    res = run_rule_tests(render, promtool, tmp_path)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("alerts,failing", [
    # a threshold above the burst: the burst no longer fires
    ({"signatureFailures": {"threshold": 200}}, "HookbridgeSignatureFailureBurst"),
    # a threshold below the trickle (15 in 5 minutes): the trickle fires
    ({"signatureFailures": {"threshold": 10}}, "HookbridgeSignatureFailureBurst"),
    ({"kafkaDown": {"for": "5m"}}, "HookbridgeKafkaDown"),
    ({"unavailableRatio": {"threshold": 0.005}}, "HookbridgeUnavailableRatioHigh"),
    ({"publishLatency": {"thresholdSeconds": 4}}, "HookbridgeKafkaPublishSlow"),
    ({"deadLetters": {"threshold": 5}}, "HookbridgeDeadLetters"),
    ({"podNotReady": {"for": "15m"}}, "HookbridgePodNotReady"),
    ({"targetDown": {"for": "1m"}}, "HookbridgeMetricsDown"),
])
def test_promtool_unit_tests_fail_when_a_rule_changes(render, promtool, tmp_path, alerts, failing):
    res = run_rule_tests(render, promtool, tmp_path, alerts)
    assert res.returncode != 0, f"the unit tests still pass with {alerts}"
    assert f"alertname: {failing}" in res.stdout + res.stderr, res.stdout + res.stderr


def test_rules_pass_crdcheck_and_a_broken_rule_does_not(render, crdcheck, tmp_path):
    r = render(ALL_ON)
    pr = r.one("PrometheusRule")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(pr))
    res = run_crdcheck(crdcheck, good)
    assert res.returncode == 0 and "PrometheusRule hb-hookbridge passed" in res.stdout, res.stdout + res.stderr
    broken = [
        ("for", lambda rule: rule.__setitem__("for", "2 minutes"), "for"),
        ("record and alert", lambda rule: rule.__setitem__("record", "x:y"), "exactly one of alert and record"),
        ("unknown field", lambda rule: rule.__setitem__("threshold", 3), 'unknown field "threshold"'),
        ("no severity", lambda rule: rule["labels"].pop("severity"), "no severity label"),
    ]
    for name, mutate, message in broken:
        doc = yaml.safe_load(yaml.safe_dump(pr))
        mutate(doc["spec"]["groups"][0]["rules"][0])
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(doc))
        res = run_crdcheck(crdcheck, path)
        assert res.returncode == 1 and message in res.stdout, (name, res.stdout + res.stderr)


# --- Grafana dashboard -------------------------------------------------------------------------

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dash: dict) -> dict[str, str]:
    """title/refId -> expr of every panel target (rows included)."""
    out = {}
    panels = list(dash["panels"])
    for p in panels:
        panels += p.get("panels", [])
        for t in p.get("targets", []):
            out[f"{p['title']}/{t['refId']}"] = t["expr"]
    return out


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by what they expand to, for promtool."""
    return (expr.replace("$__rate_interval", "2m").replace('"$namespace"', '"webhooks"')
            .replace('"$job"', '"hb-hookbridge"').replace("$job", "hb-hookbridge").replace('"$pod"', '".*"'))


def test_dashboard_is_valid_grafana_json():
    dash = dashboard()
    assert dash["uid"] == "hookbridge" and dash["title"] == "hookbridge"
    assert isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "job", "pod"} <= set(variables)
    ids, cells = set(), set()
    for p in dash["panels"]:
        assert p["id"] not in ids, f"panel id {p['id']} repeated"
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}"


def test_dashboard_uses_only_real_metrics(catalogue, outcomes):
    exprs = dashboard_exprs(dashboard())
    assert len(exprs) >= 20
    for where, expr in exprs.items():
        found = problems(grafana_to_promql(expr), catalogue, outcomes)
        assert not found, (where, found)
    for v in dashboard()["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["query"]["query"])
        assert m, v["query"]
        inner, label = grafana_to_promql(m.group(1)), m.group(2)
        assert not problems(inner, catalogue, outcomes), (v["name"], problems(inner, catalogue, outcomes))
        metric = re.match(r"[a-z_:]+", inner).group(0)
        assert label in catalogue[metric], (v["name"], label)


def test_dashboard_shows_what_operators_watch():
    exprs = " ".join(dashboard_exprs(dashboard()).values())
    for needed in ("sum by (outcome) (rate(hookbridge_webhook_requests_total",
                   "sum by (provider) (rate(hookbridge_webhook_requests_total",
                   'outcome="unavailable"', 'outcome="dead_lettered"',
                   "hookbridge_signature_failures_total",
                   "histogram_quantile(0.5, sum by (le) (rate(hookbridge_kafka_publish_duration_seconds_bucket",
                   "histogram_quantile(0.99, sum by (le) (rate(hookbridge_kafka_publish_duration_seconds_bucket",
                   "hookbridge_webhook_in_flight", "hookbridge_buffered_bytes", "hookbridge_api_tokens",
                   "hookbridge_kafka_up", "hookbridge_open_connections", "kube_pod_status_ready"):
        assert needed in exprs, needed


def test_dashboard_promql_passes_promtool(promtool, tmp_path):
    exprs = {k: grafana_to_promql(v) for k, v in dashboard_exprs(dashboard()).items()}
    res = promtool_check(promtool, tmp_path, exprs)
    assert res.returncode == 0, res.stdout + res.stderr
    # and promtool does refuse broken PromQL
    bad = promtool_check(promtool, tmp_path / "..", {"bad": "sum by (pod (hookbridge_kafka_up)"})
    assert bad.returncode != 0


def test_dashboard_configmap(render):
    assert not render().all("ConfigMap") or all("grafana_dashboard" not in (c["metadata"].get("labels") or {})
                                                  for c in render().all("ConfigMap"))
    r = render(ALL_ON)
    cm = next(c for c in r.all("ConfigMap") if "hookbridge.json" in c.get("data", {}))
    assert cm["metadata"]["name"] == "hb-hookbridge-dashboard"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Webhooks"
    assert json.loads(cm["data"]["hookbridge.json"]) == dashboard(), "the checked-in JSON, unchanged"
    r = render(TOKENS, sets=("grafanaDashboard.enabled=true", "grafanaDashboard.label=dashboards",
                             "grafanaDashboard.labelValue=hookbridge"))
    cm = next(c for c in r.all("ConfigMap") if "hookbridge.json" in c.get("data", {}))
    assert cm["metadata"]["labels"]["dashboards"] == "hookbridge" and "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["namespace"] == "webhooks"


# --- KEDA --------------------------------------------------------------------------------------

def test_keda_scales_on_in_flight_requests(render, catalogue, outcomes):
    r = render(ALL_ON, KEDA)
    so = r.one("ScaledObject")
    assert not r.all("HorizontalPodAutoscaler"), "KEDA makes its own HPA"
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": r.deployment["metadata"]["name"]}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (3, 12)
    [trigger] = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["query"] == f"sum(avg_over_time(hookbridge_webhook_in_flight{{{SELECTOR}}}[2m]))"
    assert not problems(meta["query"], catalogue, outcomes)
    assert meta["threshold"] == "64" and meta["unsafeSsl"] == "false"
    assert meta["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert trigger["authenticationRef"] == {"name": "prometheus-basic-auth"}
    assert so["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 6}
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # like the HPA: replicas is what runs (nothing, with helm template), at least minReplicaCount
    assert r.deployment["spec"]["replicas"] == 3


def test_keda_query_passes_promtool(render, promtool, tmp_path):
    meta = render(ALL_ON, KEDA).one("ScaledObject")["spec"]["triggers"][0]["metadata"]
    res = promtool_check(promtool, tmp_path, {"keda": meta["query"]})
    assert res.returncode == 0, res.stdout + res.stderr


def test_keda_custom_query_is_templated(render, tmp_path):
    overlay = tmp_path / "q.yaml"
    overlay.write_text(yaml.safe_dump({"keda": {
        "query": 'sum(hookbridge_webhook_in_flight{namespace="{{ .Release.Namespace }}",service="{{ include "hookbridge.fullname" . }}"})',
        "threshold": 12.5, "extraMetadata": {"ignoreNullValues": False}}}))
    meta = render(ALL_ON, KEDA, overlay).one("ScaledObject")["spec"]["triggers"][0]["metadata"]
    assert meta["query"] == 'sum(hookbridge_webhook_in_flight{namespace="webhooks",service="hb-hookbridge"})'
    assert meta["threshold"] == "12.5" and meta["ignoreNullValues"] == "false"


@pytest.mark.parametrize("sets,message", [
    (("autoscaling.enabled=true",), "autoscaling.enabled and keda.enabled are both true"),
    (("keda.serverAddress=",), "keda.serverAddress is empty"),
    (("keda.threshold=1024",), "keda.threshold (1024 in-flight requests per pod) must be below config.maxInFlight (1024)"),
    (("keda.minReplicaCount=13",), "keda.minReplicaCount (13) is greater than keda.maxReplicaCount (12)"),
    (("keda.threshold=0",), "/keda/threshold"),
    (("keda.extraMetadata.query=up",), "invalid propertyName 'query'"),
    (("keda.authenticationRef.kind=Secret",), "/keda/authenticationRef/kind"),
])
def test_inconsistent_keda_values_fail(render_error, sets, message):
    err = render_error(VALUES_DIR / ALL_ON, VALUES_DIR / KEDA, sets=sets)
    assert message in err, err


def test_scaled_object_passes_crdcheck_and_a_broken_one_does_not(render, crdcheck, tmp_path):
    so = render(ALL_ON, KEDA).one("ScaledObject")
    good = tmp_path / "so.yaml"
    good.write_text(yaml.safe_dump(so))
    res = run_crdcheck(crdcheck, good)
    assert res.returncode == 0 and "ScaledObject hb-hookbridge passed" in res.stdout, res.stdout + res.stderr
    broken = [
        (lambda s: s["spec"]["triggers"][0]["metadata"].__setitem__("threshold", "many"), "threshold \"many\" is not a number"),
        (lambda s: s["spec"].__setitem__("minReplicaCount", 20), "MinReplicaCount=20 must be less than MaxReplicaCount=12"),
        (lambda s: s["spec"]["triggers"][0]["metadata"].__setitem__("serverAddress", "prometheus:9090"), "is not an http(s) URL"),
        (lambda s: s["spec"].__setitem__("minReplicas", 2), 'unknown field "minReplicas"'),
        (lambda s: s["spec"].__setitem__("triggers", []), "no triggers defined"),
    ]
    for mutate, message in broken:
        doc = yaml.safe_load(yaml.safe_dump(so))
        mutate(doc)
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(doc))
        res = run_crdcheck(crdcheck, path)
        assert res.returncode == 1 and message in res.stdout, (message, res.stdout + res.stderr)


def crds_or_skip():
    if not crd_files():
        if require_tools():
            pytest.fail("CRDCHECK_CRDS is empty: scripts/check-deploy.sh sets it")
        pytest.skip("CRDCHECK_CRDS not set: run scripts/check-deploy.sh")


def test_custom_resources_pass_their_crd_schemas(render, crdcheck, tmp_path):
    crds_or_skip()
    path = tmp_path / "all.yaml"
    path.write_text(render(ALL_ON, KEDA).text)
    res = run_crdcheck(crdcheck, path)
    assert res.returncode == 0, res.stdout + res.stderr
    for kind in ("ServiceMonitor", "PrometheusRule", "HTTPRoute", "ScaledObject"):
        assert re.search(rf"{kind} hb-hookbridge passed \(.*, strict decode, CRD schema and CEL rules\)", res.stdout), \
            (kind, res.stdout)


@pytest.mark.parametrize("kind,mutate,message", [
    # what the Go types accept but the CRDs refuse: an enum, a pattern, a CEL rule
    ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].__setitem__("scheme", "ftp"),
     'spec.endpoints[0].scheme: Unsupported value: "ftp"'),
    ("HTTPRoute", lambda d: d["spec"]["parentRefs"][0].__setitem__("sectionName", "Not_Valid"),
     "spec.parentRefs[0].sectionName in body should match"),
    ("HTTPRoute", lambda d: d["spec"]["rules"][0].__setitem__("filters", [{"type": "RequestHeaderModifier"}]),
     "filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type"),
    ("PrometheusRule", lambda d: d["spec"]["groups"][0].__setitem__("partial_response_strategy", "ignore"),
     "spec.groups[0].partial_response_strategy in body should match"),
])
def test_crd_schemas_catch_what_go_types_miss(render, crdcheck, tmp_path, kind, mutate, message):
    crds_or_skip()
    doc = yaml.safe_load(yaml.safe_dump(render(ALL_ON, KEDA).one(kind)))
    mutate(doc)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = run_crdcheck(crdcheck, path)
    assert res.returncode == 1 and message in res.stdout, res.stdout + res.stderr
