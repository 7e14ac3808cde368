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
    ("maxTypedTextBytes", "max_typed_text_bytes", 65536, 8192),
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
    assert [p["path"] for p in paths] == ["/webhooks"], "every provider's routes, /webhooks/<provider>/..."
    assert all(p["backend"]["service"]["port"] == {"name": "http"} for p in paths)


def test_default_ingress_path_routes_every_provider(render):
    paths = render(TOKENS, sets=("ingress.enabled=true",)).one("Ingress")["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/webhooks", "Prefix")]


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
    (("config.maxTypedTextBytes=0",), "maxTypedTextBytes"),
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


# --- webhook sources (Sendbird, Stream Chat, Standard Webhooks) ---------------------------------

SOURCES = "sources-in-values.yaml"
REGISTRY_TOKEN = "registry-token.yaml"
SECRETS_DIR = "/var/run/secrets/hookbridge"
SENDBIRD_APP = "A1B2C3D4-0000-4000-8000-000000000001"


def values_file(name: str) -> dict:
    return yaml.safe_load((VALUES_DIR / name).read_text())


def secret_values(values: dict) -> list[str]:
    """Every token and source secret a values file holds."""
    found = [t for app in values.get("sendbird", {}).get("apps", []) for t in app.get("apiTokens", [])]
    found += [s for src in values.get("sources", []) for s in src.get("secrets", [])]
    return found


