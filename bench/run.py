#!/usr/bin/env python3
"""The benchmark harness (issue 8, bench/README.md): every contender on the same local stack,
with the same bodies and the same load generator, one after the other, then one report.

Contenders:
  ceiling-http     bench/ceiling-http: axum reads the body, checks the HMAC, answers 200
  ceiling-produce  bench/ceiling-produce: hookbridge's producer, closed loop, no HTTP
  hookbridge       target/<profile>/hookbridge serve
  node             bench/peers/node: Express + kafkajs (one process per core)
  python           bench/peers/python: Starlette under uvicorn + confluent-kafka (one worker per core)

For each: start it and time its readiness, warm up, a closed-loop sweep over concurrency with
~1.9 KB bodies, an open-loop run at half its own peak, large bodies (256 KiB, 2 MiB), SIGTERM
and time the exit, then count the records its topics hold against the 200s it answered
(a contender that answers 200 without a record fails the run). Then the report: Markdown and a
PNG (throughput and p99 against concurrency), and the table on standard output.

    make bench          # full run into docs/benchmarks.md and docs/benchmarks.png (minutes)
    make bench-smoke    # a tiny pass of every contender into a temporary directory (seconds each)

Needs the local stack (make stack-up), the Rust programs built (the Makefile does it) and
bench/.venv (bench/setup.sh). Raw results and contender logs go to the work directory it prints.
"""

import argparse
import datetime
import json
import math
import os
import resource
import secrets
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

APP_ID = "A1B2C3D4-0000-4000-8000-000000000001"
MAX_BODY_BYTES = 2 * 1024 * 1024
# What hookbridge gives the topics it creates for 2 MiB bodies (README, "Topics and records"):
# four times max_body_bytes plus 128 KiB. The harness creates the other contenders' topics alike.
TOPIC_MAX_MESSAGE_BYTES = 4 * MAX_BODY_BYTES + 128 * 1024
PRODUCER_MESSAGE_MAX_BYTES = 4 * MAX_BODY_BYTES + 128 * 1024
TOPIC_PARTITIONS = 12

CONTENDERS = ["ceiling-http", "ceiling-produce", "hookbridge", "node", "python"]
HTTP_CONTENDERS = ["ceiling-http", "hookbridge", "node", "python"]

FULL = {
    "levels": [1, 32, 256, 1024],
    "duration": 10.0,
    "warmup": 3.0,
    "open_duration": 10.0,
    "open_connections": None,
    "large_levels": [1, 8],
    "large_duration": 5.0,
}
SMOKE = {
    "levels": [1, 32],
    "duration": 1.0,
    "warmup": 0.5,
    "open_duration": 1.0,
    "open_connections": None,
    "large_levels": [1],
    "large_duration": 0.5,
}


def open_connections(plan, rate):
    """Connections of the open loop. Each carries one request at a time, so `rate` needs
    rate × latency of them (Little's law): too few and the generator, not the contender, makes
    requests wait. Enough for answers of 50 ms, between 64 and 1024 (hookbridge's default
    max_in_flight)."""
    if plan["open_connections"]:
        return plan["open_connections"]
    if rate is None:
        return None
    return max(64, min(1024, int(rate * 0.05) + 1))


class Failure(Exception):
    """The run cannot go on, or a contender did not do what it must."""


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, process, log_path, timeout):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise Failure(f"exited with {process.returncode} before it was ready; see {log_path}:\n"
                          + tail(log_path))
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.02)
    raise Failure(f"not ready after {timeout:.0f} s at {url}; see {log_path}:\n" + tail(log_path))


