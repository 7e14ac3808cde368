//! Kafka: one idempotent `FutureProducer` with the settings the delivery guarantee rests on,
//! the [`Publisher`] seam handlers publish through, topic creation at start-up and the broker
//! health the readiness probe reports. The producer's context sends librdkafka's logs to
//! tracing and its statistics to metrics ([`super::stats`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Statistics};
use tokio::time::Instant;

use crate::config::KafkaConfig;
use crate::topic::TopicName;

/// One record to publish.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<String>,
    pub value: Bytes,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// The time hookbridge received the request.
    pub timestamp_ms: i64,
}

/// Room for a record's framing in librdkafka's size check beyond key, value and headers: the
/// record batch header and per-record varints.
const RECORD_OVERHEAD: usize = 1024;

/// Bytes librdkafka counts against `message.max.bytes` for one record.
pub fn wire_size(
    key: Option<&str>,
    value_len: usize,
    headers: &[(&'static str, Vec<u8>)],
) -> usize {
    let headers: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    key.map_or(0, str::len) + value_len + headers + RECORD_OVERHEAD
}

/// Where the broker stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("no acknowledgement before the deadline")]
    Timeout,
    #[error("producer queue is full")]
    QueueFull,
    /// Worth retrying: broker down, leader moving, request timed out.
    #[error("kafka refused the record (retryable): {0}")]
    Retryable(String),
    /// Retrying will not help until an operator acts (size limits, authorisation, missing topic).
    #[error("kafka refused the record (operator action needed): {0}")]
    Permanent(String),
}

impl PublishError {
    /// Bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PublishError::Timeout => "timeout",
            PublishError::QueueFull => "queue_full",
            PublishError::Retryable(_) => "retryable",
            PublishError::Permanent(_) => "permanent",
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Publishing seam: the real implementation is [`KafkaPublisher`]; handler tests run in-process
/// with their own.
pub trait Publisher: Send + Sync + 'static {
    /// Resolves once the broker acknowledged the record, or with an error at `deadline` latest.
    fn publish(
        &self,
        record: OutRecord,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<Delivered, PublishError>>;

    /// Waits up to `timeout` for queued records to be acknowledged.
    fn flush(&self, timeout: Duration) -> BoxFuture<'_, Result<(), String>>;
}

/// Routes librdkafka's own logs and errors into tracing, and its statistics into metrics.
#[derive(Clone, Default)]
pub struct TelemetryContext;

impl ClientContext for TelemetryContext {
    /// Replaces rdkafka's default, which logs a parse failure at error level at every interval.
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(statistics) = super::stats::parse(statistics) {
            self.stats(statistics);
        }
    }

    /// Replaces rdkafka's default, which logs the whole report at info level.
    fn stats(&self, statistics: Statistics) {
        super::stats::record(&statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            // librdkafka logs a refused broker connection at its error level, and again through
            // the error callback, while a broker restarts; readiness and 503s already report
            // what an operator must act on.
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(target: "librdkafka", %error, "fatal producer error, restart needed: {reason}");
        } else {
            // Broker connection errors repeat while a broker is down; readiness and 503s report them.
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }
}

/// How often librdkafka reports its statistics unless `kafka_properties` says otherwise (0 turns
/// them off): the health check's interval, and no shorter than a typical scrape interval.
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// The producer's configuration: defaults, then user properties, then the settings the
/// guarantee rests on (configuration loading already refused attempts to override those).
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("client.id", "hookbridge")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.kbytes", "65536")
        .set("socket.keepalive.enable", "true")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    for (key, value) in &config.properties {
        cc.set(key, value.expose());
    }
    cc.set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Java clients hash keys with murmur2; librdkafka's default does not. Kafka Streams and
        // Java producers must find a channel's events in the same partition.
        .set("partitioner", "murmur2_random")
        // A record carries the raw body plus typed copies of parts of it; the default 1 MB would
        // refuse records made from large (up to max_body_bytes) bodies before they reach a broker.
        .set(
            "message.max.bytes",
            (config.max_record_bytes + 64 * 1024).to_string(),
        );
    cc.set_log_level(RDKafkaLogLevel::Warning);
    cc
}

/// The configuration of the short-lived admin clients (topic creation and checks): the
/// producer's, without statistics. Their context is rdkafka's default, which would log every
/// report, and the producer's already cover the same brokers.
fn admin_config(config: &KafkaConfig) -> ClientConfig {
    let mut cc = client_config(config);
    cc.set("statistics.interval.ms", "0");
    cc
}

/// A librdkafka error as text without any secret property value: librdkafka quotes the value it
/// refused ("Invalid value \"...\" for configuration property"), and credentials set through
/// `kafka_properties` or `kafka_property_files` must not reach a log. Other values stay, so
/// `Unsupported value "zstd" ... libzstd not available` still says what was refused.
pub fn redacted(config: &KafkaConfig, error: &KafkaError) -> String {
    let mut text = match error {
        KafkaError::ClientConfig(_, description, key, _) => {
            format!("librdkafka refused property \"{key}\": {description}")
        }
        other => other.to_string(),
    };
    if let KafkaError::ClientConfig(_, _, key, value) = error
        && !value.is_empty()
        && config.is_secret(key)
    {
        text = text.replace(value.as_str(), "[redacted]");
    }
    for (key, value) in &config.properties {
        let value = value.expose();
        // A short secret would blank out unrelated words; it is still redacted above when it is
        // the value librdkafka refused.
        if value.len() >= 6 && config.is_secret(key) {
            text = text.replace(value, "[redacted]");
        }
    }
    text
}

fn classify(error: &KafkaError) -> PublishError {
    let code = error.rdkafka_error_code();
    match code {
        Some(RDKafkaErrorCode::QueueFull) => PublishError::QueueFull,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::Fatal,
        ) => PublishError::Permanent(error.to_string()),
        _ => PublishError::Retryable(error.to_string()),
    }
}

