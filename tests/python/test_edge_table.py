"""Issue 6's bad-input table (tests/edge/cases.toml), run against the real gateway binary.

The table is the data: one case per odd request, each sent as raw bytes over a plain socket (no
HTTP client, so nothing is normalised), with the status it must get and what Kafka must hold
afterwards. This module is only the machinery: it starts the binary once with a small-limit
config and unique topics, runs every case as its own test (``test_edge_case[<id>]``), then checks
that the gateway came through (``/readyz``, peak RSS) and, case by case, what reached Kafka
(``test_kafka_after_table[<id>]``), and that nothing else did.

Needs the local stack (``bash scripts/stack.sh up``) and a built binary (``cargo build``).
Environment:

    KAFKA_BOOTSTRAP_SERVERS   default 127.0.0.1:9092
    SCHEMA_REGISTRY_URL       default http://127.0.0.1:8081/apis/ccompat/v7
    HOOKBRIDGE_BIN            default <repo>/target/debug/hookbridge
    EDGE_ISSUE6_SETTINGS      "0" leaves the issue-6 listener settings out of the config, for
                              a binary that does not know them yet (it refuses unknown keys)

One case: ``.venv/bin/python -m pytest -q tests/python/test_edge_table.py -k sig-``.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "tests" / "edge" / "cases.toml"
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REGISTRY_URL = os.environ.get(
    "SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"
).rstrip("/")
HOOKBRIDGE_BIN = Path(os.environ.get("HOOKBRIDGE_BIN", REPO / "target" / "debug" / "hookbridge"))

# Upper case on purpose: one case sends it in lower case.
APP_ID = "E6D9E0A1-B2C3-4D5E-8F90-A1B2C3D4E5F6"
TOKEN = "edge-table-master-token-" + secrets.token_hex(8)
WRONG_TOKEN = "not-the-master-token"
RUN_ID = secrets.token_hex(4)
PEAK_RSS_LIMIT_BYTES = 256 * 1024 * 1024
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20  # the default shutdown_timeout (15 s) and some

# The gateway's settings the table's timings and sizes assume.
SETTINGS: dict[str, Any] = {
    "max_body_bytes": 2 * 1024 * 1024,
    "topic_partitions": 1,
    "log_format": "text",
}
# >>> Issue 6 listener settings. Binaries from before issue 6 refuse these keys; run them with
# EDGE_ISSUE6_SETTINGS=0 (the time cases then fail, as they should). Fold into SETTINGS once
# issue 6 has landed.
ISSUE6_SETTINGS: dict[str, Any] = {
    "header_read_timeout": "1s",
    "idle_timeout": "3s",  # not the 60 s default, so the idle cases take seconds
    "body_min_rate": 65536,
    "body_rate_grace": "500ms",
}
USE_ISSUE6_SETTINGS = os.environ.get("EDGE_ISSUE6_SETTINGS", "1") != "0"
# <<<


# ================================================================================================
# The table


@dataclass(frozen=True)
class Expected:
    """One acceptable outcome: these statuses in order, then (if `closed`) the server closes."""

    statuses: tuple[int, ...]
    closed: bool
    abandoned: bool = False

    def __str__(self) -> str:
        if self.abandoned:
            return "abandoned"
        parts = [str(s) for s in self.statuses] + (["closed"] if self.closed else [])
        return ",".join(parts)


@dataclass(frozen=True)
class Case:
    index: int
    id: str
    group: str
    note: str
    bodies: tuple[str, ...]
    encode: str | None
    pad_to: int | None
    pad_unit: str
    method: str
    path: str
    headers: tuple[str, ...]
    request: str
    chunk_size: int
    steps: tuple[dict[str, Any], ...]
    within: float
    expect: tuple[Expected, ...]
    kafka: tuple[str, ...]
    not_in_response: str


CASE_KEYS = {
    "id", "group", "note", "body", "body2", "encode", "pad_to", "pad_unit", "method", "path",
    "headers", "request", "chunk_size", "steps", "within", "expect", "kafka", "not_in_response",
}
REQUIRED_KEYS = {"id", "group", "expect", "kafka"}


def parse_expect(value: int | str) -> tuple[Expected, ...]:
    alternatives = []
    for alt in str(value).split("|"):
        items = [i.strip() for i in alt.split(",")]
        if items == ["abandoned"]:
            alternatives.append(Expected((), False, abandoned=True))
            continue
        closed = items[-1] == "closed"
        statuses = items[:-1] if closed else items
        if not all(s.isdigit() for s in statuses):
            raise ValueError(f"bad expect {value!r}")
        alternatives.append(Expected(tuple(int(s) for s in statuses), closed))
    return tuple(alternatives)


def parse_size(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    name, _, delta = value.replace(" ", "").partition("+")
    return int(SETTINGS[name]) + int(delta or 0)


def load_table() -> list[Case]:
    table = tomllib.loads(TABLE.read_text())
    defaults = table["defaults"]
    cases = []
    for index, raw in enumerate(table["case"]):
        unknown = set(raw) - CASE_KEYS
        missing = REQUIRED_KEYS - set(raw)
        if unknown or missing:
            raise ValueError(f"case {raw.get('id', index)}: unknown keys {unknown}, missing {missing}")
        merged = {**defaults, **raw}
        bodies = (merged["body"],) + ((raw["body2"],) if "body2" in raw else ())
        kafka = raw["kafka"] if isinstance(raw["kafka"], list) else [raw["kafka"]]
        if len(kafka) != len(bodies):
            raise ValueError(f"case {raw['id']}: one kafka expectation per body")
        for spec in kafka:
            if not re.fullmatch(r"none|event:[a-z_]+|dlq:[a-z_0-9]+", spec):
                raise ValueError(f"case {raw['id']}: bad kafka expectation {spec!r}")
        cases.append(
            Case(
                index=index,
                id=raw["id"],
                group=raw["group"],
                note=raw.get("note", ""),
                bodies=bodies,
                encode=merged.get("encode"),
                pad_to=parse_size(merged.get("pad_to")),
                pad_unit=merged.get("pad_unit", "a"),
                method=merged["method"],
                path=merged["path"],
                headers=tuple(merged["headers"]),
                request=merged["request"],
                chunk_size=merged.get("chunk_size", 65536),
                steps=tuple(merged["steps"]),
                within=float(merged["within"]),
                expect=parse_expect(raw["expect"]),
                kafka=tuple(kafka),
                not_in_response=raw.get("not_in_response", ""),
            )
        )
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError("case ids are not unique")
    return cases


CASES = load_table()


# ================================================================================================
# Rendering templates into bytes

PLACEHOLDER = re.compile(
    r"\{(nonce|app|app_lower|app_pct|host|x|rep|pad|cut|body2?|len2?|sig2?|chunked2?)(?::([^{}]*))?\}"
)
CUT = object()  # marks a {cut} in a rendered request


def nonce(case: Case, body_index: int) -> str:
    return f"{RUN_ID}-{case.index:03d}-{body_index}"


def sign(body: bytes, token: str = TOKEN) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def signature_variant(body: bytes, variant: str | None) -> str:
    sig = sign(body)
    match variant:
        case None:
            return sig
        case "upper":
            return sig.upper()
        case "mixed":
            return "".join(c.upper() if i % 2 else c for i, c in enumerate(sig))
        case "short":
            return sig[:63]
        case "long":
            return sig + "0"
        case "nonhex":
            return "g" + sig[1:]
        case "wrong_token":
            return sign(body, WRONG_TOKEN)
        case "other_body":
            return sign(body + b" ")
    raise ValueError(f"unknown signature variant {variant!r}")


def chunked(body: bytes, size: int) -> bytes:
    out = bytearray()
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def expand(template: str, value_of) -> list[bytes | object]:
    """Splits `template` at placeholders; literal text is UTF-8, placeholders are `value_of`."""
    parts: list[bytes | object] = []
    pos = 0
    for m in PLACEHOLDER.finditer(template):
        parts.append(template[pos : m.start()].encode())
        parts.append(value_of(m.group(1), m.group(2)))
        pos = m.end()
    parts.append(template[pos:].encode())
    return parts


def common_value(name: str, arg: str | None, case: Case, body_index: int, host: str) -> bytes:
    match name:
        case "nonce":
            return nonce(case, body_index).encode()
        case "app":
            return APP_ID.encode()
        case "app_lower":
            return APP_ID.lower().encode()
        case "app_pct":
            return "".join(f"%{b:02X}" for b in APP_ID.encode()).encode()
        case "host":
            return host.encode()
        case "x":
            return bytes.fromhex(arg or "")
        case "rep":
            count, _, text = (arg or "").partition(":")
            return text.encode() * int(count)
    raise ValueError(f"{{{name}}} is not allowed here")


def render_body(case: Case, body_index: int, host: str) -> bytes:
    template = case.bodies[body_index]

    def value_of(pad: bytes):
        def value(name: str, arg: str | None) -> bytes:
            return pad if name == "pad" else common_value(name, arg, case, body_index, host)

        return value

    body = b"".join(expand(template, value_of(b"")))  # type: ignore[arg-type]
    if case.pad_to is not None:
        room = case.pad_to - len(body)
        unit = case.pad_unit.encode()
        assert room >= 0, f"{case.id}: body is already longer than pad_to"
        pad = unit * (room // len(unit)) + b" " * (room % len(unit))
        body = b"".join(expand(template, value_of(pad)))  # type: ignore[arg-type]
        assert len(body) == case.pad_to
    match case.encode:
        case None:
            return body
        case "gzip":
            return gzip.compress(body, mtime=0)
        case "utf-16-le":
            return body.decode().encode("utf-16-le")
    raise ValueError(f"{case.id}: unknown encode {case.encode!r}")


def render_request(case: Case, bodies: list[bytes], host: str) -> tuple[bytes, list[int]]:
    """The request bytes and the offsets of its {cut} marks."""
    template = (
        case.request.replace("{method}", case.method)
        .replace("{path}", case.path)
        .replace("{headers}", "\r\n".join(case.headers))
    )

    def value_of(name: str, arg: str | None) -> bytes | object:
        if name == "cut":
            return CUT
        m = re.fullmatch(r"(body|len|sig|chunked)(2?)", name)
        if not m:
            return common_value(name, arg, case, 0, host)
        body = bodies[1 if m.group(2) else 0]
        match m.group(1):
            case "body":
                return body
            case "len":
                return str(len(body) + int(arg or 0)).encode()
            case "sig":
                return signature_variant(body, arg).encode()
            case _:
                return chunked(body, case.chunk_size)

    out, cuts = bytearray(), []
    for part in expand(template, value_of):
        if part is CUT:
            cuts.append(len(out))
        else:
            out += part  # type: ignore[operator]
    return bytes(out), cuts


# ================================================================================================
# A raw HTTP/1.1 exchange


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """What came back: the complete responses, whether the server closed, and when."""

    responses: list[Response] = field(default_factory=list)
    closed: bool = False  # the server closed or reset the connection
    abandoned: bool = False  # the client closed it first (a `close` step)
    reset: bool = False
    elapsed: float = 0.0
    leftover: bytes = b""  # bytes that did not make a complete response
    raw: bytes = b""  # everything the server sent
    sent: int = 0
    send_error: str = ""

    @property
    def statuses(self) -> tuple[int, ...]:
        return tuple(r.status for r in self.responses)

    def matches(self, expected: Expected) -> bool:
        if expected.abandoned:
            return self.abandoned
        if self.statuses != expected.statuses or self.leftover:
            return False
        return self.closed or not expected.closed

    def describe(self) -> str:
        if self.abandoned:
            state = "abandoned by the client"
        elif self.closed:
            state = "then reset by the server" if self.reset else "then closed by the server"
        else:
            state = "connection still open"
        text = f"responses {list(self.statuses)} {state} after {self.elapsed:.2f} s"
        for r in self.responses:
            text += f"\n    {r.status} {r.headers.get('content-type', '')} {r.body[:300]!r}"
        if self.leftover:
            text += f"\n    unparsed: {self.leftover[:300]!r}"
        if self.send_error:
            text += f"\n    sending stopped after {self.sent} bytes: {self.send_error}"
        return text


def parse_responses(data: bytes, first_is_head: bool) -> tuple[list[Response], bytes]:
    """Complete responses at the start of `data` (1xx skipped) and the unparsed rest."""
    responses: list[Response] = []
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        lines = data[pos:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/") or not rest[:3].isdigit():
            break
        status = int(rest[:3])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if 100 <= status < 200:
            pos = start
            continue
        if (first_is_head and not responses) or status in (204, 304):
            body, pos = b"", start
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(data) < start + n:
                break
            body, pos = data[start : start + n], start + n
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, cursor = b"", start
            while True:
                eol = data.find(b"\r\n", cursor)
                if eol < 0:
                    return responses, data[pos:]
                size = int(data[cursor:eol].split(b";")[0], 16)
                if len(data) < eol + 2 + size + 2:
                    return responses, data[pos:]
                body += data[eol + 2 : eol + 2 + size]
                cursor = eol + 2 + size + 2
                if size == 0:
                    break
            pos = cursor
        else:  # delimited by the end of the connection
            body, pos = data[start:], len(data)
        responses.append(Response(status, headers, body))
    return responses, data[pos:]


class RawConnection:
    """A non-blocking socket that collects whatever the server sends while we send or wait."""

    def __init__(self, addr: tuple[str, int], first_is_head: bool, deadline: float):
        self.sock = socket.create_connection(addr, timeout=5)
        self.sock.setblocking(False)
        self.first_is_head = first_is_head
        self.deadline = deadline
        self.rx = bytearray()
        self.ex = Exchange()

    def _read_ready(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.ex.closed = self.ex.reset = True
            return
        if data:
            self.rx += data
        else:
            self.ex.closed = True

    def responses(self) -> int:
        return len(parse_responses(bytes(self.rx), self.first_is_head)[0])

    def wait(self, until: float, done=lambda: False) -> None:
        """Collects what arrives until `until`, the deadline, the server closing, or `done()`."""
        while not self.ex.closed and not done():
            left = min(until, self.deadline) - time.monotonic()
            if left <= 0:
                return
            readable, _, _ = select.select([self.sock], [], [], left)
            if readable:
                self._read_ready()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        received_before = len(self.rx)
        while view and not self.ex.closed and not self.ex.send_error:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.ex.send_error = "deadline"
                return
            readable, writable, _ = select.select([self.sock], [self.sock], [], left)
            if readable:
                self._read_ready()
                if len(self.rx) > received_before:  # answered early (413): stop pushing bytes
                    self.ex.send_error = "the server answered before the request was complete"
                    return
            if writable:
                try:
                    n = self.sock.send(view[: 1 << 16])
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError) as e:
                    self.ex.send_error = type(e).__name__
                    return
                view = view[n:]
                self.ex.sent += n

    def close(self) -> None:
        self.sock.close()


def run_exchange(case: Case, addr: tuple[str, int], request: bytes, cuts: list[int]) -> Exchange:
    started = time.monotonic()
    conn = RawConnection(addr, request.startswith(b"HEAD "), started + case.within)
    cursor = 0
    try:
        for step in case.steps:
            if "send" in step:
                how = step["send"]
                if how == "rest":
                    end = len(request)
                elif how == "headers":
                    end = request.index(b"\r\n\r\n") + 4 if b"\r\n\r\n" in request else len(request)
                elif how == "cut":
                    end = next(c for c in cuts if c > cursor)
                elif isinstance(how, int):
                    end = cursor + how if how >= 0 else len(request) + how
                else:
                    raise ValueError(f"{case.id}: unknown send {how!r}")
                conn.send(request[cursor:end])
                cursor = end
            elif "trickle" in step:
                received_before = len(conn.rx)
                for _ in range(step["trickle"]):
                    answered = len(conn.rx) > received_before
                    if cursor >= len(request) or conn.ex.closed or answered or conn.ex.send_error:
                        break
                    conn.send(request[cursor : cursor + 1])
                    cursor += 1
                    conn.wait(time.monotonic() + step["every"])
            elif "sleep" in step:
                conn.wait(time.monotonic() + step["sleep"])
            elif "await" in step:
                conn.wait(conn.deadline, lambda n=step["await"]: conn.responses() >= n)
            elif "shut" in step:
                try:
                    conn.sock.shutdown(socket.SHUT_WR)
                except OSError as e:
                    conn.ex.send_error = f"shutdown: {e}"
            elif step.get("close"):
                conn.ex.abandoned = True
                break
            else:
                raise ValueError(f"{case.id}: unknown step {step!r}")
        if not conn.ex.abandoned:
            conn.wait(conn.deadline)
    finally:
        conn.close()
    ex = conn.ex
    ex.elapsed = time.monotonic() - started
    ex.raw = bytes(conn.rx)
    ex.responses, ex.leftover = parse_responses(ex.raw, conn.first_is_head)
    return ex


# ================================================================================================
# The gateway under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def toml_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower()


@dataclass
class Gateway:
    proc: subprocess.Popen
    http_addr: tuple[str, int]
    admin_addr: str
    prefix: str
    log_path: Path

    @property
    def host(self) -> str:
        return f"{self.http_addr[0]}:{self.http_addr[1]}"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int, limit: int = 4000) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return text if len(text) <= limit else "…" + text[-limit:]

    def peak_rss_bytes(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        assert kib, "no VmHWM in /proc/<pid>/status"
        return int(kib.group(1)) * 1024


def require_environment() -> None:
    if not (HOOKBRIDGE_BIN.is_file() and os.access(HOOKBRIDGE_BIN, os.X_OK)):
        pytest.fail(f"no hookbridge binary at {HOOKBRIDGE_BIN}: run `cargo build` or set "
                    "HOOKBRIDGE_BIN.", pytrace=False)
    host, _, port = BOOTSTRAP.split(",")[0].strip().rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=3).close()
        status, _ = http_get(REGISTRY_URL + "/subjects")
        assert status == 200, f"registry answered {status}"
    except (OSError, AssertionError) as e:
        pytest.fail(f"Kafka ({BOOTSTRAP}) or the registry ({REGISTRY_URL}) is not usable: {e}. "
                    "Start them with `bash scripts/stack.sh up`.", pytrace=False)


@pytest.fixture(scope="module")
def gateway():
    require_environment()
    workdir = Path(tempfile.mkdtemp(prefix=f"hookbridge-edge-{RUN_ID}-"))
    http_addr = ("127.0.0.1", free_port())
    admin_addr = f"127.0.0.1:{free_port()}"
    prefix = f"edge-{RUN_ID}."
    settings = {
        "http_addr": f"{http_addr[0]}:{http_addr[1]}",
        "admin_addr": admin_addr,
        "kafka_brokers": BOOTSTRAP,
        "schema_registry_url": REGISTRY_URL,
        "topic_prefix": prefix,
        **SETTINGS,
        **(ISSUE6_SETTINGS if USE_ISSUE6_SETTINGS else {}),
    }
    config = "".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items())
    config += f'\n[[apps]]\napp_id = "{APP_ID}"\napi_tokens = ["{TOKEN}"]\n'
    (workdir / "hookbridge.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
    env["HOOKBRIDGE_CONFIG"] = str(workdir / "hookbridge.toml")
    log_path = workdir / "hookbridge.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(HOOKBRIDGE_BIN), "serve"], env=env, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    gw = Gateway(proc, http_addr, admin_addr, prefix, log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"hookbridge exited with {proc.returncode} before it was ready:\n"
                            + gw.log_since(0), pytrace=False)
            try:
                if http_get(f"http://{admin_addr}/readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"hookbridge not ready within {READY_TIMEOUT_S} s:\n"
                            + gw.log_since(0), pytrace=False)
            time.sleep(0.2)
        yield gw
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"\n--- hookbridge output: {log_path} (exit {proc.returncode})")


# ================================================================================================
# The cases


@dataclass
class Sent:
    case: Case
    bodies: list[bytes]


SENT: dict[str, Sent] = {}


def event_id(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_response_bodies(case: Case, bodies: list[bytes], ex: Exchange) -> list[str]:
    """The contract's response bodies, where the status says which one applies."""
    problems = []
    for i, r in enumerate(ex.responses):
        spec = case.kafka[i] if len(ex.responses) == len(bodies) else None
        where = f"response {i + 1} ({r.status})"
        if r.status == 200 and spec and spec != "none":
            try:
                doc = json.loads(r.body)
            except ValueError:
                problems.append(f"{where}: body is not JSON: {r.body[:200]!r}")
                continue
            want = "accepted" if spec.startswith("event:") else "dead_lettered"
            if doc.get("status") != want:
                problems.append(f"{where}: status {doc.get('status')!r}, expected {want!r}")
            if "event_id" in doc and doc["event_id"] != event_id(bodies[i]):
                problems.append(f"{where}: event_id {doc['event_id']} is not sha256 of the body")
        elif r.status == 401 and r.body != b'{"error":"unauthorized"}':
            problems.append(f"{where}: not the generic 401 body: {r.body[:200]!r}")
        elif r.status == 503 and "retry-after" not in r.headers:
            problems.append(f"{where}: 503 without Retry-After")
    return problems


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_edge_case(case: Case, gateway: Gateway):
    bodies = [render_body(case, i, gateway.host) for i in range(len(case.bodies))]
    request, cuts = render_request(case, bodies, gateway.host)
    SENT[case.id] = Sent(case, bodies)
    log_offset = gateway.log_size()
    ex = run_exchange(case, gateway.http_addr, request, cuts)
    print(f"{case.id}: {ex.describe()}")  # shown with -rA or -s: what the gateway did
    ok = any(ex.matches(e) for e in case.expect) and ex.elapsed <= case.within + 0.5
    problems = [] if not ok else check_response_bodies(case, bodies, ex)
    if case.not_in_response and case.not_in_response.encode() in ex.raw:
        problems.append(f"the response contains {case.not_in_response[:40]!r}…")
    if not ok or problems:
        time.sleep(0.1)  # let the gateway's log of this request land
        pytest.fail(
            f"{case.id} ({case.group}){': ' + case.note if case.note else ''}\n"
            f"  expected {' or '.join(map(str, case.expect))} within {case.within} s\n"
            f"  got {ex.describe()}\n"
            + "".join(f"  {p}\n" for p in problems)
            + f"  request (sent {ex.sent} of {len(request)} bytes): {request[:300]!r}\n"
            f"  gateway log during the case:\n{gateway.log_since(log_offset)}",
            pytrace=False,
        )


