"""Helm chart helm/hookbridge: what the renders contain (hardening, rollout safety, secrets kept
out of the ConfigMap, optional parts), what must fail to render, NOTES.txt and the README.

scripts/check-deploy.sh additionally runs `helm lint --strict` and validates every render
against the Kubernetes OpenAPI schemas of several versions with kubernetes-validate --strict."""

from __future__ import annotations

import re
import shutil
import tomllib

import pytest
import yaml

from deploy_helpers import CHART, VALUES_DIR, Rendered, run_helm

ALL_ON = "all-on.yaml"
TOKENS = "tokens-in-values.yaml"
TOKEN_VALUES = ["old-token-0000000000000000000000000000", "new-token-1111111111111111111111111111"]
OPTIONAL = {
    "autoscaling.enabled": "HorizontalPodAutoscaler",
    "podDisruptionBudget.enabled": "PodDisruptionBudget",
    "serviceMonitor.enabled": "ServiceMonitor",
    "networkPolicy.enabled": "NetworkPolicy",
    "ingress.enabled": "Ingress",
}
VARIANTS = [(), (ALL_ON,), (TOKENS,)]


def duration_seconds(d: str) -> float:
    n, unit = re.fullmatch(r"(\d+)(ms|s|m)", d).groups()
    return int(n) * {"ms": 0.001, "s": 1, "m": 60}[unit]


# --- always-on parts and hardening -------------------------------------------------------------

