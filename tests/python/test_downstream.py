"""Downstream-consumer test: what a consumer team sees when it reads hookbridge's topics.

Written the way a team consuming the topics would write it: the stock confluent_kafka
``Consumer``, ``SchemaRegistryClient`` and ``AvroDeserializer``, nothing from hookbridge.

Needs a running Kafka and a Confluent-compatible schema registry (``bash scripts/stack.sh up``)
and a built gateway binary (``cargo build``). Environment:

    KAFKA_BOOTSTRAP_SERVERS   default 127.0.0.1:9092
    SCHEMA_REGISTRY_URL       default http://127.0.0.1:8081/apis/ccompat/v7
    HOOKBRIDGE_BIN            default <repo>/target/debug/hookbridge

Anything missing is a failure with a clear message, never a skip.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REGISTRY_URL = os.environ.get(
    "SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"
).rstrip("/")
HOOKBRIDGE_BIN = Path(os.environ.get("HOOKBRIDGE_BIN", REPO / "target" / "debug" / "hookbridge"))

APP_ID = "5D2E6A1C-1B7F-4C9E-9A2D-3F4B5C6D7E8F"
TOKEN = "pytest-master-api-token-" + secrets.token_hex(8)
READY_TIMEOUT_S = 60
CONSUME_TIMEOUT_S = 60

CHANNEL_URL = "sendbird_group_channel_123"

# The other providers, configured beside the Sendbird app through [[sources]].
STREAM_ID = "py-stream"
STREAM_SECRET = "pytest-stream-api-secret-" + secrets.token_hex(8)
STREAM_API_KEY = "pytestkey1"
STANDARD_ID = "py-standard"
STANDARD_KEY = secrets.token_bytes(24)
STANDARD_SECRET = "whsec_" + base64.b64encode(STANDARD_KEY).decode("ascii")

# Bodies as Sendbird writes them: compact JSON, "/" escaped as "\/", non-ASCII as \u escapes such as \u00e9.
# (Raw strings: the backslashes are part of the bytes on the wire.)
MESSAGE_SEND_BODY = (
    r'{"category":"group_channel:message_send",'
    r'"sender":{"user_id":"alice","nickname":"Al\u00eece",'
    r'"profile_url":"https:\/\/sendbird.com\/main\/img\/profiles\/profile_05_512px.png","metadata":{}},'
    r'"silent":false,"sender_ip_addr":"203.0.113.10","custom_type":"","mention_type":"users",'
    r'"mentioned_users":[],"type":"MESG",'
    r'"payload":{"message_id":734003210,"custom_type":"","message":"h\u00e9llo, see https:\/\/example.com\/a\/b",'
    r'"translations":{},"created_at":1718000700123,"data":""},'
    r'"channel":{"name":"Caf\u00e9","channel_url":"' + CHANNEL_URL + r'","custom_type":"",'
    r'"is_distinct":false,"is_public":false,"is_super":false,"is_ephemeral":false,'
    r'"is_discoverable":false,"data":""},'
    r'"sdk":"JavaScript","app_id":"' + APP_ID + r'"}'
).encode("ascii")
MESSAGE_SEND_CREATED_AT_MS = 1718000700123

USER_BLOCK_BODY = (
    r'{"category":"user:block",'
    r'"blocker":{"user_id":"bob","nickname":"B\u00f6b",'
    r'"profile_url":"https:\/\/sendbird.com\/main\/img\/profiles\/profile_06_512px.png","metadata":{}},'
    r'"blockee":{"user_id":"carol","nickname":"Carol",'
    r'"profile_url":"https:\/\/sendbird.com\/main\/img\/profiles\/profile_07_512px.png","metadata":{}},'
    r'"app_id":"' + APP_ID + r'"}'
).encode("ascii")

# Same channel (so same key and partition) as MESSAGE_SEND_BODY, but never correctly signed:
# it must never reach Kafka.
FORGED_BODY = MESSAGE_SEND_BODY.replace(b"h\\u00e9llo", b"forged")


def sign(body: bytes, token: str = TOKEN) -> str:
    return hmac.new(token.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_webhook(url: str, body: bytes, signature: str | None) -> tuple[int, bytes]:
    headers = {"content-type": "application/json", "user-agent": "SendBird"}
    if signature is not None:
        headers["x-sendbird-signature"] = signature
    return http("POST", url, body, headers)


# --------------------------------------------------------------------------------------------
# Preconditions: fail (never skip) with a message that says what to do.


def require_services() -> None:
    problems = []
    first = BOOTSTRAP.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=3):
            pass
    except OSError as e:
        problems.append(f"Kafka is not reachable at {first} ({e})")
    try:
        status, _ = http("GET", REGISTRY_URL + "/subjects", timeout=5)
        if status != 200:
            problems.append(f"schema registry at {REGISTRY_URL} answered {status} to GET /subjects")
    except OSError as e:
        problems.append(f"schema registry is not reachable at {REGISTRY_URL} ({e})")
    if problems:
        pytest.fail(
            "; ".join(problems)
            + ". Start them with `bash scripts/stack.sh up` or point KAFKA_BOOTSTRAP_SERVERS / "
            "SCHEMA_REGISTRY_URL at running services.",
            pytrace=False,
        )


def require_binary() -> None:
    if not (HOOKBRIDGE_BIN.is_file() and os.access(HOOKBRIDGE_BIN, os.X_OK)):
        pytest.fail(
            f"hookbridge binary not found or not executable at {HOOKBRIDGE_BIN}: "
            "run `cargo build` or set HOOKBRIDGE_BIN.",
            pytrace=False,
        )


# --------------------------------------------------------------------------------------------
# The gateway under test, started as a subprocess with unique topics.


@dataclass
class Gateway:
    proc: subprocess.Popen
    http_addr: str
    admin_addr: str
    prefix: str
    log_path: Path
    exit_code: int | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def webhook_url(self) -> str:
        return f"http://{self.http_addr}/webhooks/sendbird"

    def topic(self, name: str) -> str:
        return self.prefix + name

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.exit_code is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    self._log.close()
                    raise AssertionError(
                        f"hookbridge did not exit within {timeout} s of SIGTERM; output:\n"
                        + self.output()
                    )
            self.exit_code = self.proc.returncode
            self._log.close()
        return self.exit_code


@pytest.fixture(scope="module")
def gateway():
    require_binary()
    require_services()
    run_id = secrets.token_hex(4)
    prefix = f"pytest-{run_id}."
    http_addr = f"127.0.0.1:{free_port()}"
    admin_addr = f"127.0.0.1:{free_port()}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")
    }
    env.update(
        HOOKBRIDGE_KAFKA_BROKERS=BOOTSTRAP,
        HOOKBRIDGE_SCHEMA_REGISTRY_URL=REGISTRY_URL,
        HOOKBRIDGE_SENDBIRD_APP_ID=APP_ID,
        HOOKBRIDGE_SENDBIRD_API_TOKENS=TOKEN,
        HOOKBRIDGE_HTTP_ADDR=http_addr,
        HOOKBRIDGE_ADMIN_ADDR=admin_addr,
        HOOKBRIDGE_TOPIC_PREFIX=prefix,
        HOOKBRIDGE_TOPIC_PARTITIONS="3",
        HOOKBRIDGE_LOG_FORMAT="text",
    )
    config_path = Path(tempfile.gettempdir()) / f"hookbridge-{run_id}.toml"
    config_path.write_text(
        f"""
