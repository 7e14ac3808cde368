"""Measures what the edge costs under attack, against the real binary and the local stack.

Prints figures; asserts nothing about speed. Scenarios, each on a fresh gateway process:

1. stalled forged uploads: N connections each declare a 2 MiB body with a well-formed but wrong
   signature, send 64 KiB, and stall;
2. rate-keeping forged uploads: N connections declare 2 MiB and trickle at just above the
   minimum body rate, so only the deadline ends them;
3. partial headers: N connections send half a request head and stall;
4. amplification: correctly signed 2 MiB bodies of painful shapes (a member list of empty
   objects, a metadata map of 170k keys, one key repeated 170k times, nesting a million deep, a
   2 MiB channel URL, 170k top-level keys), three of each one after another, then eight member
   lists at once.

During 1-3, a correctly signed 2 KB webhook is sent every 100 ms: how many got 200, and their
latency, tells whether Sendbird would still be served. Peak RSS is the gateway's VmHWM.

    HOOKBRIDGE_BIN=target/release/hookbridge .venv/bin/python scripts/edge_measure.py [N]
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("HOOKBRIDGE_BIN", str(REPO / "target" / "release" / "hookbridge"))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
APP = "EDGE-MEASURE-APP"
TOKEN = "edge-measure-" + secrets.token_hex(8)
TWO_MIB = 2 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(body: bytes) -> str:
    return hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()


class Gateway:
    def __init__(self) -> None:
        self.http = free_port()
        self.admin = free_port()
        prefix = f"edgem{int(time.time())}{secrets.token_hex(2)}."
        self.conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        self.conf.write(
            f"""