#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer<TelemetryContext>,
}

impl KafkaPublisher {
    pub fn new(config: &KafkaConfig) -> Result<Self, String> {
        let producer = client_config(config)
            .create_with_context(TelemetryContext)
            .map_err(|e| redacted(config, &e))?;
        Ok(KafkaPublisher { producer })
    }

    pub fn producer(&self) -> &FutureProducer<TelemetryContext> {
        &self.producer
    }

    /// Number of brokers and the topics that exist, from a metadata request (blocking call,
    /// run off the runtime's worker threads).
    pub async fn metadata(&self, timeout: Duration) -> Result<ClusterView, KafkaError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            let md = producer.client().fetch_metadata(None, timeout)?;
            Ok(ClusterView {
                brokers: md.brokers().len(),
                topics: md
                    .topics()
                    .iter()
                    // A topic just created may still lack a leader; it exists all the same.
                    .filter(|t| {
                        t.error().map(RDKafkaErrorCode::from)
                            != Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                    })
                    .map(|t| t.name().to_owned())
                    .collect(),
                leaderless: md
                    .topics()
                    .iter()
                    .filter(|t| {
                        t.partitions().is_empty()
                            || t.partitions()
                                .iter()
                                .any(|p| p.leader() < 0 || p.error().is_some())
                    })
                    .map(|t| t.name().to_owned())
                    .collect(),
                replicas: md
                    .topics()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.name().to_owned(),
                            t.partitions().first()?.replicas().len(),
                        ))
                    })
                    .collect(),
            })
        })
        .await
        .unwrap_or_else(|join| {
            tracing::error!(error = %join, "metadata task failed");
            Err(KafkaError::Global(RDKafkaErrorCode::Fail))
        })
    }
}

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub brokers: usize,
    pub topics: Vec<String>,
    /// Topics with a partition that has no leader yet (or none at all).
    pub leaderless: Vec<String>,
    /// Copies of each topic's first partition.
    pub replicas: std::collections::BTreeMap<String, usize>,
}

