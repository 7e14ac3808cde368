"""A JVM consumer that no one here wrote the decoder of: examples/jvm-consumer.

The Java program reads the gateway's topics with the Apache Kafka Java client and decodes them
with Apicurio Registry's Avro serde from Maven Central (AvroKafkaDeserializer, 4-byte content
ids). This test builds it with Maven, sends signed webhooks so that every Sendbird family topic,
every Stream family topic and a Standard Webhooks topic hold a record, plus one dead letter, runs
the jar over those topics and checks each printed record against what was sent and against what
confluent-kafka's AvroDeserializer (test_downstream's consumer) decodes from the same records.

The gateway, the signing helpers and the preconditions come from test_downstream.py; this module
gets its own gateway (its own topic prefix) from the same module-scoped fixture.

Needs, besides test_downstream's Kafka, registry and binary: java (17 or newer) and mvn on PATH.
The first build downloads the example's dependencies into ~/.m2; later builds are offline.
Anything missing is a failure with a clear message, never a skip.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

import test_downstream as td
from test_downstream import gateway  # noqa: F401  (the pytest fixture: this module's own gateway)

EXAMPLE = td.REPO / "examples" / "jvm-consumer"
JAR = EXAMPLE / "target" / "hookbridge-jvm-consumer.jar"
FIXTURES = td.REPO / "tests" / "fixtures"
FIXTURE_APP_ID = b"A1B2C3D4-0000-4000-8000-000000000001"
BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 120

# One Sendbird category per family topic (docs/events.md); "other" takes a category Sendbird
# does not have (yet).
SENDBIRD_FIXTURES = {
    # the variant whose members carry user metadata: maps of strings in the record
    "group_channel": ["variants/group_channel__message_send.member_contacts"],
    "open_channel": ["open_channel__message_send"],
    "user": ["user__block", "operators__register_by_operator"],
    "moderation": ["profanity_filter__detect"],
    "announcement": ["announcement__send_messages"],
    "notification": ["notification__send_realtime"],
}
OTHER_BODY = (
    b'{"category":"jvm_consumer_test:unknown",'
    b'"user":{"user_id":"u-other","nickname":"O","metadata":{"phone_number":"+33600000000"}},'
    b'"created_at":1718000000000,"app_id":"' + td.APP_ID.encode() + b'"}'
)
# An authentic body that is not JSON: dead-lettered byte for byte.
DEAD_LETTER_BODY = b"not json: \xc3\xa9t\xc3\xa9 " + secrets.token_hex(4).encode()

# One Stream event per family topic (docs/providers.md); call.created lands in "other".
STREAM_FIXTURES = {
    "message": "message.new",
    "channel": "channel.created",
    "member": "member.added",
    "user": "user.banned",
    "reaction": "reaction.new",
    "other": "call.created",
}
STANDARD_FIXTURES = ["invoice.paid", "channel.message_created"]

SCHEMA_NAMES = {
    provider: "{namespace}.{name}".format(**json.loads((td.REPO / "schemas" / file).read_text()))
    for provider, file in (
        ("sendbird", "sendbird_event.avsc"),
        ("stream", "stream_event.avsc"),
        ("standard", "standard_envelope.avsc"),
    )
}


# --------------------------------------------------------------------------------------------
# Building and running the Java program


@pytest.fixture(scope="module")
def oracle_registry() -> SchemaRegistryClient:
    """test_downstream's registry client, with a timeout: without one (the library's default) a
    response lost on a keep-alive connection stalls until the registry drops the idle connection,
    30 minutes later (seen once here under load); with one, the client's retry recovers."""
    return SchemaRegistryClient({"url": td.REGISTRY_URL, "timeout": 10})


def java_major(java: str) -> int:
    out = subprocess.run([java, "-XshowSettings:properties", "-version"], capture_output=True,
                         text=True, timeout=60).stderr
    m = re.search(r"java\.specification\.version = (\S+)", out)
    if not m:
        pytest.fail(f"could not tell the version of {java}:\n{out}", pytrace=False)
    v = m.group(1)
    return int(v.split(".")[1] if v.startswith("1.") else v.split(".")[0])