http_addr = "127.0.0.1:{self.http}"
admin_addr = "127.0.0.1:{self.admin}"
kafka_brokers = "{BOOTSTRAP}"
schema_registry_url = "{REGISTRY}"
topic_prefix = "{prefix}"
topic_partitions = 1
log_level = "error"
[[apps]]
app_id = "{APP}"
api_tokens = ["{TOKEN}"]
"""
        )
        self.conf.close()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [BIN, "serve"],
            env={**os.environ, "HOOKBRIDGE_CONFIG": self.conf.name},
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("gateway did not become ready")

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
        return -1

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.conf.name)


async def post(port: int, body: bytes, signature: str | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        sig = signature if signature is not None else sign(body)
        head = (
            f"POST /webhooks/sendbird HTTP/1.1\r\nhost: x\r\nx-sendbird-signature: {sig}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        w.write(head + body)
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 30)
        w.close()
        return int(line.split()[1]), time.perf_counter() - started
    except Exception:
        return 0, time.perf_counter() - started


def webhook(i: int) -> bytes:
    return json.dumps(
        {
            "category": "group_channel:message_send",
            "app_id": APP,
            "channel": {"channel_url": f"edge_{i % 16}"},
            "payload": {"message": "x" * 1800, "message_id": i},
            "sender": {"user_id": "u"},
        },
        separators=(",", ":"),
    ).encode()


async def legit_probe(port: int, stop: asyncio.Event, results: list) -> None:
    i = 0
    while not stop.is_set():
        results.append(await post(port, webhook(i)))
        i += 1
        await asyncio.sleep(0.1)


async def attack(gw: Gateway, n: int, kind: str, hold: float) -> dict:
    stop = asyncio.Event()
    probes: list = []
    probe = asyncio.create_task(legit_probe(gw.http, stop, probes))
    writers = []
    peak_rss = 0
    fake_sig = secrets.token_hex(32)

    async def one() -> None:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", gw.http)
        except OSError:
            return
        writers.append(w)
        if kind == "partial-headers":
            w.write(b"POST /webhooks/sendbird HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            await w.drain()
            return
        w.write(
            f"POST /webhooks/sendbird HTTP/1.1\r\nhost: x\r\nx-sendbird-signature: {fake_sig}\r\n"
            f"content-length: {TWO_MIB}\r\n\r\n".encode()
        )
        if kind == "stalled":
            w.write(b"a" * 65536)
            await w.drain()
            return
        # rate-keeping: 40 KiB/s, above the 32 KiB/s default minimum
        sent = 0
        while sent < TWO_MIB and not stop.is_set() and not w.is_closing():
            w.write(b"a" * 4096)
            sent += 4096
            try:
                await asyncio.wait_for(w.drain(), 1)
            except Exception:
                return
            await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    started = time.time()
    while time.time() - started < hold:
        peak_rss = max(peak_rss, gw.status("VmRSS"))
        await asyncio.sleep(0.2)
    stop.set()
    await probe
    for t in tasks:
        t.cancel()
    for w in writers:
        w.close()
    ok = [lat for status, lat in probes if status == 200]
    ok.sort()
    return {
        "scenario": f"{n} {kind}",
        "probes": len(probes),
        "probe_200": len(ok),
        "probe_p50_ms": round(ok[len(ok) // 2] * 1000, 1) if ok else None,
        "probe_max_ms": round(ok[-1] * 1000, 1) if ok else None,
        "peak_rss_mib": peak_rss,
        "vmhwm_mib": gw.status("VmHWM"),
        "ready_after": gw.ready(),
    }


def shaped(kind: str, i: int) -> bytes:
    """A correctly shaped-for-pain body of just under 2 MiB."""
    start = '{"category":"group_channel:message_send","app_id":"%s","channel":{"channel_url":"amp%d"}' % (APP, i)
    room = TWO_MIB - len(start) - 64
    if kind == "members":
        return (start + ',"members":[' + "{}," * (room // 3) + "{}]}").encode()
    if kind == "metadata":
        n = room // 13
        keys = ",".join('"k%07d":0' % j for j in range(n))
        return (start + ',"sender":{"user_id":"u","metadata":{' + keys + "}}}").encode()
    if kind == "repeated-key":
        return (start + "," + '"sender":{},' * (room // 12) + '"x":0}').encode()
    if kind == "deep":
        depth = room // 2
        return (start + ',"payload":' + "[" * depth + "]" * depth + "}").encode()
    if kind == "long-channel-url":
        return ('{"category":"group_channel:join","app_id":"%s","channel":{"channel_url":"%s"}}' % (APP, "u" * room)).encode()
    if kind == "top-level-keys":
        return (start + "," + ",".join('"f%07d":1' % j for j in range(room // 13)) + "}").encode()
    raise ValueError(kind)


SHAPES = ("members", "metadata", "repeated-key", "deep", "long-channel-url", "top-level-keys")


async def amplification(gw: Gateway) -> list[dict]:
    out = []
    for kind in SHAPES:
        runs = [await post(gw.http, shaped(kind, i)) for i in range(3)]
        out.append(
            {
                "scenario": f"signed 2 MiB {kind}",
                "status_ms": [(s, round(t * 1000)) for s, t in runs],
                "vmhwm_mib": gw.status("VmHWM"),
            }
        )
    concurrent = await asyncio.gather(*(post(gw.http, shaped("members", 100 + i)) for i in range(8)))
    out.append(
        {
            "scenario": "eight signed 2 MiB members bodies at once",
            "status_ms": [(s, round(t * 1000)) for s, t in concurrent],
            "vmhwm_mib": gw.status("VmHWM"),
            "rss_after_mib": gw.status("VmRSS"),
            "ready_after": gw.ready(),
        }
    )
    return out


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(f"binary {BIN}; {n} attacking connections per scenario; {time.strftime('%Y-%m-%d %H:%M')}")
    for kind, hold in (("stalled", 8.0), ("rate-keeping", 8.0), ("partial-headers", 14.0)):
        gw = Gateway()
        base = gw.status("VmRSS")
        try:
            result = await attack(gw, n, kind, hold)
        finally:
            gw.stop()
        result["idle_rss_mib"] = base
        print(json.dumps(result))
    gw = Gateway()
    try:
        for result in await amplification(gw):
            print(json.dumps(result))
    finally:
        gw.stop()


if __name__ == "__main__":
    asyncio.run(main())
