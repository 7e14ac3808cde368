"""The Helm chart on a real cluster (issue 12): `make k8s-test`.

Runs against the cluster of scripts/k8s-local.sh (up, with hookbridge:dev loaded) and the local
stack on the host, which the pods reach at the pod bridge's address: the broker gets a second
listener there (KAFKA_EXTRA_LISTENER, scripts/stack.sh), the registry a TCP relay (socat).
Each step prints what it saw; any failure exits non-zero with the reason. Nothing is skipped.

Steps: restricted namespace and tokens Secret -> helm install --wait (two replicas) -> readiness
follows the broker (cut off from the pods: unready; back: ready) -> signed webhooks through the Service from
a pod running the project's image (`hookbridge send`) and through `kubectl port-forward`, decoded
from Kafka with AvroDeserializer -> helm test -> helm upgrade under load through the Service
(every 200 in Kafka, no connection errors) -> token rotation without restarts -> optional chart
parts (PDB, NetworkPolicy, HPA; ServiceMonitor with the Prometheus Operator's CRD) -> helm
uninstall leaves nothing.

Environment: K8S_IMAGE (the name `k8s-local.sh load` printed), HELM, KUBECTL, KUBECONFIG,
HOST_IP (from the Makefile), LOAD_SECONDS_AFTER_ROLLOUT [5].
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

REPO = Path(__file__).resolve().parents[2]
HELM = os.environ.get("HELM", str(REPO / ".tools" / "bin" / "helm"))
KUBECTL = os.environ["KUBECTL"]
KUBECONFIG = os.environ["KUBECONFIG"]
IMAGE = os.environ["K8S_IMAGE"]  # e.g. localhost/hookbridge:dev
HOST_IP = os.environ["HOST_IP"]
STACK_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
STACK_REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
POD_KAFKA = f"{HOST_IP}:19092"
POD_REGISTRY_PORT = 18081
LOAD_AFTER = float(os.environ.get("LOAD_SECONDS_AFTER_ROLLOUT", "5"))

NS = "hookbridge-k8s-test"
RELEASE = "hb"
FULLNAME = "hb-hookbridge"
SECRET = "hb-api-tokens"
APP_ID = "A1B2C3D4-0000-4000-8000-0000000000C8"
PREFIX = f"k8s{int(time.time())}.sendbird."
TOPIC = PREFIX + "group_channel"
TOKEN_1 = "k8s-token-one-" + secrets.token_hex(12)
TOKEN_2 = "k8s-token-two-" + secrets.token_hex(12)

started = time.monotonic()


def say(msg: str) -> None:
    print(f"[k8s-test {time.monotonic() - started:6.1f}s] {msg}", flush=True)


class Failure(Exception):
    pass


def run(*args: str, check: bool = True, timeout: float = 300, input: bytes | None = None) -> str:
    env = dict(os.environ, KUBECONFIG=KUBECONFIG)
    try:
        p = subprocess.run(args, capture_output=True, timeout=timeout, env=env, input=input)
    except subprocess.TimeoutExpired:
        raise Failure(f"{' '.join(args[:4])} ... did not finish within {timeout:.0f} s") from None
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(args[:4])} ... exited {p.returncode}:\n{p.stdout.decode()}{p.stderr.decode()}")
    return p.stdout.decode()


def kubectl(*args: str, **kw) -> str:
    return run(KUBECTL, *args, **kw)


def kns(*args: str, **kw) -> str:
    return kubectl("-n", NS, *args, **kw)


def helm(*args: str, **kw) -> str:
    return run(HELM, *args, "--namespace", NS, **kw)


def wait_until(what: str, cond, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except (Failure, OSError) as e:  # a refused or reset connection is one more try
            last = e
        time.sleep(interval)
    raise Failure(f"{what}: not within {timeout:.0f} s (last: {last})")


# ----------------------------------------------------------------------------------------------
# webhooks


def body(n: int, tag: str) -> bytes:
    """A group_channel:message_send body as Sendbird writes it, unique per call."""
    channel = f"k8s_{tag}_{n % 16}"
    return (
        '{"category":"group_channel:message_send","sender":{"user_id":"u%d","nickname":"U",'
        '"profile_url":"","metadata":{}},"silent":false,"type":"MESG",'
        '"payload":{"message_id":%d,"custom_type":"","message":"%s %s","created_at":%d,"data":""},'
        '"channel":{"name":"k8s","channel_url":"%s","custom_type":"","data":""},"app_id":"%s"}'
        % (n, n, tag, uuid.uuid4().hex, int(time.time() * 1000), channel, APP_ID)
    ).encode()


def sign(token: str, data: bytes) -> str:
    return hmac.new(token.encode(), data, hashlib.sha256).hexdigest()


def post(host: str, port: int, data: bytes, token: str, timeout: float = 15) -> int:
    """One signed webhook on a new connection; the status, or raises OSError."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/webhooks/sendbird",
            body=data,
            headers={
                "content-type": "application/json",
                "x-sendbird-signature": sign(token, data),
                "connection": "close",
            },
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def consume_bodies(topic: str, want: set[bytes], timeout: float = 60) -> set[bytes]:
    """raw_body of every record of the topic, decoded with the registry's schema: everything up
    to the high watermarks taken at the start (so what is absent was never written), and until
    all of `want` were seen or the timeout; returns the set of raw bodies seen."""
    registry = SchemaRegistryClient({"url": STACK_REGISTRY})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": STACK_BOOTSTRAP,
            "group.id": "k8s-test-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    seen: set[bytes] = set()
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = md.topics[topic].partitions
        high = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        pos = {p: 0 for p in parts}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (want <= seen and all(pos[p] >= high[p] for p in parts)):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            pos[msg.partition()] = msg.offset() + 1
            rec = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
            if rec["app_id"] != APP_ID:
                raise Failure(f"a record of {topic} has app_id {rec['app_id']!r}")
            seen.add(rec["raw_body"].encode())
    finally:
        consumer.close()
    return seen