impl Publisher for KafkaPublisher {
    fn publish(
        &self,
        record: OutRecord,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<Delivered, PublishError>> {
        Box::pin(async move {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_slice()),
                });
            }
            let mut fr: FutureRecord<'_, str, [u8]> = FutureRecord::to(&record.topic)
                .payload(&record.value[..])
                .headers(headers)
                .timestamp(record.timestamp_ms);
            if let Some(key) = &record.key {
                fr = fr.key(key.as_str());
            }
            let delivery = match self.producer.send_result(fr) {
                Ok(delivery) => delivery,
                Err((error, _)) => return Err(classify(&error)),
            };
            match tokio::time::timeout_at(deadline, delivery).await {
                Ok(Ok(Ok(d))) if d.offset >= 0 => Ok(Delivered {
                    partition: d.partition,
                    offset: d.offset,
                }),
                // librdkafka reports a record as delivered without an offset when it inferred
                // the acknowledgement from a later one ("implicit ack") instead of the broker
                // confirming it. The chaos suite caught such a record missing from Kafka (a
                // broker accepts any first sequence from a producer id it has no state for), so
                // it is not good enough for a 200: the sender retries, at worst a duplicate.
                Ok(Ok(Ok(d))) => {
                    tracing::warn!(
                        partition = d.partition,
                        offset = d.offset,
                        "delivery reported without a broker offset; not confirming it"
                    );
                    Err(PublishError::Retryable(
                        "delivery not confirmed by the broker".into(),
                    ))
                }
                Ok(Ok(Err((error, _)))) => Err(classify(&error)),
                // The producer dropped the report: it is shutting down.
                Ok(Err(_canceled)) => Err(PublishError::Retryable("delivery report lost".into())),
                Err(_elapsed) => Err(PublishError::Timeout),
            }
        })
    }

    fn flush(&self, timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        let producer = self.producer.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || producer.flush(timeout))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}

/// Creates the topics that do not exist yet. Replication is `min(3, brokers)` unless configured.
pub async fn ensure_topics(
    config: &KafkaConfig,
    cluster: &ClusterView,
    topics: &[TopicName],
) -> Result<Vec<String>, String> {
    let missing: Vec<&TopicName> = topics
        .iter()
        .filter(|t| !cluster.topics.iter().any(|have| have == t.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let replication = config
        .topic_replication_factor
        .map(|r| i32::from(r.get()))
        .unwrap_or_else(|| i32::try_from(cluster.brokers.clamp(1, 3)).unwrap_or(1));
    let partitions = i32::try_from(config.topic_partitions.get()).unwrap_or(12);
    let max_message_bytes = required_topic_message_bytes(config).to_string();
    let min_insync = min_insync_replicas(replication).to_string();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            NewTopic::new(t.as_str(), partitions, TopicReplication::Fixed(replication))
                .set("max.message.bytes", &max_message_bytes)
                .set("min.insync.replicas", &min_insync)
        })
        .collect();
    let admin: AdminClient<DefaultClientContext> = admin_config(config)
        .create()
        .map_err(|e| format!("cannot create Kafka admin client: {}", redacted(config, &e)))?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new_topics.iter(), &opts)
        .await
        .map_err(|e| format!("creating topics failed: {e}"))?;
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => errors.push(format!("{name}: {code}")),
        }
    }
    if errors.is_empty() {
        Ok(created)
    } else {
        Err(format!("creating topics failed: {}", errors.join(", ")))
    }
}

/// `min.insync.replicas` for topics the gateway creates: with acks=all, a 200 then means the
/// record is on all copies but one (RF 2: one broker may be down; RF 3: two brokers have it).
/// Beyond three copies, a majority.
pub fn min_insync_replicas(replication: i32) -> i32 {
    match replication {
        ..=2 => 1,
        3 => 2,
        n => n / 2 + 1,
    }
}