# ================================================================================================
# After the table


def test_gateway_came_through_the_table(gateway: Gateway):
    assert gateway.proc.poll() is None, (
        f"hookbridge exited with {gateway.proc.returncode}:\n{gateway.log_since(0)}"
    )
    status, body = http_get(f"http://{gateway.admin_addr}/readyz")
    assert status == 200, f"/readyz answered {status} {body[:200]!r} after the table"
    peak = gateway.peak_rss_bytes()
    print(f"peak RSS after the table: {peak / 2**20:.0f} MiB")
    assert peak < PEAK_RSS_LIMIT_BYTES, (
        f"peak RSS {peak / 2**20:.0f} MiB is over {PEAK_RSS_LIMIT_BYTES / 2**20:.0f} MiB"
    )


@dataclass
class Record:
    topic: str
    headers: dict[str, bytes]
    value: bytes
    decoded: dict[str, Any] | None


@pytest.fixture(scope="module")
def kafka_records(gateway: Gateway) -> list[Record]:
    """Every record in the run's `<prefix>*` topics, read to the high watermark."""
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": f"edge-table-{RUN_ID}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY_URL, "timeout": 10}))
    records = []
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(name, p, OFFSET_BEGINNING)
            for name, topic in metadata.topics.items() if name.startswith(gateway.prefix)
            for p in topic.partitions
        ]
        assert partitions, f"no topics with the prefix {gateway.prefix}"
        remaining = set()
        for tp in partitions:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > 0:
                remaining.add((tp.topic, tp.partition))
        consumer.assign(partitions)
        deadline = time.monotonic() + 60
        while remaining:
            assert time.monotonic() < deadline, f"could not read {remaining} to their end"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    remaining.discard((msg.topic(), msg.partition()))
                    continue
                raise KafkaException(msg.error())
            headers = {k: v for k, v in (msg.headers() or [])}
            decoded = None
            if not msg.topic().endswith(".dlq"):
                decoded = deserialize(msg.value(),
                                      SerializationContext(msg.topic(), MessageField.VALUE))
            records.append(Record(msg.topic(), headers, msg.value(), decoded))
    finally:
        consumer.close()
    return records