# ----------------------------------------------------------------------------------------------
# cluster state


def pods() -> list[dict]:
    out = kns("get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=gateway", "-o", "json")
    return json.loads(out)["items"]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def ready_count() -> int:
    return sum(1 for p in pods() if ready(p) and not p["metadata"].get("deletionTimestamp"))


def restarts() -> dict[str, int]:
    return {
        p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))
        for p in pods()
    }


def cluster_ip() -> str:
    return kns("get", "service", FULLNAME, "-o", "jsonpath={.spec.clusterIP}")


def stack(*args: str) -> None:
    """scripts/stack.sh with the broker's listener for pods (read when the broker starts)."""
    env = dict(os.environ, STACK_TIMEOUT="300", KAFKA_EXTRA_LISTENER=POD_KAFKA)
    p = subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), *args], env=env, capture_output=True, timeout=360)
    if p.returncode != 0:
        raise Failure(f"stack.sh {' '.join(args)}: {p.stderr.decode()}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def tokens_secret(*tokens: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NS},
        "type": "Opaque",
        "stringData": {APP_ID: "\n".join(tokens) + "\n"},
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest).encode())


def values(**overrides) -> list[str]:
    base = {
        "image.repository": IMAGE.rsplit(":", 1)[0],
        "image.tag": IMAGE.rsplit(":", 1)[1],
        "image.pullPolicy": "Never",
        "replicaCount": "2",
        "kafka.brokers": POD_KAFKA,
        "schemaRegistry.url": f"http://{HOST_IP}:{POD_REGISTRY_PORT}/apis/ccompat/v7",
        "sendbird.existingSecret": SECRET,
        "sendbird.apps[0].appId": APP_ID,
        "config.topicPrefix": PREFIX,
        "config.topicPartitions": "3",
        "config.topicReplicationFactor": "1",
        "config.logFormat": "json",
        "resources.requests.cpu": "50m",
        "resources.requests.memory": "64Mi",
    }
    base.update(overrides)
    out: list[str] = []
    for k, v in base.items():
        out += ["--set-string" if k.startswith("image.") or k.endswith("appId") or k == "config.topicPrefix" else "--set", f"{k}={v}"]
    return out