/// The least `min.insync.replicas` the gateway runs with on a topic of `replication` copies:
/// with three or more, acks=all must mean at least two brokers have the record.
pub fn weakest_acceptable_insync(replication: usize) -> i64 {
    if replication >= 3 { 2 } else { 1 }
}

/// The `max.message.bytes` topics need so that a record made from a `max_body_bytes` body fits.
pub fn required_topic_message_bytes(config: &KafkaConfig) -> usize {
    config.max_record_bytes + 64 * 1024
}

/// What [`undersized_topics`] found.
#[derive(Debug, Default)]
pub struct TopicSizes {
    /// Topics whose limit is below what large bodies need, with that limit.
    pub too_small: Vec<(String, usize)>,
    /// Topics that could not be described (missing, or no DescribeConfigs permission), with why.
    pub unchecked: Vec<String>,
    /// Topics whose `min.insync.replicas` is below [`weakest_acceptable_insync`] for their copies,
    /// with that setting and the number of copies.
    pub weak_insync: Vec<(String, i64, usize)>,
}

/// Topics whose `max.message.bytes` (topic setting or broker default) is below what large
/// bodies need, with their limit. Topics the gateway created are sized right; this catches
/// topics created by someone else.
pub async fn undersized_topics(
    config: &KafkaConfig,
    topics: &[TopicName],
    replicas: &std::collections::BTreeMap<String, usize>,
) -> Result<TopicSizes, String> {
    use rdkafka::admin::{OwnedResourceSpecifier, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = admin_config(config)
        .create()
        .map_err(|e| format!("cannot create Kafka admin client: {}", redacted(config, &e)))?;
    let specifiers: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.as_str()))
        .collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .describe_configs(specifiers.iter(), &opts)
        .await
        .map_err(|e| format!("describing topic configs failed: {e}"))?;
    let required = required_topic_message_bytes(config);
    let mut sizes = TopicSizes::default();
    for (topic, result) in topics.iter().zip(results) {
        let resource = match result {
            Ok(resource) => resource,
            Err(code) => {
                sizes.unchecked.push(format!("{topic}: {code}"));
                continue;
            }
        };
        let OwnedResourceSpecifier::Topic(name) = &resource.specifier else {
            continue;
        };
        let limit = resource
            .get("max.message.bytes")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse::<usize>().ok());
        let min_insync = resource
            .get("min.insync.replicas")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse::<i64>().ok());
        if let (Some(min_insync), Some(&copies)) = (min_insync, replicas.get(name))
            && min_insync < weakest_acceptable_insync(copies)
        {
            sizes.weak_insync.push((name.clone(), min_insync, copies));
        }
        match limit {
            Some(limit) if limit < required => sizes.too_small.push((name.clone(), limit)),
            Some(_) => {}
            None => sizes
                .unchecked
                .push(format!("{topic}: no max.message.bytes in the answer")),
        }
    }
    Ok(sizes)
}

/// What the readiness probe knows about Kafka, refreshed in the background.
#[derive(Debug, Default)]
pub struct BrokerHealth {
    /// Milliseconds since the Unix epoch of the last successful metadata answer; 0 = never.
    last_ok_ms: AtomicI64,
    missing_topics: std::sync::Mutex<Vec<String>>,
    /// A fatal producer error: this producer will never deliver again.
    fatal: std::sync::Mutex<Option<String>>,
}

/// How often the background task asks for metadata; readiness fails after three misses.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

impl BrokerHealth {
    pub fn record_ok(&self, now_ms: i64, missing: Vec<String>) {
        self.last_ok_ms.store(now_ms, Ordering::Relaxed);
        if let Ok(mut m) = self.missing_topics.lock() {
            *m = missing;
        }
    }

