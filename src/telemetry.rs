//! Logging (JSON or text, never secrets or bodies) and the Prometheus recorder.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Webhook requests by `provider`, `outcome` (accepted, dead_lettered, unauthorized, rejected,
/// too_large, unavailable, error) and category `family`. `provider` is a registered provider's
/// name, or `none` for a route naming no configured source.
pub const REQUESTS: &str = "hookbridge_webhook_requests_total";
/// Request latency in seconds, by `provider` and `outcome`.
pub const REQUEST_DURATION: &str = "hookbridge_webhook_request_duration_seconds";
/// Time from produce to broker acknowledgement, by `provider`, `family` and `result`.
pub const PUBLISH_DURATION: &str = "hookbridge_kafka_publish_duration_seconds";
/// Webhook requests being handled right now.
pub const IN_FLIGHT: &str = "hookbridge_webhook_in_flight";
/// Signature failures by `provider` and `reason` (missing, malformed, mismatch, expired,
/// bad_encoding).
pub const SIGNATURE_FAILURES: &str = "hookbridge_signature_failures_total";
/// 1 when the last Kafka metadata request succeeded.
pub const KAFKA_UP: &str = "hookbridge_kafka_up";
/// Secrets each source accepts now (by `provider` and `app_id`, the source id): check every pod shows the new count before
/// switching the sender to a rotated secret.
pub const API_TOKENS: &str = "hookbridge_api_tokens";
/// Failed re-reads of a secrets file, by `provider` and `app_id`.
pub const TOKEN_RELOAD_FAILURES: &str = "hookbridge_api_token_reload_failures_total";
/// Open connections on the webhook listener.
pub const OPEN_CONNECTIONS: &str = "hookbridge_open_connections";
/// Connections refused because `max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "hookbridge_connections_refused_total";
/// Connections the gateway closed, by `reason` (header_timeout, idle).
pub const CONNECTIONS_CLOSED: &str = "hookbridge_connections_closed_total";
/// Bytes of `max_buffered_bytes` held by requests (bodies and records).
pub const BUFFERED_BYTES: &str = "hookbridge_buffered_bytes";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0,
];

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level.
pub fn init_logging(format: LogFormat, level: &str) {
    // tracing-subscriber's parser can panic on non-ASCII directives; such a RUST_LOG is ignored.
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| v.is_ascii())
        .map(EnvFilter::try_new);
    let filter = match from_env {
        Some(Ok(filter)) => Ok(filter),
        _ => EnvFilter::try_new(level),
    }
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use. One per process, because
/// `metrics` has one global recorder; several applications in one test process share it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("bucket list is a non-empty constant")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "Webhook requests by outcome and category family.");
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Webhook request latency by outcome."
    );
    metrics::describe_histogram!(
        PUBLISH_DURATION,
        metrics::Unit::Seconds,
        "Time from produce to Kafka acknowledgement."
    );
    metrics::describe_gauge!(IN_FLIGHT, "Webhook requests being handled.");
    metrics::describe_counter!(SIGNATURE_FAILURES, "Rejected signatures by reason.");
    metrics::describe_gauge!(KAFKA_UP, "1 when Kafka answered the last metadata request.");
    metrics::describe_gauge!(API_TOKENS, "API tokens each app accepts now.");
    metrics::describe_counter!(TOKEN_RELOAD_FAILURES, "Failed re-reads of a tokens file.");
    metrics::describe_gauge!(
        OPEN_CONNECTIONS,
        "Open connections on the webhook listener."
    );
    metrics::describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused at max_connections."
    );
    metrics::describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections closed by the gateway, by reason."
    );
    metrics::describe_gauge!(
        BUFFERED_BYTES,
        "Bytes held by requests out of max_buffered_bytes."
    );
}

/// Histograms are drained into buckets by upkeep; run it while the process lives.
pub fn spawn_metrics_upkeep() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let handle = prometheus().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    });
}