# ----------------------------------------------------------------------------------------------
# steps


def step_prepare() -> None:
    if not port_open(HOST_IP, 19092):
        say(f"restarting the local broker with a listener for pods on {POD_KAFKA}")
        stack("kafka-stop")
        stack("kafka-start")
    kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", timeout=180)
    kubectl("create", "namespace", NS)
    kubectl(
        "label", "namespace", NS,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
    )
    wait_until("default ServiceAccount", lambda: kns("get", "serviceaccount", "default", check=False), 60)
    tokens_secret(TOKEN_1)
    # admission really enforces: a privileged pod is refused
    bad = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "not-restricted", "namespace": NS},
        "spec": {"containers": [{"name": "c", "image": IMAGE, "securityContext": {"privileged": True}}]},
    }
    p = subprocess.run([KUBECTL, "apply", "-f", "-"], input=json.dumps(bad).encode(), capture_output=True,
                       env=dict(os.environ, KUBECONFIG=KUBECONFIG))
    if p.returncode == 0 or b"violates PodSecurity" not in p.stderr:
        raise Failure(f"a privileged pod was not refused by PodSecurity: {p.stdout!r} {p.stderr!r}")
    say("namespace enforces PodSecurity restricted (a privileged pod was refused)")


def step_install() -> None:
    t0 = time.monotonic()
    helm("install", RELEASE, str(REPO / "helm" / "hookbridge"), *values(), "--wait", "--timeout", "180s", timeout=240)
    n = ready_count()
    if n != 2:
        raise Failure(f"helm install --wait returned with {n} ready pods, not 2")
    say(f"helm install --wait: 2 pods Ready in {time.monotonic() - t0:.1f} s under PodSecurity restricted")


BROKER_CUT = ["INPUT", "-s", "10.244.0.0/24", "-d", HOST_IP, "-p", "tcp", "--dport", POD_KAFKA.rsplit(":", 1)[1],
              "-m", "comment", "--comment", "hookbridge k8s-test: broker cut off from the pods",
              "-j", "REJECT", "--reject-with", "tcp-reset"]


def step_readiness_follows_kafka() -> None:
    """The broker goes away for the pods (every packet to its pod listener answered with a TCP
    reset, as from a host whose broker stopped) and comes back. Restarting the stack's broker
    itself takes minutes once the earlier suites left thousands of partitions behind."""
    run("iptables", "-I", *BROKER_CUT)
    t0 = time.monotonic()
    try:
        wait_until("pods unready with the broker unreachable", lambda: ready_count() == 0, 90)
        say(f"broker unreachable from the pods: both pods unready after {time.monotonic() - t0:.1f} s")
    finally:
        run("iptables", "-D", *BROKER_CUT, check=False)
    t0 = time.monotonic()
    wait_until("pods ready again with the broker back", lambda: ready_count() == 2, 120)
    say(f"broker reachable again: both pods Ready after {time.monotonic() - t0:.1f} s")