    pub fn record_fatal(&self, why: String) {
        if let Ok(mut f) = self.fatal.lock() {
            *f = Some(why);
        }
    }

    /// `Err` once the producer failed fatally: the process must be restarted (liveness).
    pub fn check_alive(&self) -> Result<(), String> {
        match self.fatal.lock().map(|f| f.clone()) {
            Ok(Some(why)) => Err(format!("fatal producer error: {why}")),
            _ => Ok(()),
        }
    }

    /// `Ok` when Kafka answered recently and every topic exists; else the reason.
    pub fn check(&self, now_ms: i64) -> Result<(), String> {
        self.check_alive()?;
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        let stale_after = i64::try_from(HEALTH_INTERVAL.as_millis() * 3).unwrap_or(i64::MAX);
        if last == 0 || now_ms - last > stale_after {
            return Err("kafka has not answered a metadata request recently".into());
        }
        let missing = self
            .missing_topics
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        if !missing.is_empty() {
            return Err(format!("topics missing: {}", missing.join(", ")));
        }
        Ok(())
    }
}

/// Refreshes `health` every [`HEALTH_INTERVAL`] until the task is aborted.
pub async fn watch_brokers(
    publisher: KafkaPublisher,
    topics: Vec<String>,
    health: Arc<BrokerHealth>,
) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some((code, why)) = publisher.producer().client().fatal_error() {
            tracing::error!(%code, why, "producer failed fatally; failing liveness so the pod restarts");
            health.record_fatal(format!("{code}: {why}"));
        }
        match publisher.metadata(HEALTH_INTERVAL).await {
            Ok(view) => {
                let missing = topics
                    .iter()
                    .filter(|t| !view.topics.contains(t))
                    .cloned()
                    .collect();
                health.record_ok(crate::telemetry::now_ms(), missing);
                metrics::gauge!(crate::telemetry::KAFKA_UP).set(1.0);
            }
            Err(e) => {
                metrics::gauge!(crate::telemetry::KAFKA_UP).set(0.0);
                tracing::warn!(error = %e, "kafka metadata request failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::num::NonZeroU32;

    /// The section as configuration loading makes it (properties already checked there).
    fn section(properties: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
                .collect(),
            property_files: Default::default(),
            create_topics: true,
            topic_partitions: NonZeroU32::new(12).expect("non-zero"),
            topic_replication_factor: None,
            max_record_bytes: crate::config::max_record_bytes_for(2 * 1024 * 1024),
        }
    }

    #[test]
    fn producer_keeps_the_guarantee_settings_and_fits_large_records() {
        let config = section(&[]);
        let cc = client_config(&config);
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert_eq!(cc.get("acks"), Some("all"));
        assert_eq!(cc.get("partitioner"), Some("murmur2_random"));
        assert_eq!(cc.get("compression.type"), Some("lz4"));
        let max: usize = cc
            .get("message.max.bytes")
            .expect("set")
            .parse()
            .expect("number");
        assert!(max > 2 * 2 * 1024 * 1024, "{max}");
    }

    #[test]
    fn statistics_are_on_for_the_producer_unless_configured_and_off_for_admin_clients() {
        let cc = client_config(&section(&[]));
        assert_eq!(
            cc.get("statistics.interval.ms"),
            Some(STATISTICS_INTERVAL_MS)
        );
        let off = section(&[("statistics.interval.ms", "0")]);
        assert_eq!(client_config(&off).get("statistics.interval.ms"), Some("0"));
        let faster = section(&[("statistics.interval.ms", "1000")]);
        assert_eq!(
            client_config(&faster).get("statistics.interval.ms"),
            Some("1000")
        );
        assert_eq!(
            admin_config(&faster).get("statistics.interval.ms"),
            Some("0")
        );
    }

    #[test]
    fn the_producer_context_turns_a_statistics_report_into_metrics() {
        let report = include_bytes!("../../tests/fixtures/librdkafka/statistics-sent.json");
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            TelemetryContext.stats_raw(b"{\"truncated");
            TelemetryContext.stats_raw(report);
        });
        let page = recorder.handle().render();
        assert!(
            page.contains(
                "hookbridge_kafka_broker_up{broker_id=\"1\",broker=\"127.0.0.1:9092\"} 1\n"
            ),
            "{page}"
        );
        assert!(
            page.contains("\nhookbridge_kafka_producer_queue_max_messages 100000\n"),
            "{page}"
        );
    }

    #[test]
    fn readiness_needs_a_recent_metadata_answer_and_all_topics() {
        let h = BrokerHealth::default();
        assert!(h.check(1_000_000).is_err());
        h.record_ok(1_000_000, Vec::new());
        assert!(h.check(1_000_500).is_ok());
        assert!(h.check(1_000_000 + 16_000).is_err());
        h.record_ok(3_000_000, Vec::new());
        assert!(h.check_alive().is_ok());
        h.record_fatal("PID expired".into());
        assert!(h.check_alive().is_err());
        assert!(h.check(3_000_000).is_err(), "not ready either");
        let h = BrokerHealth::default();
        h.record_ok(2_000_000, vec!["chat.user".into()]);
        assert!(
            h.check(2_000_000)
                .expect_err("missing")
                .contains("chat.user")
        );
    }

    #[test]
    fn classifies_errors_for_the_operator() {
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(classify(&e), PublishError::QueueFull);
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(classify(&e), PublishError::Permanent(_)));
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(matches!(classify(&e), PublishError::Retryable(_)));
    }

    #[test]
    fn configuration_errors_never_print_property_values() {
        let config = section(&[("sasl.oauthbearer.client.secret", "hunter2-very-secret")]);
        let refused = KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2-very-secret\" for configuration property \"sasl.oauthbearer.client.secret\"".into(),
            "sasl.oauthbearer.client.secret".into(),
            "hunter2-very-secret".into(),
        );
        let text = redacted(&config, &refused);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("sasl.oauthbearer.client.secret"), "{text}");
        let creation =
            KafkaError::ClientCreation("oidc with hunter2-very-secret needs curl".into());
        assert!(!redacted(&config, &creation).contains("hunter2"));
        // And through the real librdkafka: an invalid value for a real property, read from a
        // file, so secret whatever its name.
        let mut config = section(&[("security.protocol", "NOT-A-PROTOCOL-s3cr3t")]);
        config
            .property_files
            .insert("security.protocol".into(), "/run/secrets/protocol".into());
        let err = KafkaPublisher::new(&config)
            .err()
            .expect("librdkafka refuses it");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn configuration_errors_show_a_refused_setting_that_is_no_secret() {
        // The same value in kafka_properties under a name that is no credential: the operator
        // needs to see what librdkafka refused.
        let config = section(&[
            ("security.protocol", "NOT-A-PROTOCOL"),
            ("sasl.password", "hunter2-very-secret"),
        ]);
        let err = KafkaPublisher::new(&config)
            .err()
            .expect("librdkafka refuses it");
        assert!(err.contains("\"NOT-A-PROTOCOL\""), "{err}");
        assert!(err.contains("security.protocol"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // librdkafka's refusal above never quotes the password, so the same two values in one
        // message: the setting stays, the credential goes.
        let both = KafkaError::ClientCreation(
            "NOT-A-PROTOCOL with password hunter2-very-secret is not supported".into(),
        );
        let text = redacted(&config, &both);
        assert!(text.contains("NOT-A-PROTOCOL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn min_insync_replicas_leaves_room_for_one_broker_down() {
        assert_eq!(
            (1..=5).map(min_insync_replicas).collect::<Vec<_>>(),
            vec![1, 1, 2, 3, 3]
        );
        assert_eq!(weakest_acceptable_insync(2), 1);
        assert_eq!(weakest_acceptable_insync(3), 2);
    }
}