def records_for(records: list[Record], body: bytes) -> list[Record]:
    want = event_id(body).encode()
    return [r for r in records if r.headers.get("hookbridge-event-id") == want]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_kafka_after_table(case: Case, gateway: Gateway, kafka_records: list[Record]):
    sent = SENT.get(case.id)
    if sent is None:
        pytest.skip("its request was not sent in this run (deselected)")
    problems = []
    for i, (spec, body) in enumerate(zip(case.kafka, sent.bodies)):
        label = f"body {i + 1} ({len(body)} bytes, event id {event_id(body)[:12]}…)"
        found = records_for(kafka_records, body)
        if spec == "none":
            token = nonce(case, i).encode()
            leaked = [r.topic for r in kafka_records if token in r.value]
            if found or leaked:
                problems.append(f"{label}: expected nothing in Kafka, found it in "
                                f"{sorted({r.topic for r in found} | set(leaked))}")
            continue
        kind, _, what = spec.partition(":")
        topic = gateway.prefix + ("dlq" if kind == "dlq" else what)
        if len(found) != 1 or found[0].topic != topic:
            problems.append(f"{label}: expected exactly one record in {topic}, found "
                            f"{[r.topic for r in found] or 'none'}")
            continue
        rec = found[0]
        if rec.headers.get("hookbridge-app-id") != APP_ID.encode():
            problems.append(f"{label}: hookbridge-app-id {rec.headers.get('hookbridge-app-id')!r}")
        if kind == "dlq":
            reason = rec.headers.get("hookbridge-dlq-reason")
            if reason != what.encode():
                problems.append(f"{label}: dead-lettered as {reason!r}, expected {what!r}")
            if rec.value != body:
                problems.append(f"{label}: the dead letter is not the body byte for byte")
        else:
            raw = (rec.decoded or {}).get("raw_body")
            if raw is None or raw.encode() != body:
                problems.append(f"{label}: raw_body is not the body byte for byte")
            if (rec.decoded or {}).get("event_id") != event_id(body):
                problems.append(f"{label}: the record's event_id is not sha256 of the body")
    if problems:
        pytest.fail(f"{case.id} ({case.group}){': ' + case.note if case.note else ''}\n  "
                    + "\n  ".join(problems), pytrace=False)


def test_kafka_holds_nothing_but_the_tables_records(gateway: Gateway, kafka_records):
    spec_of = {
        event_id(body): (sent.case.id, spec)
        for sent in SENT.values()
        for spec, body in zip(sent.case.kafka, sent.bodies)
    }
    stray = []
    for r in kafka_records:
        eid = r.headers.get("hookbridge-event-id", b"").decode()
        case_id, spec = spec_of.get(eid, ("no case", "none"))
        if spec == "none":
            stray.append(f"{r.topic}: event id {eid[:12] or '(none)'}… from {case_id}, "
                         f"value {r.value[:80]!r}")
    if stray:
        pytest.fail("records in Kafka that no case expects:\n  " + "\n  ".join(stray),
                    pytrace=False)


def test_gateway_stops_cleanly_after_the_table(gateway: Gateway):
    gateway.proc.send_signal(signal.SIGTERM)
    try:
        code = gateway.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hookbridge still running {STOP_TIMEOUT_S} s after SIGTERM:\n"
                    + gateway.log_since(max(0, gateway.log_size() - 3000)), pytrace=False)
    assert code == 0, f"hookbridge exited with {code}:\n{gateway.log_since(0)}"
