"""The Sendbird webhook handler a Python team would write from Sendbird's tutorial, done properly.

Starlette under uvicorn (uvloop, httptools, one worker process per core: see bench/run.py),
the HMAC-SHA256 of the raw body checked in constant time against ``x-sendbird-signature``, then
the raw JSON produced with confluent-kafka (librdkafka) with hookbridge's producer settings
(acks=all, idempotence, lz4, linger.ms=5, murmur2 partitioner), keyed by channel URL, and 200
only once the broker acknowledged the record. A poll thread serves librdkafka's delivery
reports and hands each to the request's asyncio future.

Environment: SENDBIRD_API_TOKEN (required), KAFKA_BROKERS (127.0.0.1:9092), TOPIC_PREFIX
(sendbird.), MAX_BODY_BYTES (2 MiB), KAFKA_MESSAGE_MAX_BYTES (8519680, what hookbridge allows
for a 2 MiB body).

    uvicorn app:app --loop uvloop --http httptools --workers 2 --no-access-log
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import threading

from confluent_kafka import KafkaException, Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

TOKEN = os.environ.get("SENDBIRD_API_TOKEN", "").encode()
BROKERS = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
TOPIC_PREFIX = os.environ.get("TOPIC_PREFIX", "sendbird.")
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", 2 * 1024 * 1024))

PRODUCER_CONFIG = {
    "bootstrap.servers": BROKERS,
    "client.id": "sendbird-webhooks",
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 5,
    "message.timeout.ms": 30000,
    "queue.buffering.max.kbytes": 65536,
    "partitioner": "murmur2_random",
    "message.max.bytes": int(os.environ.get("KAFKA_MESSAGE_MAX_BYTES", 8519680)),
}


def _resolve(future, result):
    if not future.done():
        future.set_result(result)


def _fail(future, error):
    if not future.done():
        future.set_exception(error)


class AsyncProducer:
    """confluent-kafka's Producer with delivery reports bridged to asyncio futures."""

    def __init__(self, config, loop):
        self._producer = Producer(config)
        self._loop = loop
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self):
        while not self._closing.is_set():
            self._producer.poll(0.1)

    def wait_connected(self, timeout=10.0):
        self._producer.list_topics(timeout=timeout)

    def produce(self, topic, key, value):
        """A future resolved with the record's offset once the broker acknowledged it."""
        future = self._loop.create_future()

        def delivered(err, msg):
            if err is not None:
                self._loop.call_soon_threadsafe(_fail, future, KafkaException(err))
            else:
                self._loop.call_soon_threadsafe(_resolve, future, msg.offset())

        self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
        return future

    def close(self, timeout=10.0):
        self._closing.set()
        self._poller.join()
        self._producer.flush(timeout)


@contextlib.asynccontextmanager
async def lifespan(app):
    if not TOKEN:
        raise RuntimeError("SENDBIRD_API_TOKEN is required")
    producer = AsyncProducer(PRODUCER_CONFIG, asyncio.get_running_loop())
    await asyncio.to_thread(producer.wait_connected)
    app.state.producer = producer
    yield
    await asyncio.to_thread(producer.close)


def verified(signature, body):
    expected = hmac.new(TOKEN, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.lower().encode("ascii", "replace"))


async def sendbird_webhook(request: Request):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return JSONResponse({"error": "payload too large"}, status_code=413)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse({"error": "payload too large"}, status_code=413)
    if not verified(request.headers.get("x-sendbird-signature", ""), body):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    try:
        event = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "invalid JSON"}, status_code=400)
    if not isinstance(event, dict):
        return JSONResponse({"error": "not a JSON object"}, status_code=400)
    family = str(event.get("category", "")).split(":", 1)[0] or "other"
    channel = event.get("channel")
    key = channel.get("channel_url") if isinstance(channel, dict) else None
    if key is not None:
        key = str(key)
    try:
        await request.app.state.producer.produce(TOPIC_PREFIX + family, key, body)
    except (BufferError, KafkaException):
        return JSONResponse({"error": "unavailable"}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "accepted"})


async def readyz(request: Request):
    return PlainTextResponse("ready")


app = Starlette(
    routes=[
        Route("/webhooks/sendbird", sendbird_webhook, methods=["POST"]),
        Route("/readyz", readyz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