def step_webhooks_through_service() -> None:
    bodies: list[bytes] = []
    # from inside the cluster: a pod with the project's image runs `hookbridge send`
    b = body(1, "inpod")
    bodies.append(b)
    kns("create", "configmap", "k8s-test-body", f"--from-literal=body.json={b.decode()}")
    kns("create", "secret", "generic", "k8s-test-token", f"--from-literal=token={TOKEN_1}")
    sc = {
        "runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": True,
    }
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "k8s-test-sender", "namespace": NS},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "containers": [{
                "name": "send", "image": IMAGE, "imagePullPolicy": "Never", "securityContext": sc,
                "args": ["send", "--url", f"http://{FULLNAME}.{NS}.svc/webhooks/sendbird", "--token-env", "TOKEN", "/body/body.json"],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "k8s-test-token", "key": "token"}}}],
                "volumeMounts": [{"name": "body", "mountPath": "/body", "readOnly": True}],
            }],
            "volumes": [{"name": "body", "configMap": {"name": "k8s-test-body"}}],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(pod).encode())
    phase = wait_until(
        "the sender pod to finish",
        lambda: (lambda ph: ph if ph in ("Succeeded", "Failed") else None)(
            kns("get", "pod", "k8s-test-sender", "-o", "jsonpath={.status.phase}")),
        90,
    )
    log = kns("logs", "k8s-test-sender").strip()
    if phase != "Succeeded" or not log.startswith("200"):
        raise Failure(f"hookbridge send in a pod through the Service (DNS name): {phase}, {log!r}")
    say(f"pod -> Service {FULLNAME}.{NS}.svc (cluster DNS, kube-proxy): {log}")
    kns("delete", "pod", "k8s-test-sender", "--wait=false")

    # from the host through kubectl port-forward
    local_port = 18480
    pf = subprocess.Popen(
        [KUBECTL, "-n", NS, "port-forward", f"service/{FULLNAME}", f"{local_port}:80"],
        env=dict(os.environ, KUBECONFIG=KUBECONFIG), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_until("kubectl port-forward", lambda: port_open("127.0.0.1", local_port), 30, 0.5)
        for n in range(2, 5):
            b = body(n, "portforward")
            st = post("127.0.0.1", local_port, b, TOKEN_1)
            if st != 200:
                raise Failure(f"webhook through kubectl port-forward answered {st}")
            bodies.append(b)
        forged = body(99, "forged")
        st = post("127.0.0.1", local_port, forged, "not-the-token")
        if st != 401:
            raise Failure(f"a forged webhook through port-forward answered {st}, not 401")
    finally:
        pf.terminate()
        pf.wait(10)
    say("host -> kubectl port-forward -> Service: 3 signed webhooks 200, a forged one 401")
    seen = consume_bodies(TOPIC, set(bodies))
    missing = [b for b in bodies if b not in seen]
    if missing:
        raise Failure(f"{len(missing)} of {len(bodies)} webhooks answered 200 are not in {TOPIC}")
    if forged in seen:
        raise Failure("the forged webhook reached Kafka")
    say(f"all 4 decoded from {TOPIC} with AvroDeserializer (raw bodies byte for byte); the forged one is absent")


def step_helm_test() -> None:
    out = helm("test", RELEASE, "--timeout", "120s", timeout=180)
    if "Succeeded" not in out:  # helm test also exits non-zero when the hook fails
        raise Failure(f"helm test: {out}")
    say("helm test: the readyz hook (project image, hookbridge healthcheck via the Service's DNS name) Succeeded")


def step_rolling_upgrade_under_load() -> None:
    ip = cluster_ip()
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"requests": 0, "200": 0, "503": 0, "other": 0, "errors": 0, "200 during rollout": 0}
    window = {"open": False}
    other: list[str] = []
    ok_bodies: set[bytes] = set()
    counter = iter(range(10**9))

    def worker() -> None:
        while not stop.is_set():
            with lock:
                n = next(counter)
            b = body(n, "rolling")
            try:
                st = post(ip, 80, b, TOKEN_1)
            except OSError as e:
                with lock:
                    stats["requests"] += 1
                    stats["errors"] += 1
                    other.append(f"connection error: {e!r}")
                continue
            with lock:
                stats["requests"] += 1
                if st == 200:
                    stats["200"] += 1
                    ok_bodies.add(b)
                    if window["open"]:
                        stats["200 during rollout"] += 1
                elif st == 503:
                    stats["503"] += 1
                else:
                    stats["other"] += 1
                    other.append(f"status {st}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(6)]
    before = {p["metadata"]["name"] for p in pods()}
    for t in threads:
        t.start()
    time.sleep(3)
    t0 = time.monotonic()
    window["open"] = True
    helm("upgrade", RELEASE, str(REPO / "helm" / "hookbridge"), *values(**{"config.logLevel": "debug"}),
         "--wait", "--timeout", "240s", timeout=300)
    kns("rollout", "status", f"deployment/{FULLNAME}", "--timeout=180s", timeout=200)
    rollout = time.monotonic() - t0
    # old pods finish terminating (preStop + drain) while the load goes on
    wait_until("old pods gone", lambda: not (before & {p["metadata"]["name"] for p in pods()}), 120)
    window["open"] = False
    time.sleep(LOAD_AFTER)
    stop.set()
    for t in threads:
        t.join(30)
    after = {p["metadata"]["name"] for p in pods()}
    if before & after:
        raise Failure(f"the upgrade did not replace the pods: {before} -> {after}")
    seen = consume_bodies(TOPIC, ok_bodies, timeout=90)
    lost = len(ok_bodies - seen)
    say(
        f"helm upgrade under load through the Service {ip}:80 (rollout {rollout:.1f} s, 6 senders, new "
        f"connection per request): requests {stats['requests']}, 200 {stats['200']}, 503 {stats['503']}, "
        f"other {stats['other']}, connection errors {stats['errors']}, lost {lost}; "
        f"{stats['200 during rollout']} answered 200 while pods were replaced"
    )
    if lost or stats["errors"] or stats["other"] or stats["200 during rollout"] == 0:
        raise Failure(f"rolling upgrade lost {lost}, {stats['errors']} connection errors, other: {other[:10]}")


def every_pod_answers(data_for, token: str, status: int) -> bool:
    """Each pod, on its own address (not through the Service, which spreads requests at random)."""
    ips = [p["status"]["podIP"] for p in pods() if ready(p)]
    return len(ips) == 2 and all(post(ip, 8080, data_for(i), token) == status for i, ip in enumerate(ips))


def step_token_rotation() -> None:
    ip = cluster_ip()
    before = restarts()
    uids = {p["metadata"]["uid"] for p in pods()}
    if post(ip, 80, body(1000, "rotation"), TOKEN_2) != 401:
        raise Failure("the second token was accepted before it was added")
    tokens_secret(TOKEN_1, TOKEN_2)
    t0 = time.monotonic()
    # every pod must take it: ask repeatedly (new connections spread over the endpoints)
    wait_until(
        "webhooks signed with the added token accepted by every pod",
        lambda: every_pod_answers(lambda i: body(1001 + i, "rotation"), TOKEN_2, 200),
        150, 2,
    )
    added = time.monotonic() - t0
    tokens_secret(TOKEN_2)
    t0 = time.monotonic()
    wait_until(
        "webhooks signed with the removed token refused by every pod",
        lambda: every_pod_answers(lambda i: body(1100 + i, "rotation"), TOKEN_1, 401),
        150, 2,
    )
    removed = time.monotonic() - t0
    if post(ip, 80, body(1200, "rotation"), TOKEN_2) != 200:
        raise Failure("the remaining token is refused after the rotation")
    if restarts() != before or {p["metadata"]["uid"] for p in pods()} != uids:
        raise Failure(f"pods restarted during the rotation: {before} -> {restarts()}")
    say(f"token rotation through the Secret, no restart: added token accepted after {added:.1f} s, "
        f"removed token refused (401) after {removed:.1f} s")


def step_optional_parts() -> None:
    extra = {
        "podDisruptionBudget.enabled": "true",
        "networkPolicy.enabled": "true",
        "autoscaling.enabled": "true",
        "autoscaling.minReplicas": "2",
        "autoscaling.maxReplicas": "3",
        # what the policy must allow here (it is accepted, not enforced, by the bridge plugin)
        "networkPolicy.kafka.ports[0]": POD_KAFKA.rsplit(":", 1)[1],
        "networkPolicy.schemaRegistry.ports[0]": str(POD_REGISTRY_PORT),
        "networkPolicy.dns.to": "null",
    }
    crd = os.environ.get("SERVICEMONITOR_CRD")
    if crd:
        kubectl("apply", "--server-side", "-f", crd, timeout=120)
        wait_until("ServiceMonitor CRD established",
                   lambda: "True" in kubectl("get", "crd", "servicemonitors.monitoring.coreos.com",
                                             "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"), 60)
        extra["serviceMonitor.enabled"] = "true"
    # three pods run before autoscaling is turned on: the upgrade must keep them (the chart looks
    # the running count up), not drop to 1 (Helm removing `replicas`) nor reset to minReplicas
    kns("scale", f"deployment/{FULLNAME}", "--replicas=3")
    wait_until("three pods Ready", lambda: ready_count() == 3, 120)
    helm("upgrade", RELEASE, str(REPO / "helm" / "hookbridge"), *values(**extra), "--wait", "--timeout", "180s", timeout=240)
    replicas = int(kns("get", "deployment", FULLNAME, "-o", "jsonpath={.spec.replicas}"))
    if replicas != 3:
        raise Failure(f"turning autoscaling on changed the running Deployment from 3 to {replicas} replicas")
    kinds = ["poddisruptionbudget", "networkpolicy", "horizontalpodautoscaler"] + (["servicemonitor"] if crd else [])
    for kind in kinds:
        kns("get", kind, FULLNAME)
    if ready_count() != 3:
        raise Failure(f"{ready_count()} pods ready with the optional parts installed, not 3")
    if post(cluster_ip(), 80, body(2000, "optional"), TOKEN_2) != 200:
        raise Failure("webhook refused with the optional parts installed")
    say(f"optional parts accepted by the API server and present: {', '.join(kinds)}"
        + ("" if crd else " (no ServiceMonitor CRD given)")
        + "; turning the HPA on kept the 3 running pods")


def step_uninstall() -> None:
    helm("uninstall", RELEASE, "--wait", "--timeout", "120s", timeout=180)
    wait_until("the release's pods gone", lambda: not pods(), 90)
    left = kns("get", "all,configmap,secret,serviceaccount,pdb,networkpolicy,hpa,role,rolebinding",
               "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name").split()
    if left:
        raise Failure(f"helm uninstall left: {left}")
    names = kns("get", "configmap,secret,serviceaccount", "-o", "name").split()
    ours = {"configmap/kube-root-ca.crt", "serviceaccount/default", f"secret/{SECRET}",
            "configmap/k8s-test-body", "secret/k8s-test-token"}
    strays = [n for n in names if n not in ours]
    if strays:
        raise Failure(f"helm uninstall left: {strays}")
    say("helm uninstall: nothing of the release is left in the namespace")
    kubectl("delete", "namespace", NS, "--wait=true", timeout=180)


def main() -> int:
    # a CI timeout's SIGTERM still runs the finally blocks (iptables rule, relay)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    relay = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{POD_REGISTRY_PORT},bind={HOST_IP},fork,reuseaddr",
         "TCP:" + STACK_REGISTRY.split("//", 1)[1].split("/", 1)[0]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    run("iptables", "-D", *BROKER_CUT, check=False)  # left over from an interrupted run
    try:
        for step in (step_prepare, step_install, step_readiness_follows_kafka, step_webhooks_through_service,
                     step_helm_test, step_rolling_upgrade_under_load, step_token_rotation,
                     step_optional_parts, step_uninstall):
            step()
    except Exception as e:  # noqa: BLE001 - every failure gets the diagnostics
        say(f"FAILED: {e}")
        try:
            print(kns("get", "pods,events", "-o", "wide", check=False)[-4000:])
            for p in pods():
                print(kns("logs", p["metadata"]["name"], "--tail=30", check=False))
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        return 1
    finally:
        relay.terminate()
    say("all cluster checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