def test_defaults_render_only_the_core(render):
    r = render()
    assert r.kinds() == {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Pod"}
    for kind in OPTIONAL.values():
        assert not r.all(kind), f"{kind} must be off by default"
    # the only Pod is the `helm test` hook, run by `helm test`, never installed
    assert r.one("Pod")["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_helm_test_hook_uses_the_gateway_image_hardened(render):
    r = render()
    test = r.one("Pod")
    c = test["spec"]["containers"][0]
    assert c["image"] == r.container["image"], "no image from a public registry"
    assert c["args"][0] == "healthcheck" and c["args"][2].endswith(":9090/readyz")
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert test["spec"]["securityContext"]["runAsNonRoot"] is True
    assert test["spec"]["restartPolicy"] == "Never"
    assert not render(TOKENS, sets=("tests.enabled=false",)).all("Pod")


@pytest.mark.parametrize("values", VARIANTS, ids=["defaults", "all-on", "tokens-in-values"])
def test_pod_is_hardened(render, values):
    r = render(*values)
    pod, c = r.pod, r.container
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532 and psc["runAsUser"] != 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["runAsNonRoot"] is True
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"] and not csc["capabilities"].get("add")
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc.get("privileged", False) is False
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    sa = r.one("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")


@pytest.mark.parametrize("values", VARIANTS, ids=["defaults", "all-on", "tokens-in-values"])
def test_resources_probes_and_ports(render, values):
    c = render(*values).container
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "admin": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["startupProbe"]["httpGet"]["port"] == "admin"
    assert c["args"] == ["serve"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HOOKBRIDGE_CONFIG"] == "/etc/hookbridge/config.toml"
    assert not any(k.startswith("HOOKBRIDGE_") and "TOKEN" in k for k in env)


@pytest.mark.parametrize("values", VARIANTS, ids=["defaults", "all-on", "tokens-in-values"])
def test_rollout_is_safe(render, values):
    r = render(*values)
    strategy = r.deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    pod, c = r.pod, r.container
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < pre_stop <= 15
    shutdown = duration_seconds(tomllib.loads(r.config_toml())["shutdown_timeout"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown
    spread = pod["topologySpreadConstraints"]
    assert "kubernetes.io/hostname" in {s["topologyKey"] for s in spread}
    selector = r.deployment["spec"]["selector"]["matchLabels"]
    for s in spread:
        assert s["labelSelector"]["matchLabels"] == selector
    assert pod["containers"][0]["image"].startswith(("ghcr.io/", "registry.example.com/"))


def test_config_change_rolls_the_pods(render):
    a = render(TOKENS).deployment["spec"]["template"]["metadata"]["annotations"]
    b = render(TOKENS, sets=("config.maxInFlight=10",)).deployment["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"]
    c = render(TOKENS, sets=("sendbird.apps[0].apiTokens[0]=rotated",)).deployment["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/secret"] != c["checksum/secret"]
    assert a["checksum/config"] == c["checksum/config"]


def test_service_exposes_webhook_and_admin_ports(render):
    r = render()
    svc = r.one("Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["http"]["targetPort"] == "http" and ports["admin"]["targetPort"] == "admin"
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == r.deployment["spec"]["selector"]["matchLabels"]


# --- configuration and secrets ----------------------------------------------------------------

def test_config_toml_is_valid_and_complete(render):
    cfg = tomllib.loads(render(ALL_ON).config_toml())
    assert cfg["http_addr"] == "0.0.0.0:8080" and cfg["admin_addr"] == "0.0.0.0:9090"
    assert cfg["kafka_brokers"].count(",") == 2
    assert cfg["schema_registry_url"].endswith("/apis/ccompat/v7")
    assert cfg["schema_registry_password_file"] == "/var/run/secrets/hookbridge/registry/password"
    assert cfg["max_body_bytes"] == 2097152 and isinstance(cfg["max_in_flight"], int)
    assert cfg["publish_timeout"] == "4s" and cfg["shutdown_timeout"] == "15s"
    assert cfg["topic_replication_factor"] == 3
    assert cfg["kafka_properties"]["security.protocol"] == "SASL_SSL"
    assert cfg["kafka_properties"]["linger.ms"] == "5", "librdkafka properties are strings"
    assert cfg["kafka_properties"]["ssl.ca.location"] == "/var/run/secrets/hookbridge/kafka-files/ssl.ca.location"
    assert cfg["kafka_property_files"] == {"sasl.password": "/var/run/secrets/hookbridge/kafka/sasl.password"}
    assert [a["app_id"] for a in cfg["apps"]] == ["A1B2C3D4-0000-4000-8000-000000000001",
                                                  "A1B2C3D4-0000-4000-8000-000000000002"]
    assert cfg["apps"][1]["api_tokens_file"] == "/var/run/secrets/hookbridge/tokens/second-app"
    assert all("api_tokens" not in a for a in cfg["apps"]), "tokens only by file"
    assert cfg["routes"] == [{"category": "group_channel:message_*", "topic": "sendbird.messages"}]


# connection and buffering limits: (values.yaml key, config.toml key, chart default, all-on.yaml)
EDGE_SETTINGS = [
    ("headerReadTimeout", "header_read_timeout", "10s", "5s"),
    ("idleTimeout", "idle_timeout", "60s", "30s"),
    ("maxConnections", "max_connections", 4096, 2048),
    ("maxBufferedBytes", "max_buffered_bytes", 268435456, 134217728),
    ("bufferWait", "buffer_wait", "500ms", "250ms"),
    ("bodyMinRate", "body_min_rate", 32768, 16384),
    ("bodyRateGrace", "body_rate_grace", "1s", "2s"),
    ("maxRequestsPerClient", "max_requests_per_client", 0, 64),
    ("trustedProxies", "trusted_proxies", [], ["10.0.0.0/8", "fd00::/8", "192.168.1.10"]),
    ("maxTypedItems", "max_typed_items", 1000, 500),
]


@pytest.mark.parametrize("values,column", [((), 2), ((ALL_ON,), 3)], ids=["defaults", "all-on"])
def test_config_toml_has_the_connection_and_buffer_limits(render, values, column):
    cfg = tomllib.loads(render(*values).config_toml())
    for setting in EDGE_SETTINGS:
        key, expected = setting[1], setting[column]
        assert key in cfg, f"{key} ({setting[0]}) is not rendered into config.toml"
        assert cfg[key] == expected and type(cfg[key]) is type(expected), \
            f"{key}: rendered {cfg[key]!r}, want {expected!r}"


def test_edge_limit_defaults_are_the_values_yaml_defaults():
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    assert {s[0]: config[s[0]] for s in EDGE_SETTINGS} == {s[0]: s[2] for s in EDGE_SETTINGS}
    all_on = yaml.safe_load((VALUES_DIR / ALL_ON).read_text())["config"]
    assert {s[0]: all_on[s[0]] for s in EDGE_SETTINGS} == {s[0]: s[3] for s in EDGE_SETTINGS}
    assert all(s[2] != s[3] for s in EDGE_SETTINGS), "all-on.yaml moves every limit off its default"


def test_default_memory_limit_holds_the_default_buffer():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    limit = values["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    # max_buffered_bytes + librdkafka's 64 MiB queue + the base (docs/deploy.md "Sizing")
    assert int(limit[:-2]) * 2**20 >= values["config"]["maxBufferedBytes"] + 64 * 2**20 + 32 * 2**20


def test_default_config_leaves_optional_keys_to_the_gateway(render):
    cfg = tomllib.loads(render().config_toml())
    assert "topic_replication_factor" not in cfg  # the gateway's default: min(3, brokers)
    assert "apps" not in cfg and "kafka_properties" not in cfg


def test_existing_secret_is_mounted_as_files_never_in_the_configmap(render):
    r = render(ALL_ON)
    assert not r.all("Secret"), "with existingSecret the chart creates no Secret"
    vol = next(v for v in r.pod["volumes"] if v["name"] == "secrets")
    sources = {s["secret"]["name"]: s["secret"]["items"] for s in vol["projected"]["sources"]}
    assert sources["hookbridge-sendbird-tokens"] == [
        {"key": "A1B2C3D4-0000-4000-8000-000000000001", "path": "tokens/A1B2C3D4-0000-4000-8000-000000000001"},
        {"key": "second-app", "path": "tokens/second-app"}]
    assert sources["kafka-user-hookbridge"] == [{"key": "password", "path": "kafka/sasl.password"}]
    assert sources["kafka-cluster-ca"] == [{"key": "ca.crt", "path": "kafka-files/ssl.ca.location"}]
    assert sources["registry-credentials"] == [{"key": "password", "path": "registry/password"}]
    assert vol["projected"]["defaultMode"] == 0o440
    mount = next(m for m in r.container["volumeMounts"] if m["name"] == "secrets")
    assert mount["readOnly"] is True and mount["mountPath"] == "/var/run/secrets/hookbridge"


def test_chart_created_secret_holds_tokens_one_per_line(render):
    import base64
    r = render(TOKENS)
    secret = r.one("Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"A1B2C3D4-0000-4000-8000-000000000001": "\n".join(TOKEN_VALUES) + "\n"}
    for doc in r.docs:
        if doc["kind"] != "Secret":
            assert not any(t in yaml.safe_dump(doc) for t in TOKEN_VALUES), f"token leaked into {doc['kind']}"
    vol = next(v for v in r.pod["volumes"] if v["name"] == "secrets")
    assert vol["projected"]["sources"][0]["secret"]["name"] == secret["metadata"]["name"]


# --- optional parts ---------------------------------------------------------------------------

@pytest.mark.parametrize("flag,kind", OPTIONAL.items())
def test_each_optional_part_is_switched_by_its_flag(render, flag, kind):
    assert not render(TOKENS).all(kind)
    assert len(render(TOKENS, sets=(f"{flag}=true",)).all(kind)) == 1


def test_all_optional_parts_on(render):
    r = render(ALL_ON)
    assert set(OPTIONAL.values()) <= r.kinds()
    # the HPA owns the count; without a running Deployment (helm template) it starts at minReplicas,
    # an upgrade keeps what runs (lookup) instead of dropping to 1
    assert r.deployment["spec"]["replicas"] == 2
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == r.deployment["metadata"]["name"]
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    pdb = r.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == r.deployment["spec"]["selector"]["matchLabels"]


def test_service_monitor_scrapes_the_admin_port(render):
    r = render(ALL_ON)
    sm = r.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "admin", "path": "/metrics", "scheme": "http",
                                        "interval": "30s", "scrapeTimeout": "10s"}]
    svc_labels = r.one("Service")["metadata"]["labels"]
    assert all(svc_labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["webhooks"]}


def test_network_policy_limits_ingress_and_egress(render):
    np = render(ALL_ON).one("NetworkPolicy")["spec"]
    assert set(np["policyTypes"]) == {"Ingress", "Egress"}
    by_port = {r["ports"][0]["port"]: r for r in np["ingress"]}
    assert set(by_port) == {"http", "admin"}
    assert by_port["http"]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert by_port["admin"]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    egress_ports = [{p["port"] for p in r["ports"]} for r in np["egress"]]
    assert {53} in egress_ports and {9093} in egress_ports and {443} in egress_ports
    kafka = next(r for r in np["egress"] if {p["port"] for p in r["ports"]} == {9093})
    assert kafka["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}]


def test_ingress_routes_only_the_webhook_path_with_tls(render):
    ing = render(ALL_ON).one("Ingress")["spec"]
    assert ing["ingressClassName"] == "nginx"
    assert ing["tls"] == [{"secretName": "hookbridge-tls", "hosts": ["hooks.example.com"]}]
    paths = ing["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/webhooks/sendbird"]
    assert all(p["backend"]["service"]["port"] == {"name": "http"} for p in paths)


# --- renders that must fail -------------------------------------------------------------------

def test_schema_rejects_a_wrong_type(render_error):
    err = render_error("wrong-type.yaml")
    assert "replicaCount" in err and "schema" in err


def test_schema_rejects_an_unknown_top_level_key(render_error):
    err = render_error("unknown-key.yaml")
    assert "replicas" in err and "additional properties" in err


@pytest.mark.parametrize("sets,message", [
    (("terminationGracePeriodSeconds=10",), "terminationGracePeriodSeconds"),
    (("config.publishTimeout=5s",), "5 s"),
    (("kafka.properties.sasl\\.password=hunter2",), "kafka.secretProperties"),
    (("sendbird.existingSecret=tokens",), "keep the tokens in the Secret only"),
    (("podDisruptionBudget.enabled=true", "podDisruptionBudget.minAvailable=1"), "not both"),
    (("networkPolicy.enabled=true", "networkPolicy.webhookFrom=null"), "webhookFrom"),
    (("config.logFormat=xml",), "logFormat"),
    (("kafka.properties.acks=1",), "delivery guarantee"),
    (("kafka.properties.partitioner=consistent",), "delivery guarantee"),
    (("config.shutdownTimeout=2s",), "at least config.publishTimeout"),
    (("sendbird.apps[0].appId=bad/id",), "appId"),
    (("config.shutdownTimeout=15",), "shutdownTimeout"),
    (("service.type=ExternalName",), "service"),
    (("config.maxBodyBytes=67108864",), "config.maxBufferedBytes"),
    (("config.maxBufferedBytes=10485760",), "at least 5 x config.maxBodyBytes + 65536"),
    (("config.headerReadTimeout=0s",), "headerReadTimeout"),
    (("config.idleTimeout=61m",), "idleTimeout"),
    (("config.bufferWait=3601s",), "bufferWait"),
    (("config.bodyRateGrace=1h",), "bodyRateGrace"),
    (("config.maxConnections=0",), "maxConnections"),
    (("config.bodyMinRate=-1",), "bodyMinRate"),
    (("config.maxRequestsPerClient=1000001",), "maxRequestsPerClient"),
    (("config.maxTypedItems=0",), "maxTypedItems"),
    (("config.trustedProxies={ingress-nginx}",), "trustedProxies"),
    (("config.trustedProxies=10.0.0.0/8",), "trustedProxies"),
])
def test_inconsistent_values_fail_with_a_clear_message(render_error, sets, message):
    from deploy_helpers import VALUES_DIR
    err = render_error(VALUES_DIR / TOKENS, sets=sets)
    assert message in err, err


def test_an_app_without_tokens_fails(render_error, tmp_path):
    overlay = tmp_path / "no-tokens.yaml"
    overlay.write_text("sendbird:\n  apps:\n    - appId: A1B2\n")
    assert "has no apiTokens" in render_error(overlay)


# --- NOTES.txt and README ---------------------------------------------------------------------

def render_notes(helm_bin, tmp_path, *values: str) -> str:
    """`helm template` does not render NOTES.txt and `helm install --dry-run` wants a cluster:
    render it through a copy of the chart where it is embedded in a ConfigMap with `tpl`."""
    from deploy_helpers import VALUES_DIR
    chart = tmp_path / "hookbridge"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        "data:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | toJson }}\n")
    args = ["template", "hb", str(chart), "--namespace", "webhooks", "--kube-version", "1.33.0",
            "--show-only", "templates/zz-notes.yaml"]
    for v in values:
        args += ["-f", str(VALUES_DIR / v)]
    res = run_helm(helm_bin, args)
    assert res.returncode == 0, res.stderr
    return Rendered(res.stdout).one("ConfigMap")["data"]["notes"]


def test_notes_give_the_webhook_url(helm_bin, tmp_path):
    notes = render_notes(helm_bin, tmp_path, ALL_ON)
    assert "https://hooks.example.com/webhooks/sendbird/A1B2C3D4-0000-4000-8000-000000000001" in notes
    assert "https://hooks.example.com/webhooks/sendbird/A1B2C3D4-0000-4000-8000-000000000002" in notes
    assert "WARNINGS" not in notes
    notes = render_notes(helm_bin, tmp_path / "t", TOKENS)
    assert "http://hb-hookbridge.webhooks.svc:80/webhooks/sendbird/A1B2C3D4-0000-4000-8000-000000000001" in notes
    assert "/webhooks/sendbird (without the app id) works too" in notes
    assert "prefer sendbird.existingSecret" in notes
    notes = render_notes(helm_bin, tmp_path / "d")
    assert "kafka.brokers is empty" in notes and "sendbird.apps is empty" in notes


def value_paths(node, prefix=""):
    """Dotted paths of values.yaml: maps are descended, lists and scalars are leaves; maps that
    hold free-form Kubernetes objects (securityContext, resources, ...) count as one value."""
    opaque = {"podSecurityContext", "securityContext", "resources", "behavior"}
    for k, v in node.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v and k not in opaque:
            yield from value_paths(v, path + ".")
        else:
            yield path


def test_readme_lists_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [p for p in value_paths(values) if f"`{p}`" not in readme]
    assert not missing, f"values not documented in helm/hookbridge/README.md: {missing}"


def test_schema_covers_every_value():
    import json
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in value_paths(values):
        node = schema
        for part in path.split("."):
            assert part in node.get("properties", {}), f"{path} is not in values.schema.json"
            node = node["properties"][part]