def process_tree(root):
    """A process and its descendants."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    pids, i = [root], 0
    while i < len(pids):
        pids.extend(children.get(pids[i], []))
        i += 1
    return pids


def tree_rss_mib(root):
    """Summed VmRSS of a process and its descendants, in MiB."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def tail(path, lines=20):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Kafka:
    """Topic administration and record counts, with confluent-kafka."""

    def __init__(self, brokers):
        from confluent_kafka.admin import AdminClient

        self.brokers = brokers
        self.admin = AdminClient({"bootstrap.servers": brokers})

    def create(self, topic):
        from confluent_kafka.admin import NewTopic

        futures = self.admin.create_topics([NewTopic(
            topic, num_partitions=TOPIC_PARTITIONS, replication_factor=1,
            config={"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES), "min.insync.replicas": "1"},
        )], operation_timeout=30)
        for future in futures.values():
            future.result()

    def topics(self, prefix):
        return sorted(t for t in self.admin.list_topics(timeout=10).topics if t.startswith(prefix))

    def delete(self, topics):
        if not topics:
            return
        for topic, future in self.admin.delete_topics(topics, operation_timeout=30).items():
            try:
                future.result()
            except Exception as e:  # a leftover topic is not worth failing a finished run
                log(f"could not delete topic {topic}: {e}")

    def count(self, topic):
        """Records in a topic (sum of high watermarks) and the value size of its first record."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": "hookbridge-bench-count",
                             "enable.auto.commit": False})
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return 0, None
            total, first = 0, None
            for partition in sorted(metadata.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high
                if first is None and high > low:
                    first = TopicPartition(topic, partition, low)
            value_bytes = None
            if first is not None:
                consumer.assign([first])
                message = consumer.poll(10)
                if message is not None and message.error() is None:
                    value_bytes = len(message.value() or b"")
            return total, value_bytes
        finally:
            consumer.close()


class Run:
    def __init__(self, args):
        self.args = args
        self.plan = dict(SMOKE if args.smoke else FULL)
        for key in ("levels", "large_levels"):
            value = getattr(args, key)
            if value:
                self.plan[key] = [int(v) for v in value.split(",")]
        for key in ("duration", "warmup", "open_duration", "large_duration", "open_connections"):
            value = getattr(args, key)
            if value is not None:
                self.plan[key] = value
        self.token = secrets.token_hex(20)
        self.run_id = f"{int(time.time())}-{os.getpid()}"
        self.workdir = Path(args.workdir)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.profile = args.profile
        self.kafka = Kafka(args.kafka)
        self.results = []  # one dict per measurement
        self.contenders = {}  # name -> facts (start-up, shutdown, records, workers, ...)
        self.topics_made = []
        self.prefixes = []

    # --- programs ---------------------------------------------------------------------------

    def binary(self, name):
        if name == "hookbridge" and self.args.hookbridge_bin:
            return self.args.hookbridge_bin
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        path = target / self.profile / name if name == "hookbridge" else \
            target / self.profile / "examples" / name
        if not path.exists():
            raise Failure(f"{path} is missing: build it first (make bench / make bench-smoke do)")
        return str(path)

    def base_env(self):
        env = dict(os.environ)
        env["BENCH_SENDBIRD_API_TOKEN"] = self.token
        return env

    def hookbridge_env(self, prefix, http_addr="127.0.0.1:0", admin_addr="127.0.0.1:0"):
        # Any HOOKBRIDGE_* of the caller's environment (HOOKBRIDGE_KAFKA_PROPERTIES, say) reaches
        # both hookbridge and ceiling-produce: the ceiling keeps using the gateway's producer.
        env = self.base_env()
        env.update({
            "HOOKBRIDGE_KAFKA_BROKERS": self.args.kafka,
            "HOOKBRIDGE_SCHEMA_REGISTRY_URL": self.args.registry,
            "HOOKBRIDGE_SENDBIRD_APP_ID": APP_ID,
            "HOOKBRIDGE_SENDBIRD_API_TOKENS": self.token,
            "HOOKBRIDGE_HTTP_ADDR": http_addr,
            "HOOKBRIDGE_ADMIN_ADDR": admin_addr,
            "HOOKBRIDGE_TOPIC_PREFIX": prefix,
            "HOOKBRIDGE_LOG_LEVEL": "warn",
        })
        return env

    def peer_env(self, prefix, port):
        env = self.base_env()
        env.update({
            "SENDBIRD_API_TOKEN": self.token,
            "KAFKA_BROKERS": self.args.kafka,
            "TOPIC_PREFIX": prefix,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WORKERS": str(self.args.peer_workers),
            "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "KAFKA_MESSAGE_MAX_BYTES": str(PRODUCER_MESSAGE_MAX_BYTES),
        })
        return env

    def prefix(self, name):
        prefix = f"bench-{self.run_id}-{name}."
        self.prefixes.append(prefix)
        return prefix

    def server(self, name):
        """The command, environment, webhook URL and readiness URL of an HTTP contender."""
        port = free_port()
        url = f"http://127.0.0.1:{port}/webhooks/sendbird"
        ready = f"http://127.0.0.1:{port}/readyz"
        prefix = None
        if name == "ceiling-http":
            cmd = [self.binary("ceiling-http"), "--addr", f"127.0.0.1:{port}",
                   "--max-body-bytes", str(MAX_BODY_BYTES)]
            env = self.base_env()
        elif name == "hookbridge":
            prefix = self.prefix("hookbridge")
            admin = free_port()
            cmd = [self.binary("hookbridge"), "serve"]
            env = self.hookbridge_env(prefix, f"127.0.0.1:{port}", f"127.0.0.1:{admin}")
            ready = f"http://127.0.0.1:{admin}/readyz"
        elif name == "node":
            prefix = self.prefix("node")
            self.make_topic(prefix + "group_channel")
            cmd = ["node", str(BENCH / "peers/node/server.js")]
            env = self.peer_env(prefix, port)
        elif name == "python":
            prefix = self.prefix("python")
            self.make_topic(prefix + "group_channel")
            cmd = [str(BENCH / ".venv/bin/python"), "-m", "uvicorn", "app:app",
                   "--app-dir", str(BENCH / "peers/python"), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(self.args.peer_workers),
                   "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                   "--log-level", "warning", "--timeout-graceful-shutdown", "10"]
            env = self.peer_env(prefix, port)
        else:
            raise Failure(f"unknown contender {name}")
        return cmd, env, url, ready, prefix

    def make_topic(self, topic):
        self.kafka.create(topic)
        self.topics_made.append(topic)

    # --- measurements -----------------------------------------------------------------------

    def load(self, url, pid, label, mode="closed", concurrency=32, rate=None, connections=None,
             duration=1.0, body="small"):
        cmd = [self.binary("bench-load"), "--url", url, "--mode", mode, "--duration", str(duration),
               "--body", body, "--watch-pid", str(pid), "--threads", str(self.args.load_threads),
               "--label", label]
        if mode == "closed":
            cmd += ["--concurrency", str(concurrency)]
        else:
            cmd += ["--rate", f"{rate:.3f}", "--connections", str(connections)]
        return self.invoke(cmd, self.base_env(), duration)

    def produce(self, topic, env, label, concurrency, duration, body="small"):
        cmd = [self.binary("ceiling-produce"), "--topic", topic, "--concurrency", str(concurrency),
               "--duration", str(duration), "--body", body, "--label", label]
        return self.invoke(cmd, env, duration)

    def invoke(self, cmd, env, duration):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=duration + 180)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"{Path(cmd[0]).name} did not finish: {' '.join(cmd[1:])}") from e
        if done.returncode != 0:
            raise Failure(f"{Path(cmd[0]).name} {' '.join(cmd[1:])} exited {done.returncode}:\n"
                          f"{done.stderr.strip()}")
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise Failure(f"{Path(cmd[0]).name} printed no result:\n{done.stdout}{done.stderr}")
        return json.loads(lines[-1])

    def keep(self, contender, kind, result):
        result = dict(result, contender=contender, kind=kind)
        self.results.append(result)
        latency = result["latency"]
        log(f"{contender:<16} {kind:<7} {result['body']:<5} c={result['concurrency']:<5} "
            f"{result['throughput']:>9.1f}/s  p50 {latency['p50_ms']:.2f} ms  "
            f"p99 {latency['p99_ms']:.2f} ms  ok {result['ok']}  errors {result['errors']}"
            + (f" {result['error_kinds']}" if result["errors"] else ""))
        return result

    def sweep(self, name, measure):
        """Warm-up, closed-loop levels, open loop at half peak, large bodies. `measure(kind,
        mode, concurrency, rate, duration, body)` runs one measurement."""
        plan = self.plan
        warm = measure("warmup", "closed", 32, None, plan["warmup"], "small")
        self.contenders[name]["warmup_ok"] = warm["ok"] + warm.get("warmup_ok", 0)
        peak = 0.0
        for level in plan["levels"]:
            result = self.keep(name, "closed", measure("closed", "closed", level, None,
                                                       plan["duration"], "small"))
            peak = max(peak, result["throughput"])
        if name in HTTP_CONTENDERS and peak > 0:
            self.keep(name, "open", measure("open", "open", None, peak / 2, plan["open_duration"],
                                             "small"))
        for body in ("256k", "2m"):
            for level in plan["large_levels"]:
                self.keep(name, "large", measure("large", "closed", level, None,
                                                 plan["large_duration"], body))

    def run_http(self, name):
        cmd, env, url, ready, prefix = self.server(name)
        log_path = self.workdir / "logs" / f"{name}.log"
        facts = self.contenders.setdefault(name, {})
        facts["prefix"] = prefix
        with open(log_path, "w") as out:
            started = time.monotonic()
            process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=ROOT)
            try:
                wait_ready(ready, process, log_path, self.args.ready_timeout)
                facts["startup_ms"] = (time.monotonic() - started) * 1000
                facts["rss_idle_mib"] = tree_rss_mib(process.pid)
                log(f"{name} ready in {facts['startup_ms']:.0f} ms (pid {process.pid}, "
                    f"RSS {facts['rss_idle_mib']:.1f} MiB)")

                def measure(kind, mode, concurrency, rate, duration, body):
                    return self.load(url, process.pid, f"{name}/{kind}", mode, concurrency, rate,
                                     open_connections(self.plan, rate), duration, body)

                self.sweep(name, measure)
                facts["rss_end_mib"] = tree_rss_mib(process.pid)
            finally:
                stopping = time.monotonic()
                process.send_signal(signal.SIGTERM)
                try:
                    facts["exit_code"] = process.wait(timeout=30)
                    facts["shutdown_ms"] = (time.monotonic() - stopping) * 1000
                except subprocess.TimeoutExpired:
                    for pid in reversed(process_tree(process.pid)):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    process.wait()
                    facts["exit_code"] = None
                    facts["shutdown_ms"] = None
        if facts["exit_code"] != 0:
            raise Failure(f"{name} exited {facts['exit_code']} on SIGTERM; see {log_path}:\n"
                          + tail(log_path))
        if prefix is not None:
            self.check_records(name, prefix)

    def run_produce(self):
        name = "ceiling-produce"
        prefix = self.prefix("produce")
        topic = prefix + "group_channel"
        self.make_topic(topic)
        self.contenders.setdefault(name, {"prefix": prefix})
        env = self.hookbridge_env(prefix)

        def measure(kind, mode, concurrency, rate, duration, body):
            return self.produce(topic, env, f"{name}/{kind}", concurrency, duration, body)

        self.sweep(name, measure)
        self.check_records(name, prefix)

    def check_records(self, name, prefix):
        """Every 200 must be a record: the contender's topics must hold at least as many
        records as it answered 200 (warm-up included), and none may be dead letters."""
        facts = self.contenders[name]
        answered = facts.get("warmup_ok", 0) + sum(
            r["ok"] + r.get("warmup_ok", 0) for r in self.results if r["contender"] == name)
        stored, value_bytes = self.kafka.count(prefix + "group_channel")
        facts.update(answered_200=answered, records=stored, record_value_bytes=value_bytes)
        dead, _ = self.kafka.count(prefix + "dlq") if name == "hookbridge" else (0, None)
        log(f"{name} answered {answered} x 200; its topic holds {stored} records"
            + (f" (first value {value_bytes} bytes)" if value_bytes else ""))
        if stored < answered:
            raise Failure(f"{name} answered 200 {answered} times but {prefix}group_channel holds "
                          f"only {stored} records")
        if dead:
            raise Failure(f"{name} dead-lettered {dead} of the benchmark's bodies")

    def execute(self):
        for name in self.args.contenders:
            log(f"--- {name}")
            if name == "ceiling-produce":
                self.run_produce()
            else:
                self.run_http(name)

    def cleanup(self):
        if self.args.keep_topics:
            return
        topics = set(self.topics_made)
        for prefix in self.prefixes:
            try:
                topics.update(self.kafka.topics(prefix))
            except Exception as e:
                log(f"cannot list topics of {prefix}: {e}")
        self.kafka.delete(sorted(topics))


# --- the report -------------------------------------------------------------------------------

def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "ram": ram,
            "kernel": os.uname().release,
            "load_average": os.getloadavg()}


def command_output(cmd, cwd=ROOT):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def versions():
    def npm_version(package):
        try:
            return json.loads((BENCH / "peers/node/node_modules" / package / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "?"

    import confluent_kafka
    import starlette
    import uvicorn

    revision = command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    lock = (ROOT / "Cargo.lock").read_text()
    rdkafka_sys = "?"
    marker = 'name = "rdkafka-sys"\nversion = "'
    if marker in lock:
        rdkafka_sys = lock.split(marker, 1)[1].split('"', 1)[0]
    return {
        "hookbridge": revision + (" (with uncommitted changes)" if dirty else ""),
        "rustc": command_output(["rustc", "--version"]).removeprefix("rustc "),
        "rdkafka-sys (librdkafka)": rdkafka_sys,
        "node": command_output(["node", "--version"]),
        "express": npm_version("express"),
        "kafkajs": npm_version("kafkajs"),
        "python": sys.version.split()[0],
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "confluent-kafka (librdkafka)": f"{confluent_kafka.version()} ({confluent_kafka.libversion()[0]})",
    }


def cpu_per_1000(result):
    return per_1000(result, "cpu_s")


def per_1000(result, field):
    """Seconds of CPU per 1000 answers of one of the window's CPU figures."""
    process = result.get("process") or {}
    answered = result["ok"] + result["errors"]
    if not answered or process.get(field) is None:
        return None
    return process[field] / answered * 1000


def machine_cpu_per_1000(result):
    return per_1000(result, "machine_cpu_s")


def broker_cpu_per_1000(result):
    return per_1000(result, "broker_cpu_s")


def load_cpu_per_1000(result):
    return None if result["contender"] == "ceiling-produce" else per_1000(result, "load_cpu_s")


def per_second(result, field):
    """One of the window's CPU figures as cores busy (CPU seconds per second)."""
    process = result.get("process") or {}
    if process.get(field) is None or not process.get("window_s"):
        return None
    return process[field] / process["window_s"]


def load_cpu_percent(result):
    cores = per_second(result, "load_cpu_s")
    return None if result["contender"] == "ceiling-produce" or cores is None else cores * 100


def mib(kib):
    return None if kib is None else kib / 1024


def fmt(value, digits=1):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def summary(run):
    closed = [r for r in run.results if r["kind"] == "closed"]
    peaks = {}
    for r in closed:
        best = peaks.get(r["contender"])
        if best is None or r["throughput"] > best["throughput"]:
            peaks[r["contender"]] = r
    out = {"peaks": {k: {"throughput": v["throughput"], "concurrency": v["concurrency"],
                         "rss_peak_mib": mib((v.get("process") or {}).get("rss_peak_kib")),
                         "busy_cores": per_second(v, "machine_cpu_s"),
                         "broker_cores": per_second(v, "broker_cpu_s"),
                         "p50_ms": v["latency"]["p50_ms"],
                         "cost": costs(v)}
                     for k, v in peaks.items()}}
    # The same formula at each concurrency level: both ceilings with as many requests in
    # flight as the contender had.
    by_level = {}
    for r in closed:
        by_level.setdefault(r["concurrency"], {})[r["contender"]] = r["throughput"]
    out["by_level"] = dict(sorted(by_level.items()))
    out["combined_by_level"] = {
        level: 1 / (1 / row["ceiling-http"] + 1 / row["ceiling-produce"])
        for level, row in sorted(by_level.items())
        if row.get("ceiling-http") and row.get("ceiling-produce")}
    if "ceiling-http" in peaks and "ceiling-produce" in peaks:
        http = peaks["ceiling-http"]["throughput"]
        produce = peaks["ceiling-produce"]["throughput"]
        if http > 0 and produce > 0:
            combined = 1 / (1 / http + 1 / produce)
            out["combined_ceiling"] = combined
            out["ratios"] = {k: peaks[k]["throughput"] / combined
                             for k in ("hookbridge", "node", "python") if k in peaks}
    out["half_peak"] = {r["contender"]: {"rate": r["target_rate"], "throughput": r["throughput"],
                                         "p99_ms": r["latency"]["p99_ms"],
                                         "p999_ms": r["latency"]["p999_ms"]}
                        for r in run.results if r["kind"] == "open"}
    return out


def costs(result):
    """Milliseconds of CPU per request at one measurement: the whole machine, and the parts of
    it this harness can name (the contender's processes, the Kafka brokers, the load
    generator); `rest` is everything else (the schema registry, the kernel's work outside these
    processes, other tenants)."""
    parts = {"machine": machine_cpu_per_1000(result), "contender": cpu_per_1000(result),
             "broker": broker_cpu_per_1000(result), "load": load_cpu_per_1000(result)}
    if parts["machine"] is not None:
        rest = parts["machine"] - sum(v for k, v in parts.items()
                                      if k != "machine" and v is not None)
        # Clock-tick rounding can leave the rest a hair below zero: shown as 0, not -0.000.
        parts["rest"] = 0.0 if -0.0005 < rest < 0 else rest
    return parts


def table(results, kind):
    rows = [r for r in results if r["kind"] == kind]
    head = ("| contender | body | concurrency | req/s | p50 ms | p99 ms | p99.9 ms | errors "
            "| RSS peak MiB | CPU s / 1000 req | broker CPU s / 1000 req "
            "| machine CPU s / 1000 req | load gen CPU % |")
    lines = [head, "| " + " | ".join(["---"] * 13) + " |"]
    for r in rows:
        latency = r["latency"]
        concurrency = str(r["concurrency"])
        if kind == "open":
            concurrency = (f"{r['concurrency']} conns, {r['target_rate']:,.0f}/s offered, "
                           f"{r['late_sends']} sent late")
        errors = str(r["errors"])
        if r["errors"]:
            errors += " (" + ", ".join(f"{k} {v}" for k, v in sorted(r["error_kinds"].items())) + ")"
        lines.append("| " + " | ".join([
            r["contender"], r["body"], concurrency, fmt(r["throughput"]),
            fmt(latency["p50_ms"], 2), fmt(latency["p99_ms"], 2), fmt(latency["p999_ms"], 2),
            errors, fmt(mib((r.get("process") or {}).get("rss_peak_kib"))),
            fmt(cpu_per_1000(r), 3), fmt(broker_cpu_per_1000(r), 3),
            fmt(machine_cpu_per_1000(r), 3), fmt(load_cpu_percent(r), 0),
        ]) + " |")
    return "\n".join(lines)


def report_markdown(run, info, facts, smoke):
    s = summary(run)
    now = info["date"]
    m = info["machine"]
    lines = ["# Benchmarks", ""]
    if smoke:
        lines += ["> **Smoke run** (`make bench-smoke`): a few seconds per contender on "
                  f"{run.profile} builds, to show the harness works. These figures are **not** "
                  "results; `make bench` on a quiet machine makes those.", ""]
    lines += [f"Written by `bench/run.py` ({'make bench-smoke' if smoke else 'make bench'}); "
              "bench/README.md says what each contender is and how each figure is measured.", ""]
    lines += ["## Summary", "", "| measure | figure |", "| --- | --- |"]
    peaks = s["peaks"]
    for name in CONTENDERS:
        if name in peaks:
            p = peaks[name]
            lines.append(f"| peak, {name} | {fmt(p['throughput'])} req/s at concurrency "
                         f"{p['concurrency']} (RSS peak {fmt(p['rss_peak_mib'])} MiB) |")
    if "combined_ceiling" in s:
        lines.append(f"| combined ceiling 1/(1/http + 1/produce) | {fmt(s['combined_ceiling'])} req/s |")
        for name, ratio in s["ratios"].items():
            target = " (issue 8's target: ≥ 0.60)" if name == "hookbridge" else ""
            lines.append(f"| {name} peak / combined ceiling | {ratio:.2f}{target} |")
    for name, h in s["half_peak"].items():
        target = " (target: ≤ 25 ms)" if name == "hookbridge" else ""
        lines.append(f"| {name} p99 at half its peak, open loop ({fmt(h['rate'], 0)} req/s offered, "
                     f"{fmt(h['throughput'], 0)} served) | {fmt(h['p99_ms'], 2)} ms{target} |")
    lines += [""] + cpu_section(s)
    lines += ["## Closed loop, ~1.9 KB bodies", "", table(run.results, "closed"), ""]
    lines += ["![throughput and p99 against concurrency](benchmarks.png)", ""]
    lines += ["## Open loop at half of each contender's own peak", "",
              "Constant rate over the given connections; latency counted from each request's due "
              "time (no coordinated omission). *Sent late*: requests whose connection was still "
              "busy when they were due; *unsent*: requests still due when the time was up.", "",
              table(run.results, "open"), ""]
    lines += ["## Large bodies (256 KiB, 2 MiB), closed loop", "", table(run.results, "large"), ""]
    lines += ["## Start-up, shutdown, records", "",
              "| contender | start to ready ms | RSS when ready MiB | RSS after the run MiB "
              "| SIGTERM to exit ms | 200s answered | records in its topic | first record's value bytes |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in run.args.contenders:
        f = facts.get(name, {})
        lines.append(f"| {name} | {fmt(f.get('startup_ms'), 0)} | {fmt(f.get('rss_idle_mib'))} "
                     f"| {fmt(f.get('rss_end_mib'))} | {fmt(f.get('shutdown_ms'), 0)} "
                     f"| {f.get('answered_200', '–')} | {f.get('records', '–')} "
                     f"| {f.get('record_value_bytes') or '–'} |")
    lines += ["", notes(run, s, facts), "## Conditions", ""]
    plan = run.plan
    lines += [f"- Closed loop: concurrency {', '.join(map(str, plan['levels']))}, "
              f"{plan['duration']:g} s each after a {plan['warmup']:g} s warm-up; open loop "
              f"{plan['open_duration']:g} s over "
              + (f"{plan['open_connections']} connections" if plan["open_connections"] else
                 "enough connections for 50 ms answers at the rate (64 to 1024)")
              + "; large "
              f"bodies at concurrency {', '.join(map(str, plan['large_levels']))}, "
              f"{plan['large_duration']:g} s each.",
              f"- Load generator: bench/load ({run.profile} build), {run.args.load_threads} "
              "thread(s), HTTP/1.1 keep-alive, one request in flight per connection; "
              "the same pre-signed bodies for every contender.",
              f"- Peers: {run.args.peer_workers} worker process(es) each. Builds: {run.profile}; "
              f"hookbridge binary: `{hookbridge_path(run)}`.",
              "- Versions: " + "; ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
              f"- Load average before the run: {', '.join(f'{x:.2f}' for x in m['load_average'])}.",
              ""]
    lines += [f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}; "
              f"Kafka, the schema registry, the load generator and the contender share it. "
              f"Date: {now}.", "",
              "Absolute figures vary from machine to machine (and with whatever else runs); the "
              "ratios between contenders measured in the same run are what carry over.", ""]
    return "\n".join(lines)


def cpu_section(s):
    """Where the machine's CPU goes at each contender's peak, and what separates hookbridge's
    cost per request from the two ceilings' together (what the combined ceiling assumes)."""
    peaks = s["peaks"]
    lines = ["## Where the machine's CPU goes at each peak", "",
             "CPU milliseconds per request at each contender's closed-loop peak: the whole "
             "machine (from `/proc/stat`, sampled inside the load's window), the contender's own "
             "processes, the Kafka broker, the load generator, and the rest (the schema registry, "
             "kernel work outside these processes, anything else running). At its peak a contender "
             "usually keeps the machine busy (the busy cores column); the combined ceiling "
             "assumes a request costs what one request of each ceiling costs. `/proc` counts "
             "CPU in clock ticks (10 ms), so over a short window the rest can come out slightly "
             "below zero.", "",
             "| contender | concurrency | req/s | machine busy, cores | machine ms / req "
             "| contender ms / req | broker ms / req | load gen ms / req | rest ms / req |",
             "| " + " | ".join(["---"] * 9) + " |"]
    for name in CONTENDERS:
        p = peaks.get(name)
        if p is None:
            continue
        c = p["cost"]
        lines.append("| " + " | ".join([
            name, str(p["concurrency"]), fmt(p["throughput"]), fmt(p["busy_cores"], 2),
            fmt(c["machine"], 3), fmt(c["contender"], 3), fmt(c["broker"], 3), fmt(c["load"], 3),
            fmt(c.get("rest"), 3)]) + " |")
    lines.append("")
    by_level = s.get("combined_by_level") or {}
    hb_levels = {level: row["hookbridge"] for level, row in s["by_level"].items()
                 if "hookbridge" in row}
    if by_level and hb_levels:
        lines += ["The combined ceiling with both ceilings measured at the same concurrency as "
                  "hookbridge (the summary's uses each ceiling's best level):", "",
                  "| concurrency | combined ceiling at that level, req/s | hookbridge req/s "
                  "| hookbridge / combined |", "| --- | --- | --- | --- |"]
        for level, combined in by_level.items():
            if level in hb_levels:
                lines.append(f"| {level} | {fmt(combined)} | {fmt(hb_levels[level])} "
                             f"| {hb_levels[level] / combined:.2f} |")
        lines.append("")
    return lines


NOTES = BENCH / "notes.md"
# The share of hookbridge's own CPU that only it does (parse, Avro, metrics, timers, budget),
# from the profile bench/notes.md quotes; update both together.
OWN_SHARE = 0.23


def notes(run, s, facts):
    """bench/notes.md (why the ratio is what it is, and scaling out) with this run's figures;
    a figure the run did not measure shows as a dash."""
    values = {}
    peaks = s["peaks"]
    hb_peak = peaks.get("hookbridge")
    cost = {n: peaks.get(n, {}).get("cost", {}) for n in CONTENDERS}
    hb, http, produce = cost["hookbridge"], cost["ceiling-http"], cost["ceiling-produce"]

    def put(key, value, digits=3):
        if value is not None:
            values[key] = value if isinstance(value, str) else f"{value:,.{digits}f}"

    values["partitions"] = str(TOPIC_PARTITIONS)
    put("ratio", (s.get("ratios") or {}).get("hookbridge"), 2)
    for name, key in (("ceiling-http", "http_conc"), ("ceiling-produce", "produce_conc"),
                      ("hookbridge", "hb_conc")):
        if name in peaks:
            values[key] = str(peaks[name]["concurrency"])
    if hb_peak:
        put("hb_peak_round", round(hb_peak["throughput"], -2), 0)
        combined = (s.get("combined_by_level") or {}).get(hb_peak["concurrency"])
        put("same_level_combined", combined, 0)
        put("same_level_ratio", hb_peak["throughput"] / combined if combined else None, 2)
        put("hb_p50", hb_peak["p50_ms"], 1)
        put("hb_busy", hb_peak["busy_cores"], 2)
        cores = hb_peak["broker_cores"]
        put("hb_broker_cores", None if cores is None else
            f"{cores:.2f} cores ({hb_peak['throughput']:,.0f} records/s)")
    put("hb_machine", hb.get("machine"))
    if hb.get("machine") and hb.get("contender"):
        cut = OWN_SHARE * hb["contender"]
        put("own_cut", cut / hb["machine"] * 100, 0)
        ratio = (s.get("ratios") or {}).get("hookbridge")
        put("ratio_without_own", ratio * hb["machine"] / (hb["machine"] - cut) if ratio else None, 2)
    put("hb_proc", hb.get("contender"))
    put("hb_broker", hb.get("broker"))
    put("hb_load", hb.get("load"))
    put("http_load", http.get("load"))
    put("produce_broker", produce.get("broker"))
    if http.get("machine") is not None and produce.get("machine") is not None:
        both = http["machine"] + produce["machine"]
        put("both_machine", both)
        put("machine_times", hb["machine"] / both if hb.get("machine") else None, 1)
    if http.get("contender") is not None and produce.get("contender") is not None:
        put("ceiling_procs", http["contender"] + produce["contender"])
    levels = [f"{per_second(r, 'broker_cpu_s'):.2f} cores at {r['concurrency']} records in "
              f"flight ({r['throughput']:,.0f} records/s)"
              for r in run.results if r["kind"] == "closed" and r["contender"] == "ceiling-produce"
              and r["concurrency"] >= 32 and per_second(r, "broker_cpu_s") is not None]
    if levels:
        values["produce_broker_levels"] = ", ".join(levels)
    record_bytes = facts.get("hookbridge", {}).get("record_value_bytes")
    put("record_bytes", record_bytes, 0)
    if record_bytes:
        put("mb_10k", 10_000 * record_bytes / 1e6, 0)
    half = [r for r in run.results if r["kind"] == "open" and r["contender"] == "hookbridge"]
    if half:
        h = half[0]
        put("half_p99", h["latency"]["p99_ms"], 1)
        put("inflight_half", h["throughput"] * h["latency"]["mean_ms"] / 1000, 0)
        op = cpu_per_1000(h)
        put("op_cpu", op)
        if op:
            per_core = 1000 / op
            put("per_core_op", round(per_core, -2), 0)
            pod_rate = 2 * 0.7 * per_core
            put("pod_rate", round(pod_rate, -2), 0)
            put("pods_10k", math.ceil(10_000 / pod_rate) + 1, 0)
    if hb.get("contender"):
        put("per_core_peak", round(1000 / hb["contender"], -2), 0)
    template = string.Template(NOTES.read_text())
    return template.substitute({n: values.get(n, "–") for n in template.get_identifiers()})


def hookbridge_path(run):
    try:
        path = Path(run.binary("hookbridge")).resolve()
    except Failure:
        return "not built"
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def plot(run, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in CONTENDERS:
        rows = sorted((r for r in run.results if r["kind"] == "closed" and r["contender"] == name),
                      key=lambda r: r["concurrency"])
        if not rows:
            continue
        x = [r["concurrency"] for r in rows]
        ax_rate.plot(x, [r["throughput"] for r in rows], marker="o", label=name)
        ax_p99.plot(x, [r["latency"]["p99_ms"] for r in rows], marker="o", label=name)
    levels = sorted({r["concurrency"] for r in run.results if r["kind"] == "closed"})
    for ax in (ax_rate, ax_p99):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrency (requests in flight)")
        ax.grid(True, which="both", alpha=0.3)
    ax_rate.set_ylabel("requests (records) per second")
    ax_rate.set_title("Throughput, closed loop, ~1.9 KB bodies")
    ax_p99.set_yscale("log")
    ax_p99.set_ylabel("p99 latency, ms")
    ax_p99.set_title("p99 latency")
    ax_rate.legend()
    if run.args.smoke:
        fig.suptitle("SMOKE RUN: not results", color="red")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_smoke(run, markdown_path, png_path):
    """What a smoke run asserts: every measurement got 200s and nothing else, and the report
    exists. Nothing about speed."""
    problems = []
    for r in run.results:
        where = f"{r['contender']} {r['kind']} {r['body']} c={r['concurrency']}"
        if r["ok"] == 0:
            problems.append(f"{where}: no 200 at all")
        # `unsent`: the open loop's rate was more than the contender kept up with, which is
        # speed; any answer but 200, and any failed request, is not.
        wrong = {k: v for k, v in r["error_kinds"].items() if k != "unsent"}
        if wrong:
            problems.append(f"{where}: {sum(wrong.values())} errors {wrong}")
    for name in run.args.contenders:
        if not any(r["contender"] == name for r in run.results):
            problems.append(f"{name}: no measurement")
    if not markdown_path.is_file() or "## Summary" not in markdown_path.read_text():
        problems.append(f"{markdown_path} was not written")
    if not png_path.is_file() or png_path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        problems.append(f"{png_path} is not a PNG")
    return problems


def rerender(args, out):
    """The report of an earlier run from its results.json, with the report code as it is now."""
    raw = json.loads(Path(args.from_results).read_text())
    for key, value in raw.get("args", {"contenders": list(raw["contenders"])}).items():
        setattr(args, key, value)
    run = Run.__new__(Run)  # no new run: no token, topics or work directory
    run.args, run.plan, run.profile = args, raw["plan"], raw["profile"]
    run.results, run.contenders = raw["results"], raw["contenders"]
    markdown_path, png_path = out / "benchmarks.md", out / "benchmarks.png"
    markdown_path.write_text(report_markdown(run, raw["info"], run.contenders, raw["smoke"]))
    plot(run, png_path)
    log(f"report of {args.from_results} written again: {markdown_path}, {png_path}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny pass; asserts every contender answered 200s")
    parser.add_argument("--out", help="where benchmarks.md and benchmarks.png go "
                        "(default: docs/ for a full run, a new temporary directory for --smoke)")
    parser.add_argument("--workdir", help="raw results and logs (default: bench/out/<time> for a "
                        "full run, the output directory for --smoke)")
    parser.add_argument("--profile", default="release", choices=["release", "debug"],
                        help="which cargo build of hookbridge and the bench programs to run")
    parser.add_argument("--hookbridge-bin", help="the hookbridge binary to measure (default: "
                        "target/<profile>/hookbridge), e.g. to compare two builds")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma-separated subset of {','.join(CONTENDERS)}")
    parser.add_argument("--levels", help="closed-loop concurrency levels, e.g. 1,32,256,1024")
    parser.add_argument("--large-levels", help="concurrency levels for 256 KiB and 2 MiB bodies")
    parser.add_argument("--duration", type=float, help="seconds per closed-loop level")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per contender")
    parser.add_argument("--open-duration", type=float, help="seconds of the open-loop run")
    parser.add_argument("--large-duration", type=float, help="seconds per large-body level")
    parser.add_argument("--open-connections", type=int,
                        help="connections of the open loop (default: rate x 50 ms, 64 to 1024)")
    parser.add_argument("--load-threads", type=int, default=1, help="load generator threads (1)")
    parser.add_argument("--peer-workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="worker processes of the Node and Python peers (one per core)")
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--registry", default=os.environ.get(
        "SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"))
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--keep-topics", action="store_true", help="leave the run's topics in Kafka")
    parser.add_argument("--from-results", metavar="RESULTS_JSON",
                        help="no load: write the report and plot again from an earlier run's "
                        "results.json (after a change to the report's code or bench/notes.md)")
    args = parser.parse_args()
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="hookbridge-bench-smoke-") if args.smoke else str(ROOT / "docs")
    if args.workdir is None:
        args.workdir = args.out if args.smoke else str(BENCH / "out" / stamp)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_results:
        return rerender(args, out)

    # 1024 connections on each side, plus Kafka's: more than a default soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))

    info = {"machine": machine(), "versions": versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    run = Run(args)
    log(f"run {run.run_id}: {', '.join(args.contenders)}; {run.profile} builds; "
        f"plan {json.dumps(run.plan)}; work directory {run.workdir}")
    started = time.monotonic()
    failure = None
    try:
        run.execute()
    except Failure as e:
        failure = e
    finally:
        run.cleanup()
    raw = {"info": info, "plan": run.plan, "contenders": run.contenders, "results": run.results,
           "summary": summary(run), "smoke": args.smoke, "profile": run.profile,
           "args": {"contenders": args.contenders, "load_threads": args.load_threads,
                    "peer_workers": args.peer_workers, "hookbridge_bin": args.hookbridge_bin}}
    (run.workdir / "results.json").write_text(json.dumps(raw, indent=2))
    if failure is not None:
        log(f"FAILED: {failure}")
        log(f"partial results in {run.workdir / 'results.json'}")
        return 1

    markdown_path = out / "benchmarks.md"
    png_path = out / "benchmarks.png"
    markdown = report_markdown(run, info, run.contenders, args.smoke)
    markdown_path.write_text(markdown)
    plot(run, png_path)
    print(markdown)
    log(f"done in {time.monotonic() - started:.0f} s: {markdown_path}, {png_path}, "
        f"raw results {run.workdir / 'results.json'}")
    if args.smoke:
        problems = check_smoke(run, markdown_path, png_path)
        if problems:
            for problem in problems:
                log(f"SMOKE FAILED: {problem}")
            return 1
        log(f"smoke passed: {len(run.results)} measurements over {len(args.contenders)} "
            "contenders, every answer 200, every 200 a record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