def overlay(tmp_path, name: str, values: dict):
    """A values file in tmp_path (given after a base file it replaces whole lists, e.g. sources)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def mounted_files(r: Rendered) -> dict[str, tuple[str, str]]:
    """Files the gateway container sees from Secret (and ConfigMap) volumes: path -> (name, key)."""
    volumes = {v["name"]: v for v in r.pod["volumes"]}
    files = {}
    for m in r.container["volumeMounts"]:
        vol = volumes[m["name"]]
        projected = [s.get("secret") or s["configMap"] for s in vol.get("projected", {}).get("sources", [])
                 if "secret" in s or "configMap" in s]
        if "secret" in vol:
            projected.append(vol["secret"])
        for sec in projected:
            for item in sec["items"]:
                path = f"{m['mountPath']}/{item['path']}"
                assert path not in files, f"{path} is mounted twice"
                files[path] = (sec["secretName"] if "secretName" in sec else sec["name"], item["key"])
    return files


def test_sources_render_as_toml_tables(render):
    cfg = tomllib.loads(render(SOURCES).config_toml())
    assert cfg["topic_prefix"] == "sendbird." and cfg["kafka_brokers"], "top-level keys stay top-level"
    assert cfg["apps"] == [{"app_id": SENDBIRD_APP, "api_tokens_file": f"{SECRETS_DIR}/tokens/{SENDBIRD_APP}"}]
    assert cfg["sources"] == [
        {"provider": "stream", "id": "chat-eu", "secrets_file": f"{SECRETS_DIR}/sources/stream-chat-eu",
         "topic_prefix": "stream.eu.", "api_key": "k9x2mq7dv4ab",
         "routes": [{"category": "message.*", "topic": "stream.eu.messages"},
                    {"category": "reaction.new", "topic": "stream.eu.messages"}]},
        {"provider": "standard", "id": "billing", "secrets_file": f"{SECRETS_DIR}/sources/billing-signing-secret",
         "key_pointer": "/data/customer_id", "event_type_pointer": "/event/type", "tolerance": "2m"},
        {"provider": "sendbird", "id": "A1B2C3D4-0000-4000-8000-000000000002",
         "secrets_file": f"{SECRETS_DIR}/sources/sendbird-A1B2C3D4-0000-4000-8000-000000000002"},
    ], "optional keys only when set, secrets only by file"
    assert "routes" not in cfg, "a source's routes stay in its table"


def test_sources_with_an_existing_secret(render):
    r = render(ALL_ON)
    cfg = tomllib.loads(r.config_toml())
    assert cfg["sources"] == [
        {"provider": "stream", "id": "chat-eu", "secrets_file": f"{SECRETS_DIR}/sources/stream-chat-eu",
         "api_key": "k9x2mq7dv4ab"},
        {"provider": "standard", "id": "billing", "secrets_file": f"{SECRETS_DIR}/sources/billing-signing-secret",
         "key_pointer": "/data/customer_id"},
    ]
    assert not r.all("Secret"), "with existing Secrets the chart creates none"
    files = mounted_files(r)
    assert files[f"{SECRETS_DIR}/sources/stream-chat-eu"] == ("hookbridge-source-secrets", "stream-chat-eu")
    assert files[f"{SECRETS_DIR}/sources/billing-signing-secret"] == ("hookbridge-source-secrets", "billing-signing-secret")
    assert "checksum/secret" not in r.deployment["spec"]["template"]["metadata"]["annotations"]


REGISTRY_FILES = ("schema_registry_password_file", "schema_registry_bearer_token_file",
                  "schema_registry_ca_file", "schema_registry_client_cert_file",
                  "schema_registry_client_key_file")


@pytest.mark.parametrize("values", [(SOURCES,), (ALL_ON,), (TOKENS,), (REGISTRY_TOKEN,)],
                         ids=["sources-in-values", "all-on", "tokens-in-values", "registry-token"])
def test_every_secret_file_in_the_config_is_mounted(render, values):
    r = render(*values)
    cfg = tomllib.loads(r.config_toml())
    paths = [a["api_tokens_file"] for a in cfg.get("apps", [])] + [s["secrets_file"] for s in cfg.get("sources", [])]
    paths += list(cfg.get("kafka_property_files", {}).values())
    paths += [v for v in cfg.get("kafka_properties", {}).values() if v.startswith(SECRETS_DIR)]
    paths += [cfg[k] for k in REGISTRY_FILES if k in cfg]
    files = mounted_files(r)
    missing = [p for p in paths if p not in files]
    assert not missing, f"config.toml names files no volume mounts: {missing}"
    # a Secret the chart creates holds every key the volume asks of it
    created = {s["metadata"]["name"]: s["data"] for s in r.all("Secret")}
    for name, key in files.values():
        if name in created:
            assert key in created[name], f"Secret {name} has no key {key}"


def test_chart_created_sources_secret_holds_the_secrets_one_per_line(render):
    import base64
    r = render(SOURCES)
    secrets = {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
               for s in r.all("Secret")}
    assert secrets["hb-hookbridge-source-secrets"] == {
        "stream-chat-eu": "stream-secret-old-3333333333333333333333\nstream-secret-new-4444444444444444444444\n",
        "billing-signing-secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        "sendbird-A1B2C3D4-0000-4000-8000-000000000002": "sendbird-token-5555555555555555555555555555\n",
    }
    assert secrets["hb-hookbridge-api-tokens"] == {SENDBIRD_APP: "sendbird-token-2222222222222222222222222222\n"}


def test_no_secret_value_outside_the_secrets(render):
    r = render(SOURCES)
    values = secret_values(values_file(SOURCES))
    assert len(values) == 5
    assert not any(v in r.config_toml() for v in values)
    for doc in r.docs:
        if doc["kind"] != "Secret":
            leaked = [v for v in values if v in yaml.safe_dump(doc)]
            assert not leaked, f"secret leaked into {doc['kind']}: {leaked}"
    assert all("secrets" not in s for s in tomllib.loads(r.config_toml())["sources"])


def test_a_source_secret_change_rolls_the_pods(render, tmp_path):
    values = values_file(SOURCES)
    a = render(SOURCES).deployment["spec"]["template"]["metadata"]["annotations"]
    values["sources"][1]["secrets"] = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
    b = render(overlay(tmp_path, "rotated", values)).deployment["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/secret"] != b["checksum/secret"] and a["checksum/config"] == b["checksum/config"]
    # sources alone (no sendbird.apps): the chart-created Secret still rolls the pods
    only = {k: values[k] for k in ("kafka", "schemaRegistry", "sources")}
    r = render(overlay(tmp_path, "only-sources", only))
    assert [s["metadata"]["name"] for s in r.all("Secret")] == ["hb-hookbridge-source-secrets"]
    assert "checksum/secret" in r.deployment["spec"]["template"]["metadata"]["annotations"]
    assert "apps" not in tomllib.loads(r.config_toml())


def test_sendbird_apps_only_renders_as_before(render, tmp_path):
    r = render(TOKENS)
    toml_text = r.config_toml()
    assert "sources" not in tomllib.loads(toml_text)
    assert toml_text.endswith(f'\n\n[[apps]]\napp_id = "{SENDBIRD_APP}"\n'
                              f'api_tokens_file = "{SECRETS_DIR}/tokens/{SENDBIRD_APP}"\n')
    for trace in ("[[sources]]", "source-secrets", "sources/", "secrets_file"):
        assert trace not in r.text, f"{trace}: nothing of sources in a Sendbird-only render"
    assert [s["metadata"]["name"] for s in r.all("Secret")] == ["hb-hookbridge-api-tokens"]
    vol = next(v for v in r.pod["volumes"] if v["name"] == "secrets")
    assert vol["projected"]["sources"] == [{"secret": {"name": "hb-hookbridge-api-tokens", "items": [
        {"key": SENDBIRD_APP, "path": f"tokens/{SENDBIRD_APP}"}]}}]
    # the sources values at their defaults, or a sources Secret named without sources, change nothing
    same = overlay(tmp_path, "no-sources", {"sources": [], "sourcesSecret": {"existingSecret": "unused"}})
    assert render(TOKENS, same).text == r.text


def test_one_id_under_two_providers_is_two_sources(render, tmp_path):
    sources = [{"provider": p, "id": "shared", "secrets": [f"{p}-secret"]} for p in ("stream", "standard")]
    r = render(TOKENS, overlay(tmp_path, "two", {"sources": sources}))
    files = [s["secrets_file"] for s in tomllib.loads(r.config_toml())["sources"]]
    assert files == [f"{SECRETS_DIR}/sources/stream-shared", f"{SECRETS_DIR}/sources/standard-shared"]
    assert set(files) <= set(mounted_files(r))


def test_sources_sharing_a_key_of_an_existing_secret_mount_it_once(render, tmp_path):
    sources = [{"provider": "standard", "id": i, "secretKey": "signing"} for i in ("orders", "refunds")]
    r = render(ALL_ON, overlay(tmp_path, "shared", {"sources": sources}))
    assert [s["secrets_file"] for s in tomllib.loads(r.config_toml())["sources"]] == [f"{SECRETS_DIR}/sources/signing"] * 2
    assert mounted_files(r)[f"{SECRETS_DIR}/sources/signing"] == ("hookbridge-source-secrets", "signing")


@pytest.mark.parametrize("source,where", [
    ({"provider": "slack", "id": "x"}, "/sources/0/provider"),
    ({"provider": "Stream", "id": "x"}, "/sources/0/provider"),
    ({"provider": "stream", "id": "bad/id"}, "/sources/0/id"),
    ({"provider": "stream", "id": ""}, "/sources/0/id"),
    ({"provider": "stream", "id": "x" * 129}, "/sources/0/id"),
    ({"provider": "stream"}, "missing property 'id'"),
    ({"id": "x"}, "missing property 'provider'"),
    ({"provider": "standard", "id": "x", "apiKey": "k9x2mq7dv4ab"}, "/sources/0/apiKey"),
    ({"provider": "sendbird", "id": "x", "apiKey": "k9x2mq7dv4ab"}, "/sources/0/apiKey"),
    ({"provider": "stream", "id": "x", "keyPointer": "/data/id"}, "/sources/0/keyPointer"),
    ({"provider": "sendbird", "id": "x", "eventTypePointer": "/type"}, "/sources/0/eventTypePointer"),
    ({"provider": "stream", "id": "x", "tolerance": "5m"}, "/sources/0/tolerance"),
    ({"provider": "standard", "id": "x", "keyPointer": "data/id"}, "/sources/0/keyPointer"),
    ({"provider": "standard", "id": "x", "eventTypePointer": "type"}, "/sources/0/eventTypePointer"),
    ({"provider": "standard", "id": "x", "tolerance": "5 minutes"}, "/sources/0/tolerance"),
    ({"provider": "stream", "id": "x", "topicPrefix": "a b"}, "/sources/0/topicPrefix"),
    ({"provider": "stream", "id": "x", "secretKey": "a/b"}, "/sources/0/secretKey"),
    ({"provider": "stream", "id": "x", "secret": "typo"}, "additional properties 'secret'"),
    ({"provider": "stream", "id": "x", "secrets": ["two words"]}, "/sources/0/secrets/0"),
    ({"provider": "stream", "id": "x", "secrets": ["# comment"]}, "/sources/0/secrets/0"),
    ({"provider": "stream", "id": "x", "routes": [{"category": "message.*"}]}, "missing property 'topic'"),
    ({"provider": "stream", "id": "x", "routes": [{"category": "m", "topic": "a b"}]},
     "/sources/0/routes/0/topic"),
    ({"provider": "stream", "id": "x", "routes": [{"category": "", "topic": "t"}]},
     "/sources/0/routes/0/category"),
])
def test_schema_rejects_a_bad_source(render_error, tmp_path, source, where):
    source = {"secrets": ["s3cr3t"], **source}
    err = render_error(VALUES_DIR / TOKENS, overlay(tmp_path, "bad", {"sources": [source]}))
    assert "schema" in err and where in err, err


def test_schema_rejects_an_unknown_sources_secret_key(render_error, tmp_path):
    err = render_error(VALUES_DIR / TOKENS, overlay(tmp_path, "bad", {"sourcesSecret": {"name": "x"}}))
    assert "additional properties 'name'" in err, err


@pytest.mark.parametrize("values,message", [
    ({"sources": [{"provider": "stream", "id": "chat", "secrets": ["a"]},
                  {"provider": "standard", "id": "chat", "secrets": ["b"]},
                  {"provider": "stream", "id": "chat", "secrets": ["c"]}]},
     "provider stream with id chat is listed twice (sources[0] and sources[2]"),
    ({"sources": [{"provider": "stream", "id": "Chat", "secrets": ["a"]},
                  {"provider": "stream", "id": "chat", "secrets": ["b"]}]},
     "provider stream with id chat is listed twice (sources[0] and sources[1]; ids match in any case)"),
    ({"sources": [{"provider": "sendbird", "id": SENDBIRD_APP, "secrets": ["a"]}]}, "also in sendbird.apps"),
    ({"sources": [{"provider": "sendbird", "id": SENDBIRD_APP.lower(), "secrets": ["a"]}]}, "also in sendbird.apps"),
    ({"sources": [{"provider": "stream", "id": "chat"}]}, "sources[0] (stream/chat) has no secrets"),
    ({"sources": [{"provider": "stream", "id": "chat", "secrets": ["a"]}], "sourcesSecret": {"existingSecret": "s"}},
     "keep the secrets in the Secret only"),
    ({"sources": [{"provider": "stream", "id": "a", "secretKey": "k", "secrets": ["a"]},
                  {"provider": "stream", "id": "b", "secretKey": "k", "secrets": ["b"]}]}, "is used by sources[0] too"),
])
def test_inconsistent_sources_fail_with_a_clear_message(render_error, tmp_path, values, message):
    err = render_error(VALUES_DIR / TOKENS, overlay(tmp_path, "bad", values))
    assert message in err, err


def test_sources_pass_lint_and_the_kubernetes_schemas(helm_bin, render):
    import kubernetes_validate
    res = run_helm(helm_bin, ["lint", "--strict", str(CHART), "-f", str(VALUES_DIR / SOURCES)])
    assert res.returncode == 0, res.stdout + res.stderr
    for doc in render(SOURCES, kube_version="1.37.0").docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_notes_list_every_source(helm_bin, tmp_path):
    notes = render_notes(helm_bin, tmp_path, SOURCES)
    for route in (f"sendbird/{SENDBIRD_APP}", "stream/chat-eu", "standard/billing",
                  "sendbird/A1B2C3D4-0000-4000-8000-000000000002"):
        assert f"https://hookbridge.example.com/webhooks/{route}\n" in notes, route
    assert "/webhooks/stream (without the id) works too" in notes
    assert "/webhooks/standard (without the id) works too" in notes
    assert "/webhooks/sendbird (without" not in notes, "an app and a sendbird source: the id is needed"
    assert "prefer sourcesSecret.existingSecret" in notes
    assert "has no path" not in notes
    notes = render_notes(helm_bin, tmp_path / "a", ALL_ON)
    assert "https://hooks.example.com/webhooks/stream/chat-eu\n" in notes and "WARNINGS" not in notes
    assert "(stream-chat-eu, billing-signing-secret) in Secret hookbridge-source-secrets" in notes


def test_notes_warn_when_the_ingress_misses_a_provider(helm_bin, tmp_path):
    narrow = overlay(tmp_path, "narrow", {"ingress": {"hosts": [
        {"host": "hooks.example.com", "paths": [{"path": "/webhooks/sendbird", "pathType": "Prefix"}]}]}})
    notes = render_notes(helm_bin, tmp_path / "n", SOURCES, narrow)
    assert "ingress host hooks.example.com has no path for /webhooks/stream/<id>" in notes
    assert "has no path for /webhooks/standard/<id>" in notes
    assert "has no path for /webhooks/sendbird/" not in notes


def test_readme_source_examples_render(render, tmp_path):
    readme = (CHART / "README.md").read_text()
    section = readme[readme.index("## Sources (Sendbird, Stream Chat, Standard Webhooks)"):readme.index("## Values")]
    examples = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(examples) >= 3
    providers = set()
    for i, text in enumerate(examples):
        example = yaml.safe_load(text)
        path = tmp_path / f"example-{i}.yaml"
        path.write_text(text)
        cfg = tomllib.loads(render(TOKENS, path).config_toml())
        assert [(s["provider"], s["id"]) for s in cfg["sources"]] == \
            [(s["provider"], s["id"]) for s in example["sources"]]
        providers |= {s["provider"] for s in example["sources"]}
    assert providers == {"sendbird", "stream", "standard"}


def test_registry_tls_and_token_come_from_mounted_files(render):
    r = render(ALL_ON)
    cfg = tomllib.loads(r.config_toml())
    files = mounted_files(r)
    assert files[cfg["schema_registry_ca_file"]] == ("company-ca", "ca.crt")
    assert files[cfg["schema_registry_client_cert_file"]] == ("hookbridge-registry-tls", "tls.crt")
    assert files[cfg["schema_registry_client_key_file"]] == ("hookbridge-registry-tls", "tls.key")
    assert cfg["otel_endpoint"] == "http://otel-collector.observability:4318"
    assert cfg["otel_service_name"] == "hookbridge-webhooks"
    assert cfg["otel_sampling_ratio"] == 0.2

    r = render(REGISTRY_TOKEN)
    cfg = tomllib.loads(r.config_toml())
    files = mounted_files(r)
    assert files[cfg["schema_registry_bearer_token_file"]] == ("registry-token", "token")
    assert files[cfg["schema_registry_ca_file"]] == ("company-trust-bundle", "bundle.pem")
    assert "schema_registry_username" not in cfg and "otel_endpoint" not in cfg
    assert cfg["otel_sampling_ratio"] == 1.0


@pytest.mark.parametrize("sets, message", [
    (("schemaRegistry.username=u", "schemaRegistry.passwordSecret.name=p"), "not both"),
    (("schemaRegistry.tls.caSecret.name=a", "schemaRegistry.tls.caConfigMap.name=b"), "one of them"),
    (("schemaRegistry.url=http://registry:8080",), "use https://"),
])
def test_contradictory_registry_settings_fail_the_render(render_error, sets, message):
    assert message in render_error(REGISTRY_TOKEN, sets=sets)