@pytest.fixture(scope="module")
def jar() -> Path:
    java = shutil.which("java")
    mvn = shutil.which("mvn")
    missing = [name for name, path in (("java", java), ("mvn", mvn)) if path is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found on PATH: the JVM consumer example needs a Java 17+ "
            "JDK and Maven (scripts/install-deps.sh checks for both).",
            pytrace=False,
        )
    major = java_major(java)
    if major < 17:
        pytest.fail(f"{java} is Java {major}; examples/jvm-consumer needs Java 17 or newer "
                    "(put a newer JDK first on PATH or set JAVA_HOME).", pytrace=False)
    t0 = time.monotonic()
    try:
        build = subprocess.run([mvn, "-q", "-B", "package"], cwd=EXAMPLE, capture_output=True,
                               text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mvn package in {EXAMPLE} did not finish within {BUILD_TIMEOUT_S} s:\n"
                    f"{e.stdout}\n{e.stderr}", pytrace=False)
    if build.returncode != 0:
        pytest.fail(f"mvn -q -B package in {EXAMPLE} failed ({build.returncode}):\n"
                    f"{build.stdout}\n{build.stderr}", pytrace=False)
    if not JAR.is_file():
        pytest.fail(f"mvn package succeeded but {JAR} is missing", pytrace=False)
    print(f"\nbuilt {JAR} in {time.monotonic() - t0:.1f} s")
    return JAR