[[sources]]
provider = "stream"
id = "{STREAM_ID}"
secrets = ["{STREAM_SECRET}"]
api_key = "{STREAM_API_KEY}"
topic_prefix = "{prefix}stream."

[[sources]]
provider = "standard"
id = "{STANDARD_ID}"
secrets = ["{STANDARD_SECRET}"]
key_pointer = "/data/channel_id"
topic_prefix = "{prefix}standard."
"""
    )
    env["HOOKBRIDGE_CONFIG"] = str(config_path)
    log_path = Path(tempfile.gettempdir()) / f"hookbridge-{run_id}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(HOOKBRIDGE_BIN), "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    gw = Gateway(proc, http_addr, admin_addr, prefix, log_path, _log=log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                gw.exit_code = proc.returncode
                log.close()
                pytest.fail(
                    f"hookbridge exited with code {proc.returncode} before it was ready; output:\n"
                    + gw.output(),
                    pytrace=False,
                )
            try:
                status, body = http("GET", f"http://{admin_addr}/readyz", timeout=2)
                if status == 200:
                    break
                last = f"{status} {body[:200]!r}"
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"hookbridge not ready within {READY_TIMEOUT_S} s (last /readyz: {last}); "
                    "output:\n" + gw.output(),
                    pytrace=False,
                )
            time.sleep(0.25)
        yield gw
    finally:
        code = gw.stop()
        print(f"\n--- hookbridge output ({log_path}) ---\n{gw.output()}")
    assert code == 0, f"hookbridge exited with {code} after SIGTERM; output:\n{gw.output()}"


@pytest.fixture(scope="module")
def registry_client() -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": REGISTRY_URL, "timeout": 10})


def consume_all(topics: list[str], want_event_ids: set[str], registry: SchemaRegistryClient,
                timeout_s: float = CONSUME_TIMEOUT_S) -> list[dict[str, Any]]:
    """Reads the topics from the beginning with a fresh group until every wanted event id was
    seen, then drains what else is there up to the end offsets. Returns one dict per record."""
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": "pytest-consumer-" + secrets.token_hex(4),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    deserializer = AvroDeserializer(registry)
    seen: list[dict[str, Any]] = []
    try:
        consumer.subscribe(topics)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if want_event_ids <= {r["value"]["event_id"] for r in seen}:
                    # everything wanted is here; make sure nothing else sits behind it
                    if caught_up(consumer):
                        break
                continue
            if msg.error():
                raise KafkaException(msg.error())
            value = deserializer(
                msg.value(), SerializationContext(msg.topic(), MessageField.VALUE)
            )
            seen.append(
                {
                    "topic": msg.topic(),
                    "partition": msg.partition(),
                    "key": msg.key(),
                    "headers": msg.headers() or [],
                    "timestamp": msg.timestamp(),
                    "raw_value": msg.value(),
                    "value": value,
                }
            )
        else:
            got = sorted(r["value"]["event_id"] for r in seen)
            raise AssertionError(
                f"records for {sorted(want_event_ids - set(got))} did not arrive within "
                f"{timeout_s} s on {topics}; got {got}"
            )
    finally:
        consumer.close()
    return seen


def caught_up(consumer: Consumer) -> bool:
    assignment = consumer.assignment()
    if not assignment:
        return False
    positions = consumer.position(assignment)
    for tp in positions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                    timeout=5)
        if tp.offset < 0:  # nothing consumed on this partition yet
            if high > 0:
                return False
        elif tp.offset < high:
            return False
    return True


def header_map(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for k, v in headers:
        out.setdefault(k, v)
    return out


def as_millis(value: Any) -> int:
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None, f"timestamp-millis decoded without a time zone: {value!r}"
        return round(value.timestamp() * 1000)
    assert isinstance(value, int) and not isinstance(value, bool), (
        f"expected a datetime (timestamp-millis) or int, got {type(value).__name__}: {value!r}"
    )
    return value


def field_of(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else None


# --------------------------------------------------------------------------------------------
# Tests


def test_unsigned_or_wrongly_signed_requests_are_rejected(gateway: Gateway):
    status, _ = post_webhook(gateway.webhook_url, FORGED_BODY, sign(FORGED_BODY, "not-the-token"))
    assert status == 401, f"wrong signature: expected 401, got {status}"
    status, _ = post_webhook(gateway.webhook_url, FORGED_BODY, None)
    assert status == 401, f"missing signature: expected 401, got {status}"
    # right token, but the signature of different bytes (Sendbird signs the exact body)
    status, _ = post_webhook(gateway.webhook_url, FORGED_BODY, sign(MESSAGE_SEND_BODY))
    assert status == 401, f"signature of another body: expected 401, got {status}"


def test_consumer_teams_decode_published_events(gateway: Gateway,
                                                registry_client: SchemaRegistryClient):
    t_start_ms = int(time.time() * 1000)

    # a forged copy first, on the same channel (same key, same partition): it must not appear
    status, _ = post_webhook(gateway.webhook_url, FORGED_BODY, sign(FORGED_BODY, "wrong-token"))
    assert status == 401, f"forged body: expected 401, got {status}"

    for body in (MESSAGE_SEND_BODY, USER_BLOCK_BODY):
        status, resp = post_webhook(gateway.webhook_url, body, sign(body))
        assert status == 200, (
            f"expected 200 for {body[:60]!r}..., got {status} {resp[:300]!r}; gateway output:\n"
            + gateway.output()
        )
    t_end_ms = int(time.time() * 1000)

    send_id = sha256_hex(MESSAGE_SEND_BODY)
    block_id = sha256_hex(USER_BLOCK_BODY)
    forged_id = sha256_hex(FORGED_BODY)

    records = consume_all(
        [gateway.topic("group_channel"), gateway.topic("user")],
        {send_id, block_id},
        registry_client,
    )
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_id.setdefault(r["value"]["event_id"], []).append(r)

    assert forged_id not in by_id, "a request with a wrong signature reached Kafka"
    assert set(by_id) == {send_id, block_id}, f"unexpected records: {sorted(by_id)}"
    assert len(by_id[send_id]) == 1 and len(by_id[block_id]) == 1, "duplicates were published"

    # every value is in the Confluent wire format: magic 0, 4-byte schema id known to the registry
    for r in records:
        raw = r["raw_value"]
        assert raw[0] == 0, f"magic byte {raw[0]} != 0"
        schema_id = int.from_bytes(raw[1:5], "big")
        assert registry_client.get_schema(schema_id).schema_type in (None, "AVRO")

    # --- group_channel:message_send
    send = by_id[send_id][0]
    v = send["value"]
    assert send["topic"] == gateway.topic("group_channel")
    assert v["raw_body"] == MESSAGE_SEND_BODY.decode("utf-8")
    assert isinstance(v["raw_body"], str)
    assert "h\\u00e9llo" in v["raw_body"] and "https:\\/\\/" in v["raw_body"], (
        "raw_body must be the bytes as sent, not re-serialised JSON"
    )
    assert v["event_id"] == send_id
    assert v["category"] == "group_channel:message_send"
    assert v["app_id"] == APP_ID
    assert v["channel_url"] == CHANNEL_URL
    received = as_millis(v["received_at"])
    assert t_start_ms - 5_000 <= received <= t_end_ms + 5_000, "received_at is not the receive time"
    assert as_millis(v["occurred_at"]) == MESSAGE_SEND_CREATED_AT_MS, "occurred_at != payload.created_at"
    assert send["key"] == CHANNEL_URL.encode("utf-8")
    h = header_map(send["headers"])
    assert h.get("hookbridge-event-id") == send_id.encode("ascii")
    assert h.get("hookbridge-category") == b"group_channel:message_send"
    assert h.get("hookbridge-app-id") == APP_ID.encode("ascii")
    assert h.get("hookbridge-source") == b"sendbird"
    ts_type, ts = send["timestamp"]
    assert ts_type != 0 and t_start_ms - 5_000 <= ts <= t_end_ms + 5_000, "record timestamp"
    # typed fields, tolerantly (shape owned by schemas/*.avsc)
    channel = v.get("channel")
    if isinstance(channel, dict):
        assert channel.get("channel_url") == CHANNEL_URL
    sender = v.get("sender")
    if isinstance(sender, dict):
        assert sender.get("user_id") == "alice"
        if "nickname" in sender:
            assert sender["nickname"] == "Al\u00eece", "typed fields hold decoded text"
    message = v.get("message")
    if isinstance(message, dict) and "text" in message:
        assert message["text"] == "h\u00e9llo, see https://example.com/a/b"

    # --- user:block (no channel: keyed by the blocker)
    block = by_id[block_id][0]
    v = block["value"]
    assert block["topic"] == gateway.topic("user")
    assert v["raw_body"] == USER_BLOCK_BODY.decode("utf-8")
    assert v["event_id"] == block_id
    assert v["category"] == "user:block"
    assert v["app_id"] == APP_ID
    assert v["channel_url"] is None
    received = as_millis(v["received_at"])
    assert t_start_ms - 5_000 <= received <= t_end_ms + 5_000
    if v.get("occurred_at") is not None:
        as_millis(v["occurred_at"])
    assert block["key"] == b"bob"
    h = header_map(block["headers"])
    assert h.get("hookbridge-event-id") == block_id.encode("ascii")
    assert h.get("hookbridge-category") == b"user:block"
    assert h.get("hookbridge-app-id") == APP_ID.encode("ascii")
    assert h.get("hookbridge-source") == b"sendbird"
    assert v.get("channel") is None
    actor = v.get("actor")
    if isinstance(actor, dict):
        assert actor.get("user_id") == "bob"


def test_consumer_teams_decode_every_providers_records(gateway: Gateway,
                                                       registry_client: SchemaRegistryClient):
    """One webhook from Stream Chat and one from a Standard Webhooks sender, each signed its own
    way, read back with the stock AvroDeserializer from each provider's topics."""
    base = f"http://{gateway.http_addr}/webhooks"
    stream_body = (
        b'{"type":"message.new","cid":"messaging:py-general","channel_type":"messaging",'
        b'"channel_id":"py-general","message":{"id":"m-1","text":"hi","type":"regular",'
        b'"user":{"id":"amy"}},"user":{"id":"amy","role":"user"},'
        b'"created_at":"2026-11-30T10:00:00.123456Z"}'
    )
    stream_id = "py-" + secrets.token_hex(8)
    status, answer = http(
        "POST", f"{base}/stream/{STREAM_ID}", stream_body,
        {
            "Content-Type": "application/json",
            "X-Signature": hmac.new(STREAM_SECRET.encode(), stream_body, hashlib.sha256).hexdigest(),
            "X-Api-Key": STREAM_API_KEY,
            "X-Webhook-Id": stream_id,
            "X-Webhook-Attempt": "1",
        },
    )
    assert status == 200, answer

    standard_body = b'{"type":"invoice.paid","timestamp":"2026-11-30T10:00:00Z","data":{"channel_id":"c-9","amount":12}}'
    msg_id = "msg_" + secrets.token_hex(8)
    ts = int(time.time())
    signed = f"{msg_id}.{ts}.".encode() + standard_body
    signature = base64.b64encode(hmac.new(STANDARD_KEY, signed, hashlib.sha256).digest()).decode()
    status, answer = http(
        "POST", f"{base}/standard", standard_body,
        {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": f"v1a,ignored v1,{signature}",
        },
    )
    assert status == 200, answer

    records = consume_all(
        [gateway.topic("stream.message"), gateway.topic("standard.events")],
        {stream_id, msg_id},
        registry_client,
    )
    by_id = {r["value"]["event_id"]: r for r in records}

    stream = by_id[stream_id]
    assert stream["topic"] == gateway.topic("stream.message")
    assert stream["key"] == b"messaging:py-general"
    value = stream["value"]
    assert value["type"] == "message.new"
    assert value["cid"] == "messaging:py-general"
    assert value["source_id"] == STREAM_ID
    assert value["raw_body"].encode() == stream_body
    assert as_millis(value["occurred_at"]) == 1796032800123
    headers = header_map(stream["headers"])
    assert headers["hookbridge-source"] == b"stream"
    assert headers["hookbridge-event-id"] == stream_id.encode()
    assert headers["hookbridge-category"] == b"message.new"

    standard = by_id[msg_id]
    assert standard["topic"] == gateway.topic("standard.events")
    assert standard["key"] == b"c-9"
    value = standard["value"]
    assert value["event_type"] == "invoice.paid"
    assert value["source_id"] == STANDARD_ID
    assert value["key"] == "c-9"
    assert value["raw_body"].encode() == standard_body
    assert value["data"] == '{"channel_id":"c-9","amount":12}'
    assert as_millis(value["occurred_at"]) == ts * 1000
    headers = header_map(standard["headers"])
    assert headers["hookbridge-source"] == b"standard"
    assert headers["hookbridge-event-id"] == msg_id.encode()


def test_gateway_exits_cleanly_on_sigterm(gateway: Gateway):
    code = gateway.stop()
    assert code == 0, f"hookbridge exited with {code} after SIGTERM; output:\n{gateway.output()}"
