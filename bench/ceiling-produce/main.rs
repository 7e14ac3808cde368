//! The bare produce ceiling of the benchmark harness (bench/README.md): hookbridge's own
//! producer (the configuration `serve` loads from the same `HOOKBRIDGE_*` environment, built by
//! `KafkaPublisher::new`: acks=all, idempotence, linger, compression, partitioner, sizes) writing
//! the harness's bodies as record values, keyed by channel URL, with hookbridge's record
//! headers, in a closed loop: `--concurrency` tasks, each awaiting its record's acknowledgement
//! before producing the next. No HTTP, no parsing, no Avro: what Kafka and the client library
//! take on this machine.
//!
//! Prints one JSON object in the load generator's shape (throughput, latency from produce to
//! acknowledgement, errors, this process's CPU and memory). The topic must exist (bench/run.py
//! creates it as hookbridge would).
//!
//!     cargo run --release --example ceiling-produce -- --topic bench.group_channel --concurrency 32

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use hookbridge::config::Config;
use hookbridge::providers::{
    HEADER_APP_ID, HEADER_CATEGORY, HEADER_EVENT_ID, HEADER_SOURCE, PROVIDERS,
};
use hookbridge::sink::kafka::KafkaPublisher;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[path = "../common.rs"]
mod common;

use common::{Body, BodySet};

#[derive(Parser, Debug)]
#[command(about = "Bare produce ceiling: hookbridge's producer in a closed loop")]
struct Args {
    /// Existing topic to write to.
    #[arg(long)]
    topic: String,
    /// Tasks, each with one record awaiting its acknowledgement.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, value_enum, default_value = "small")]
    body: BodySet,
    /// A record not acknowledged after this many seconds counts as an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Echoed in the output.
    #[arg(long, default_value = "")]
    label: String,
}

struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn error_kind(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("kafka_{code:?}"),
        None => "kafka_other".to_owned(),
    }
}

/// Produces one record and waits for its acknowledgement: Ok only for a broker offset, the
/// condition hookbridge answers 200 on.
async fn produce_one(
    producer: &FutureProducer<hookbridge::sink::kafka::TelemetryContext>,
    topic: &str,
    body: &Body,
    timeout: Duration,
) -> Result<(), String> {
    let headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: HEADER_EVENT_ID,
            value: Some(body.event_id.as_bytes()),
        })
        .insert(Header {
            key: HEADER_CATEGORY,
            value: Some("group_channel:message_send".as_bytes()),
        })
        .insert(Header {
            key: HEADER_APP_ID,
            value: Some(common::APP_ID.as_bytes()),
        })
        .insert(Header {
            key: HEADER_SOURCE,
            value: Some("sendbird".as_bytes()),
        });
    let record = FutureRecord::to(topic)
        .key(body.channel_url.as_str())
        .payload(&body.bytes[..])
        .headers(headers)
        .timestamp(now_ms());
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| error_kind(&e))?;
    match tokio::time::timeout(timeout, delivery).await {
        Ok(Ok(Ok(d))) if d.offset >= 0 => Ok(()),
        Ok(Ok(Ok(_))) => Err("no_broker_offset".into()),
        Ok(Ok(Err((e, _)))) => Err(error_kind(&e)),
        Ok(Err(_canceled)) => Err("report_lost".into()),
        Err(_elapsed) => Err("timeout".into()),
    }
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let duration = Duration::try_from_secs_f64(args.duration)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or("--duration must be a number of seconds above 0")?;
    let token = common::token_from_env()?;
    let config = Config::load(&PROVIDERS).map_err(|e| e.to_string())?;
    let publisher = KafkaPublisher::new(&config.kafka)?;
    let producer = publisher.producer().clone();
    let bodies = Arc::new(common::bodies(args.body, &token));
    let topic: Arc<str> = args.topic.as_str().into();
    let timeout =
        Duration::try_from_secs_f64(args.timeout).map_err(|e| format!("--timeout: {e}"))?;

    // Warm-up outside the window: producer id, metadata, a connection to each leader.
    let mut warm = tokio::task::JoinSet::new();
    for i in 0..bodies.len().min(common::CHANNELS) {
        let (producer, topic, bodies) = (producer.clone(), topic.clone(), bodies.clone());
        warm.spawn(async move { produce_one(&producer, &topic, &bodies[i], timeout).await });
    }
    while let Some(joined) = warm.join_next().await {
        joined
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("warm-up record to {} failed: {e}", args.topic))?;
    }

    let concurrency = args.concurrency.max(1);
    let watch = common::Watch::start(std::process::id());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..concurrency {
        let (producer, topic, bodies) = (producer.clone(), topic.clone(), bodies.clone());
        tasks.spawn(async move {
            let mut tally = Tally {
                latency: common::histogram(),
                errors: BTreeMap::new(),
            };
            let mut next = index.wrapping_mul(7919);
            while Instant::now() < deadline {
                let body = &bodies[next % bodies.len()];
                next = next.wrapping_add(1);
                let sent = Instant::now();
                match produce_one(&producer, &topic, body, timeout).await {
                    Ok(()) => common::record(&mut tally.latency, sent.elapsed()),
                    Err(kind) => {
                        *tally.errors.entry(kind).or_default() += 1;
                        // A full queue clears as acknowledgements arrive; do not spin on it.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            tally
        });
    }
    let mut latency = common::histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.map_err(|e| e.to_string())?;
        latency
            .add(&tally.latency)
            .map_err(|e| format!("histogram: {e}"))?;
        for (k, v) in tally.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let process = watch.finish();
    let ok = latency.len();
    Ok(serde_json::json!({
        "label": args.label,
        "mode": "closed",
        "concurrency": concurrency,
        "target_rate": null,
        "body": args.body.name(),
        "body_bytes": args.body.body_bytes(),
        "duration_s": elapsed,
        "ok": ok,
        "warmup_ok": bodies.len().min(common::CHANNELS),
        "errors": errors.values().sum::<u64>(),
        "error_kinds": errors,
        "late_sends": 0,
        "throughput": ok as f64 / elapsed,
        "latency": common::latency_json(&latency),
        "process": process,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(result) => {
            println!("{result}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ceiling-produce: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
