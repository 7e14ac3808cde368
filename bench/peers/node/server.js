'use strict';
// The Sendbird webhook handler a Node.js team would write from Sendbird's tutorial, done
// properly: Express, the HMAC-SHA256 of the raw body checked in constant time against
// `x-sendbird-signature`, then the raw JSON produced to Kafka with kafkajs (acks -1, idempotent
// producer, LZ4), keyed by channel URL, and 200 only once the broker acknowledged it.
//
// kafkajs sends every `send()` as its own produce request, and an idempotent producer allows
// one request in flight per broker, so records are gathered the way librdkafka does it: up to
// LINGER_MS (5 ms, hookbridge's linger.ms), or until a batch holds MAX_BATCH_BYTES, and while a
// batch is in flight the next one fills.
//
// One process per core (node:cluster), as a Node service is run on a multi-core machine.
//
// Environment: PORT (8080), HOST (127.0.0.1), SENDBIRD_API_TOKEN (required), KAFKA_BROKERS
// (127.0.0.1:9092), TOPIC_PREFIX (sendbird.), WORKERS (available cores), LINGER_MS (5),
// MAX_BATCH_BYTES (1000000, librdkafka's batch.size), MAX_BODY_BYTES (2 MiB).

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const os = require('node:os');

const express = require('express');
const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = require('kafkajs');
const LZ4 = require('kafkajs-lz4');

const config = {
  port: Number(process.env.PORT || 8080),
  host: process.env.HOST || '127.0.0.1',
  token: process.env.SENDBIRD_API_TOKEN,
  brokers: (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(','),
  topicPrefix: process.env.TOPIC_PREFIX || 'sendbird.',
  workers: Number(process.env.WORKERS || os.availableParallelism()),
  lingerMs: Number(process.env.LINGER_MS || 5),
  maxBatchBytes: Number(process.env.MAX_BATCH_BYTES || 1000000),
  maxBodyBytes: Number(process.env.MAX_BODY_BYTES || 2 * 1024 * 1024),
};

/** Gathers records into batches and resolves each record's promise when its batch is acked. */
class Batcher {
  constructor(producer, { lingerMs, maxBatchBytes }) {
    this.producer = producer;
    this.lingerMs = lingerMs;
    this.maxBatchBytes = maxBatchBytes;
    this.pending = [];
    this.bytes = 0;
    this.timer = null;
    this.inFlight = false;
  }

  send(topic, key, value) {
    return new Promise((resolve, reject) => {
      this.pending.push({ topic, key, value, resolve, reject });
      this.bytes += value.length;
      if (this.inFlight) return; // sent as soon as the batch in flight is acknowledged
      if (this.bytes >= this.maxBatchBytes) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  async flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.bytes = 0;
    this.inFlight = true;
    const byTopic = new Map();
    for (const { topic, key, value } of batch) {
      if (!byTopic.has(topic)) byTopic.set(topic, []);
      byTopic.get(topic).push({ key, value });
    }
    try {
      await this.producer.sendBatch({
        acks: -1,
        compression: CompressionTypes.LZ4,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
      for (const record of batch) record.resolve();
    } catch (err) {
      console.error(`produce failed for ${batch.length} records: ${err.message}`);
      for (const record of batch) record.reject(err);
    } finally {
      this.inFlight = false;
      if (this.pending.length > 0) this.flush();
    }
  }
}

function verified(signature, body, token) {
  const expected = crypto.createHmac('sha256', token).update(body).digest();
  const given = Buffer.from(signature || '', 'hex');
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

async function worker() {
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4().codec;
  const kafka = new Kafka({
    clientId: 'sendbird-webhooks',
    brokers: config.brokers,
    logLevel: logLevel.WARN,
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // Java's murmur2, as hookbridge and Kafka Streams partition keys.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const batcher = new Batcher(producer, config);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/readyz', (req, res) => res.send('ready'));
  app.post(
    '/webhooks/sendbird',
    express.raw({ type: 'application/json', limit: config.maxBodyBytes }),
    async (req, res) => {
      if (!Buffer.isBuffer(req.body)) {
        return res.status(415).json({ error: 'expected application/json' });
      }
      if (!verified(req.get('x-sendbird-signature'), req.body, config.token)) {
        return res.status(401).json({ error: 'unauthorized' });
      }
      let event;
      try {
        event = JSON.parse(req.body);
      } catch {
        return res.status(400).json({ error: 'invalid JSON' });
      }
      const family = String(event.category || '').split(':')[0] || 'other';
      const key = event.channel && event.channel.channel_url ? String(event.channel.channel_url) : null;
      try {
        await batcher.send(config.topicPrefix + family, key, req.body);
      } catch {
        return res.status(503).set('Retry-After', '5').json({ error: 'unavailable' });
      }
      return res.json({ status: 'accepted' });
    },
  );

  const server = app.listen(config.port, config.host);
  process.on('SIGTERM', () => {
    server.close(async () => {
      await producer.disconnect();
      process.exit(0);
    });
    server.closeIdleConnections();
  });
}

if (!config.token) {
  console.error('SENDBIRD_API_TOKEN is required');
  process.exit(2);
}

if (cluster.isPrimary && config.workers > 1) {
  let stopping = false;
  let alive = config.workers;
  for (let i = 0; i < config.workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    alive -= 1;
    if (!stopping) {
      console.error(`worker ${w.process.pid} exited (${signal || code}); stopping`);
      stopping = true;
      for (const other of Object.values(cluster.workers)) other.process.kill('SIGTERM');
      process.exitCode = 1;
    }
    if (alive === 0) process.exit();
  });
  process.on('SIGTERM', () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  });
} else {
  worker().catch((err) => {
    console.error(`cannot start: ${err.message}`);
    process.exit(1);
  });
}
