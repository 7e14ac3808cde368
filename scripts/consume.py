#!/usr/bin/env python3
"""Print hookbridge records as a downstream team sees them: decoded with confluent-kafka's
AvroDeserializer and the schema registry.

    .venv/bin/python scripts/consume.py sendbird.group_channel [more topics] [--from-beginning]

Environment: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), SCHEMA_REGISTRY_URL (default
http://127.0.0.1:8081/apis/ccompat/v7). Dead-letter topics (…dlq) are printed raw.
"""
import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="+")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--max", type=int, default=0, help="stop after this many records")
    parser.add_argument("--idle-seconds", type=float, default=0, help="stop when nothing arrives for this long")
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=0,
        help="give up after this long in all, saying which step was reached, and exit 2",
    )
    parser.add_argument("--verbose", action="store_true", help="log each step to stderr with its time")
    args = parser.parse_args()

    started = time.monotonic()
    step = "starting"

    def reached(what: str) -> None:
        nonlocal step
        step = what
        if args.verbose:
            print(f"consume.py: {time.monotonic() - started:6.1f} s: {what}", file=sys.stderr, flush=True)

    def log_error(err) -> None:
        print(f"consume.py: {time.monotonic() - started:6.1f} s: client error: {err}", file=sys.stderr, flush=True)

    registry = SchemaRegistryClient(
        {
            "url": os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
            # Without it the client waits for an answer for ever.
            "timeout": 10,
        }
    )
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "group.id": f"hookbridge-consume-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.auto.commit": False,
            "error_cb": log_error,
        }
    )
    consumer.subscribe(
        args.topics,
        on_assign=lambda _c, parts: reached(
            "assigned " + (", ".join(f"{p.topic}[{p.partition}]" for p in parts) or "nothing")
        ),
    )
    reached(f"subscribed to {', '.join(args.topics)}, waiting for the group's assignment")
    seen = 0
    idle = 0.0
    try:
        while args.max == 0 or seen < args.max:
            if args.timeout_seconds and time.monotonic() - started >= args.timeout_seconds:
                print(
                    f"consume.py: gave up after {args.timeout_seconds:g} s with {seen} record(s) read;"
                    f" last step: {step}",
                    file=sys.stderr,
                    flush=True,
                )
                return 2
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1.0
                if args.idle_seconds and idle >= args.idle_seconds:
                    reached(f"nothing for {args.idle_seconds:g} s, stopping")
                    break
                continue
            idle = 0.0
            if msg.error():
                print(f"error: {msg.error()}", file=sys.stderr)
                continue
            reached(f"record {msg.topic()}[{msg.partition()}] at offset {msg.offset()}, decoding")
            headers = {k: (v.decode() if v else None) for k, v in (msg.headers() or [])}
            if msg.topic().endswith("dlq"):
                value = msg.value().decode("utf-8", "backslashreplace")
            else:
                ctx = SerializationContext(msg.topic(), MessageField.VALUE)
                value = deserialize(msg.value(), ctx)
            reached("decoded")
            print(
                json.dumps(
                    {
                        "topic": msg.topic(),
                        "partition": msg.partition(),
                        "offset": msg.offset(),
                        "key": msg.key().decode() if msg.key() else None,
                        "headers": headers,
                        "value": value,
                    },
                    default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o),
                    ensure_ascii=False,
                    indent=2,
                ),
                flush=True,
            )
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        reached("closing the consumer")
        consumer.close()
        reached("closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