def run_consumer(jar_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [shutil.which("java") or "java", "-jar", str(jar_path),
           "--bootstrap-servers", td.BOOTSTRAP, "--registry-url", td.REGISTRY_URL, *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8",
                              timeout=RUN_TIMEOUT_S + 60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{cmd} did not exit:\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")


# --------------------------------------------------------------------------------------------
# Sending


def sendbird_body(name: str) -> bytes:
    body = (FIXTURES / "sendbird" / f"{name}.json").read_bytes().strip()
    assert FIXTURE_APP_ID in body, f"{name}.json does not carry the fixtures' app id"
    return body.replace(FIXTURE_APP_ID, td.APP_ID.encode())


def post_sendbird(gw: td.Gateway, body: bytes, want_status: str) -> None:
    status, answer = td.post_webhook(gw.webhook_url, body, td.sign(body))
    assert status == 200, f"Sendbird {body[:80]!r}: {status} {answer[:300]!r}\n{gw.output()}"
    doc = json.loads(answer)
    assert doc.get("status") == want_status, f"Sendbird {body[:80]!r}: {doc}"


def post_stream(gw: td.Gateway, body: bytes, webhook_id: str) -> None:
    status, answer = td.http(
        "POST", f"http://{gw.http_addr}/webhooks/stream/{td.STREAM_ID}", body,
        {
            "Content-Type": "application/json",
            "X-Signature": hmac.new(td.STREAM_SECRET.encode(), body, hashlib.sha256).hexdigest(),
            "X-Api-Key": td.STREAM_API_KEY,
            "X-Webhook-Id": webhook_id,
            "X-Webhook-Attempt": "1",
        },
    )
    assert status == 200, f"Stream {body[:80]!r}: {status} {answer[:300]!r}"


def post_standard(gw: td.Gateway, body: bytes, msg_id: str) -> None:
    ts = int(time.time())
    signature = base64.b64encode(
        hmac.new(td.STANDARD_KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    status, answer = td.http(
        "POST", f"http://{gw.http_addr}/webhooks/standard/{td.STANDARD_ID}", body,
        {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": f"v1,{signature}",
        },
    )
    assert status == 200, f"Standard {body[:80]!r}: {status} {answer[:300]!r}"


# --------------------------------------------------------------------------------------------
# Comparing


def plain(value: Any) -> Any:
    """confluent-kafka's decoded value in the Java program's JSON terms: timestamp-millis as
    epoch milliseconds, bytes as base64."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def registered_id(topic: str) -> int:
    """The id the Confluent-compatible API hands out for the topic's subject: what the gateway
    registered and wrote into each record's 4-byte id."""
    subject = urllib.parse.quote(f"{topic}-value", safe="")
    status, body = td.http("GET", f"{td.REGISTRY_URL}/subjects/{subject}/versions/latest")
    assert status == 200, f"GET subjects/{subject}/versions/latest: {status} {body[:300]!r}"
    return json.loads(body)["id"]


# --------------------------------------------------------------------------------------------
# Tests


def test_jvm_consumer_decodes_every_topic(gateway: td.Gateway, jar: Path,
                                          oracle_registry: SchemaRegistryClient):
    gw = gateway
    # what was sent, by event id: (provider, topic, body, category/type)
    sent: dict[str, tuple[str, str, bytes, str]] = {}

    for family, names in SENDBIRD_FIXTURES.items():
        for name in names:
            body = sendbird_body(name)
            post_sendbird(gw, body, "accepted")
            sent[td.sha256_hex(body)] = ("sendbird", gw.topic(family), body,
                                         json.loads(body)["category"])
    post_sendbird(gw, OTHER_BODY, "accepted")
    sent[td.sha256_hex(OTHER_BODY)] = ("sendbird", gw.topic("other"), OTHER_BODY,
                                       "jvm_consumer_test:unknown")

    for family, event_type in STREAM_FIXTURES.items():
        body = (FIXTURES / "stream" / f"{event_type}.json").read_bytes().strip()
        webhook_id = f"jvm-{event_type}-{secrets.token_hex(6)}"
        post_stream(gw, body, webhook_id)
        sent[webhook_id] = ("stream", gw.topic(f"stream.{family}"), body, event_type)

    for event_type in STANDARD_FIXTURES:
        body = (FIXTURES / "standard" / f"{event_type}.json").read_bytes()
        msg_id = f"msg_jvm_{secrets.token_hex(8)}"
        post_standard(gw, body, msg_id)
        sent[msg_id] = ("standard", gw.topic("standard.events"), body, event_type)

    post_sendbird(gw, DEAD_LETTER_BODY, "dead_lettered")
    dlq_topic = gw.topic("dlq")
    dead_letter_id = td.sha256_hex(DEAD_LETTER_BODY)

    topics = sorted({t for _, t, _, _ in sent.values()} | {dlq_topic})
    assert len(topics) == 7 + 6 + 1 + 1, topics
    total = len(sent) + 1

    proc = run_consumer(jar, "--from-beginning", "--max-records", str(total),
                        "--timeout", str(RUN_TIMEOUT_S), *topics)
    assert proc.returncode == 0, (
        f"the JVM consumer exited with {proc.returncode}\nstderr:\n{proc.stderr}\n"
        f"stdout:\n{proc.stdout}"
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == total, f"{len(lines)} records printed, {total} expected:\n{proc.stdout}"

    # the same records as confluent-kafka's AvroDeserializer (test_downstream's consumer) reads them
    oracle = {
        r["value"]["event_id"]: r
        for r in td.consume_all(sorted({t for _, t, _, _ in sent.values()}), set(sent),
                                oracle_registry)
    }
    ids_by_topic = {t: registered_id(t) for t in {t for _, t, _, _ in sent.values()}}

    by_id: dict[str, dict[str, Any]] = {}
    for line in lines:
        event_id = line["headers"].get("hookbridge-event-id")
        assert event_id, f"record without hookbridge-event-id: {line}"
        assert event_id not in by_id, f"{event_id} printed twice"
        by_id[event_id] = line
    assert set(by_id) == set(sent) | {dead_letter_id}, (
        f"missing: {sorted(set(sent) | {dead_letter_id} - set(by_id))}, "
        f"unexpected: {sorted(set(by_id) - set(sent) - {dead_letter_id})}"
    )

    for event_id, (provider, topic, body, kind) in sent.items():
        line = by_id[event_id]
        where = f"{provider} {kind} ({event_id})"
        assert line["topic"] == topic, f"{where}: topic {line['topic']}, expected {topic}"
        assert line["schema"] == SCHEMA_NAMES[provider], f"{where}: decoded as {line['schema']}"
        # the 4-byte id in the value is the one the ccompat API returned at registration, and
        # the serde resolved it (as a content id) to this topic's schema
        assert line["schema_id"] == ids_by_topic[topic], (
            f"{where}: schema id {line['schema_id']}, ccompat says {ids_by_topic[topic]}"
        )
        value = line["value"]
        assert value["event_id"] == event_id, where
        assert value["raw_body"] == body.decode("utf-8"), f"{where}: raw_body differs"
        headers = line["headers"]
        assert headers["hookbridge-source"] == provider, where
        assert headers["hookbridge-category"] == kind, where
        if provider == "sendbird":
            assert value["category"] == kind, where
            assert value["app_id"] == td.APP_ID, where
            assert headers["hookbridge-app-id"] == td.APP_ID, where
        elif provider == "stream":
            assert value["type"] == kind, where
            assert value["source_id"] == td.STREAM_ID, where
        else:
            assert value["event_type"] == kind, where
            assert value["source_id"] == td.STANDARD_ID, where

        # field by field what confluent-kafka's AvroDeserializer decodes from the same record
        theirs = oracle[event_id]
        assert line["partition"] == theirs["partition"], where
        assert line["key"] == (theirs["key"].decode() if theirs["key"] is not None else None), where
        assert line["headers"] == {k: v.decode() for k, v in td.header_map(theirs["headers"]).items()}, where
        assert line["timestamp"] == theirs["timestamp"][1], where
        assert value == plain(theirs["value"]), (
            f"{where}: the Java decoding differs from confluent-kafka's:\n"
            f"java:   {json.dumps(value, sort_keys=True)}\n"
            f"python: {json.dumps(plain(theirs['value']), sort_keys=True, default=str)}"
        )

    # a few facts no decoder could get right by accident
    send_body = sendbird_body("variants/group_channel__message_send.member_contacts")
    send = by_id[td.sha256_hex(send_body)]["value"]
    assert by_id[send["event_id"]]["key"] == send["channel_url"] == send["channel"]["channel_url"]
    assert send["sender"]["nickname"] == json.loads(send_body)["sender"]["nickname"]
    assert [m["user_id"] for m in send["members"]] == [m["user_id"] for m in json.loads(send_body)["members"]]
    if "metadata" in send["members"][0]:  # typed since the members' metadata joined the schema
        assert [m["metadata"] for m in send["members"]] == [m["metadata"] for m in json.loads(send_body)["members"]]
    block = by_id[td.sha256_hex(sendbird_body("user__block"))]
    assert block["value"]["channel_url"] is None
    assert block["key"] == json.loads(sendbird_body("user__block"))["blocker"]["user_id"]
    other = by_id[td.sha256_hex(OTHER_BODY)]
    assert other["key"] == "u-other" and other["value"]["occurred_at"] == 1718000000000
    assert other["value"]["actor"]["metadata"] == {"phone_number": "+33600000000"}

    dead = by_id[dead_letter_id]
    assert dead["topic"] == dlq_topic
    assert dead["value"] is None and dead["schema_id"] is None
    assert base64.b64decode(dead["raw_value_base64"]) == DEAD_LETTER_BODY, "dead letter not byte for byte"
    assert dead["headers"]["hookbridge-dlq-reason"] == "not_json"
    assert dead["headers"]["hookbridge-source"] == "sendbird"


def test_jvm_consumer_fails_loudly_on_undecodable_values(gateway: td.Gateway, jar: Path):
    """A value that is not Confluent-framed, and one whose schema id the registry does not know:
    the program exits 1 and names the record, rather than printing or skipping it."""
    unframed = gateway.topic("jvm-bad.unframed")
    unknown_id = gateway.topic("jvm-bad.unknown-id")
    admin = AdminClient({"bootstrap.servers": td.BOOTSTRAP})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (unframed, unknown_id)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": td.BOOTSTRAP})
    producer.produce(unframed, value=b'{"category":"group_channel:message_send"}')
    # magic byte 0, then an id far beyond anything registered, then an Avro-looking body
    producer.produce(unknown_id, value=b"\x00" + (2**31 - 7).to_bytes(4, "big") + b"\x02a")
    assert producer.flush(30) == 0, "test records were not delivered"

    proc = run_consumer(jar, "--from-beginning", "--max-records", "1", "--timeout", "60", unframed)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stderr}\n{proc.stdout}"
    assert f"DECODE FAILED: {unframed}/0@0" in proc.stderr, proc.stderr
    assert "not in the Confluent wire format" in proc.stderr and "0x7b" in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "", f"printed an undecoded record: {proc.stdout}"

    proc = run_consumer(jar, "--from-beginning", "--max-records", "1", "--timeout", "60",
                        "--pattern", re.escape(unknown_id))
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stderr}\n{proc.stdout}"
    assert f"DECODE FAILED: {unknown_id}/0@0: schema id {2**31 - 7}" in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "", f"printed an undecoded record: {proc.stdout}"

    # and nothing at all within the timeout is exit 3, not success
    proc = run_consumer(jar, "--max-records", "1", "--timeout", "5", unframed)
    assert proc.returncode == 3, f"exit {proc.returncode}\n{proc.stderr}\n{proc.stdout}"
    assert "TIMEOUT: 0 of 1 records" in proc.stderr, proc.stderr
