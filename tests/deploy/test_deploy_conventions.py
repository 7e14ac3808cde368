"""Chart conventions users of other charts reach for (Bitnami's and the big projects' charts):
envFrom, initContainers, sidecars, extraObjects (tpl), hostAliases, dnsConfig, commonAnnotations,
podLabels, a Gateway API HTTPRoute, and the `helm test` hook. Each is off or empty by default,
rendered by all-on.yaml, typed by values.schema.json, and refused with a clear message when
inconsistent. scripts/check-deploy.sh validates the renders with kubernetes-validate --strict and
the HTTPRoute with crdcheck (Gateway API Go types)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from deploy_helpers import VALUES_DIR, crd_files, find_tool, require_tools, run_crdcheck

ALL_ON = "all-on.yaml"
KEDA = "keda.yaml"
TOKENS = "tokens-in-values.yaml"
NEW_POD_FIELDS = ("initContainers", "hostAliases", "dnsConfig")


def overlay(tmp_path, values: dict, name: str = "overlay"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_defaults_leave_every_convention_out(render):
    for values in [(), (TOKENS,)]:
        r = render(*values)
        pod, c = r.pod, r.container
        assert [x["name"] for x in pod["containers"]] == ["hookbridge"]
        assert not any(f in pod for f in NEW_POD_FIELDS)
        assert "envFrom" not in c
        assert not r.all("HTTPRoute") and not r.all("ScaledObject")
        for doc in r.docs:
            if doc["kind"] == "Pod":
                assert set(doc["metadata"]["annotations"]) == {"helm.sh/hook", "helm.sh/hook-delete-policy"}
            else:
                assert "annotations" not in doc["metadata"], f"{doc['kind']} has annotations by default"


def test_pod_conventions_render_into_the_pod(render):
    r = render(ALL_ON)
    pod, c = r.pod, r.container
    assert c["envFrom"] == [{"configMapRef": {"name": "hb-otel-env"}},
                            {"secretRef": {"name": "hookbridge-extra-env", "optional": True}}]
    assert [i["name"] for i in pod["initContainers"]] == ["wait-for-kafka"]
    assert [x["name"] for x in pod["containers"]] == ["hookbridge", "otel-agent"]
    sidecar = pod["containers"][1]
    assert sidecar["env"] == [{"name": "RELEASE", "value": "hb"}], "sidecars are rendered with tpl"
    assert pod["hostAliases"] == [{"ip": "10.20.0.15", "hostnames": ["registry.internal.example.com"]}]
    assert pod["dnsConfig"] == {"options": [{"name": "ndots", "value": "2"}]}
    # the gateway container is unchanged by its neighbours
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["args"] == ["serve"]


def test_init_containers_are_templated(render, tmp_path):
    extra = overlay(tmp_path, {"initContainers": [{
        "name": "migrate", "image": "{{ .Values.image.repository }}:{{ .Chart.AppVersion }}", "args": ["schemas", "check"]}]})
    init = render(TOKENS, extra).pod["initContainers"]
    assert init == [{"name": "migrate", "image": "ghcr.io/hookbridge/hookbridge:0.1.0", "args": ["schemas", "check"]}]


def test_pod_labels_are_on_the_pods_not_the_selector(render):
    r = render(ALL_ON)
    labels = r.deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["example.com/cost-center"] == "webhooks"
    assert "example.com/cost-center" not in r.deployment["spec"]["selector"]["matchLabels"]
    assert "example.com/cost-center" not in r.deployment["metadata"]["labels"]


@pytest.mark.parametrize("sets,message", [
    (("podLabels.app\\.kubernetes\\.io/name=other",), "podLabels.app.kubernetes.io/name is set by the chart"),
    (("podLabels.team=a", "commonLabels.team=b"), "podLabels.team is in commonLabels too"),
])
def test_pod_labels_may_not_clash(render_error, sets, message):
    err = render_error(VALUES_DIR / TOKENS, sets=sets)
    assert message in err, err


def test_common_annotations_are_on_every_object(render):
    for values in [(ALL_ON,), (ALL_ON, KEDA)]:
        r = render(*values)
        for doc in r.docs:
            annotations = doc["metadata"].get("annotations") or {}
            if doc["kind"] == "ResourceQuota":
                # the extra object's own value wins
                assert annotations["example.com/owner"] == "webhooks-team"
                continue
            assert annotations.get("example.com/owner") == "platform-team", doc["kind"]
        test_pod = r.one("Pod")["metadata"]["annotations"]
        assert test_pod["helm.sh/hook"] == "test", "the hook annotation stays"
        assert "example.com/owner" not in r.deployment["spec"]["template"]["metadata"]["annotations"], \
            "pods get podAnnotations, not commonAnnotations"


def test_an_objects_own_annotations_win(render):
    r = render(TOKENS, sets=("commonAnnotations.a=common", "commonAnnotations.b=common", "service.annotations.a=own",
                             "ingress.enabled=true", "ingress.annotations.b=ingress"))
    assert r.one("Service")["metadata"]["annotations"] == {"a": "own", "b": "common"}
    assert r.one("Ingress")["metadata"]["annotations"] == {"a": "common", "b": "ingress"}
    assert r.one("ConfigMap")["metadata"]["annotations"] == {"a": "common", "b": "common"}


def test_extra_objects_are_templated(render):
    r = render(ALL_ON)
    env = next(c for c in r.all("ConfigMap") if c["metadata"]["name"] == "hb-otel-env")
    assert env["data"] == {"OTEL_SERVICE_NAME": "hb-hookbridge"}
    quota = r.one("ResourceQuota")
    assert quota["metadata"]["name"] == "hb-hookbridge-quota"
    assert quota["spec"]["hard"]["pods"] == "20", "tpl sees the values (2 x autoscaling.maxReplicas)"


def test_extra_objects_get_common_labels(render, tmp_path):
    extra = overlay(tmp_path, {"commonLabels": {"team": "platform"}, "extraObjects": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"team": "own"}}},
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\n"]})
    cms = {c["metadata"]["name"]: c for c in render(TOKENS, extra).all("ConfigMap")}
    assert cms["x"]["metadata"]["labels"] == {"team": "own"}
    assert cms["second"]["metadata"]["labels"] == {"team": "platform"}


@pytest.mark.parametrize("entry,message", [
    ("kind: ConfigMap\nmetadata:\n  name: x\n", "extraObjects[0] needs apiVersion, kind and metadata.name"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n", "extraObjects[0] is not a YAML object after tpl"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Values.nope.deeper }}"}}, "nil pointer"),
])
def test_broken_extra_objects_fail_clearly(render_error, tmp_path, entry, message):
    err = render_error(VALUES_DIR / TOKENS, overlay(tmp_path, {"extraObjects": [entry]}))
    assert message in err, err


@pytest.mark.parametrize("values,where", [
    ({"envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]}, "/envFrom/0"),
    ({"envFrom": [{"secret": {"name": "a"}}]}, "additional properties 'secret'"),
    ({"sidecars": [{"name": "x"}]}, "missing property 'image'"),
    ({"sidecars": [{"name": "hookbridge", "image": "x"}]}, "/sidecars/0/name"),
    ({"initContainers": [{"image": "x"}]}, "missing property 'name'"),
    ({"hostAliases": [{"hostnames": ["a"]}]}, "missing property 'ip'"),
    ({"dnsConfig": {"ndots": 2}}, "additional properties 'ndots'"),
    ({"extraObjects": [3]}, "/extraObjects/0"),
    ({"commonAnnotations": {"a": 1}}, "/commonAnnotations/a"),
    ({"httpRoute": {"hostname": "x"}}, "additional properties 'hostname'"),
    ({"httpRoute": {"parentRefs": [{"namespace": "x"}]}}, "missing property 'name'"),
])
def test_schema_types_the_conventions(render_error, tmp_path, values, where):
    err = render_error(VALUES_DIR / TOKENS, overlay(tmp_path, values))
    assert "schema" in err and where in err, err


# --- HTTPRoute -------------------------------------------------------------------------------

def test_http_route_routes_only_the_webhook_path(render):
    r = render(ALL_ON)
    route = r.one("HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    assert spec["hostnames"] == ["hooks.example.com"]
    [rule] = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/webhooks"}}], "like the Ingress"
    svc = r.one("Service")
    assert rule["backendRefs"] == [{"name": svc["metadata"]["name"], "port": 80}]
    http = next(p for p in svc["spec"]["ports"] if p["name"] == "http")
    assert http["port"] == 80, "the webhook port, never the admin port"
    assert route["metadata"]["annotations"]["example.com/route-owner"] == "webhooks"


def test_http_route_needs_a_parent(render_error):
    err = render_error(VALUES_DIR / TOKENS, sets=("httpRoute.enabled=true",))
    assert "httpRoute.parentRefs is empty" in err, err


def test_http_route_parent_refs_and_hostnames_are_templated(render, tmp_path):
    extra = overlay(tmp_path, {"httpRoute": {"enabled": True, "parentRefs": [{"name": "{{ .Release.Name }}-gw"}],
                                             "hostnames": ["{{ .Release.Namespace }}.hooks.example.com"],
                                             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                                                 "remove": ["X-Debug"]}}]}})
    spec = render(TOKENS, extra).one("HTTPRoute")["spec"]
    assert spec["parentRefs"] == [{"name": "hb-gw"}]
    assert spec["hostnames"] == ["webhooks.hooks.example.com"]
    assert spec["rules"][0]["filters"][0]["type"] == "RequestHeaderModifier"


def test_http_route_passes_crdcheck_and_a_broken_one_does_not(render, tmp_path):
    crdcheck = find_tool("crdcheck", "CRDCHECK")
    if crdcheck is None:
        if require_tools():
            pytest.fail("crdcheck not found")
        pytest.skip("crdcheck not found: run scripts/check-deploy.sh")
    route = render(ALL_ON).one("HTTPRoute")
    good = tmp_path / "route.yaml"
    good.write_text(yaml.safe_dump(route))
    res = run_crdcheck(crdcheck, good)
    assert res.returncode == 0 and "HTTPRoute hb-hookbridge passed" in res.stdout, res.stdout + res.stderr
    broken = [
        (lambda s: s.__setitem__("parentRefs", []), "spec.parentRefs is empty"),
        (lambda s: s["rules"][0]["matches"][0]["path"].__setitem__("value", "webhooks"), "must be an absolute path"),
        (lambda s: s["rules"][0]["backendRefs"][0].pop("port"), "a Service backend needs a port"),
        (lambda s: s.__setitem__("hostnames", ["hooks_example.com"]), "is not a hostname"),
        (lambda s: s["rules"][0].__setitem__("backend", {}), 'unknown field "backend"'),
    ]
    for mutate, message in broken:
        doc = yaml.safe_load(yaml.safe_dump(route))
        mutate(doc["spec"])
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(doc))
        res = run_crdcheck(crdcheck, path)
        assert res.returncode == 1 and message in res.stdout, (message, res.stdout + res.stderr)


# --- helm test ---------------------------------------------------------------------------------

def test_helm_test_runs_the_healthcheck_against_the_service(render):
    r = render(ALL_ON)
    test = r.one("Pod")
    assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [c] = test["spec"]["containers"]
    svc = r.one("Service")["metadata"]["name"]
    # `hookbridge healthcheck --url` (src/main.rs): exit 0 only on a 2xx from /readyz
    assert c["args"] == ["healthcheck", "--url", f"http://{svc}.webhooks.svc:9090/readyz"]
    assert c["image"] == r.container["image"]


def test_notes_give_the_http_route_urls(helm_bin, tmp_path):
    from test_deploy_chart import render_notes
    route = overlay(tmp_path, {"httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}],
                                             "hostnames": ["hooks.example.org"]}}, "route")
    notes = render_notes(helm_bin, tmp_path / "n", TOKENS, route)
    assert "https://hooks.example.org/webhooks/sendbird/A1B2C3D4-0000-4000-8000-000000000001\n" in notes
    assert "No Ingress" not in notes and "Expose them over HTTPS" not in notes
    # a single replica warning considers KEDA the owner of the count, as the HPA
    keda = overlay(tmp_path, {"replicaCount": 1, "keda": {"enabled": True, "serverAddress": "http://prom:9090"}}, "keda")
    assert "replicaCount is 1" not in render_notes(helm_bin, tmp_path / "k", TOKENS, keda)
    single = overlay(tmp_path, {"replicaCount": 1}, "single")
    assert "replicaCount is 1" in render_notes(helm_bin, tmp_path / "s", TOKENS, single)
