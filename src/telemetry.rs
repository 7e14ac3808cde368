//! Logging (JSON or text, never secrets or bodies), the Prometheus recorder with the name of
//! every metric the gateway exports, `hookbridge_build_info`, and the process's own `process_*`
//! figures, read from `/proc` at each scrape.

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
/// 1, labelled with the `version`, `git_sha` and `rustc` the binary was built from.
pub const BUILD_INFO: &str = "hookbridge_build_info";

// From librdkafka's statistics (`statistics.interval.ms`), set by `sink::stats`. Gauges hold the
// last report's value; counters are librdkafka's own running totals, set as they are.
/// Records in the producer's queue: waiting to be sent or for their acknowledgement.
pub const KAFKA_QUEUE_MESSAGES: &str = "hookbridge_kafka_producer_queue_messages";
/// Bytes of the records in the producer's queue.
pub const KAFKA_QUEUE_BYTES: &str = "hookbridge_kafka_producer_queue_bytes";
/// The queue's limit in records (`queue.buffering.max.messages`).
pub const KAFKA_QUEUE_MAX_MESSAGES: &str = "hookbridge_kafka_producer_queue_max_messages";
/// The queue's limit in bytes (`queue.buffering.max.kbytes`).
pub const KAFKA_QUEUE_MAX_BYTES: &str = "hookbridge_kafka_producer_queue_max_bytes";
/// 1 while the producer's connection to the broker (`broker_id`, `broker`) is up, else 0.
pub const KAFKA_BROKER_UP: &str = "hookbridge_kafka_broker_up";
/// Mean round-trip time of requests to the broker over the last statistics window.
pub const KAFKA_BROKER_RTT_AVG: &str = "hookbridge_kafka_broker_rtt_avg_seconds";
/// 99th percentile round-trip time to the broker over the last statistics window.
pub const KAFKA_BROKER_RTT_P99: &str = "hookbridge_kafka_broker_rtt_p99_seconds";
/// Requests sent to the broker.
pub const KAFKA_BROKER_REQUESTS: &str = "hookbridge_kafka_broker_requests_total";
/// Requests that failed to be sent to the broker.
pub const KAFKA_BROKER_TX_ERRORS: &str = "hookbridge_kafka_broker_transmit_errors_total";
/// Responses from the broker that could not be read.
pub const KAFKA_BROKER_RX_ERRORS: &str = "hookbridge_kafka_broker_receive_errors_total";
/// Requests to the broker sent again.
pub const KAFKA_BROKER_RETRIES: &str = "hookbridge_kafka_broker_retries_total";
/// Requests to the broker that timed out.
pub const KAFKA_BROKER_TIMEOUTS: &str = "hookbridge_kafka_broker_request_timeouts_total";
/// Connections to the broker that were lost or closed.
pub const KAFKA_BROKER_DISCONNECTS: &str = "hookbridge_kafka_broker_disconnects_total";
/// Mean size in bytes of the batches sent to a `topic`, over the last statistics window.
pub const KAFKA_TOPIC_BATCH_BYTES: &str = "hookbridge_kafka_topic_batch_bytes_avg";
/// Mean number of records in the batches sent to a `topic`, over the last statistics window.
pub const KAFKA_TOPIC_BATCH_MESSAGES: &str = "hookbridge_kafka_topic_batch_messages_avg";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0,
];

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level.
pub fn init_logging(format: LogFormat, level: &str, export: Option<&crate::otel::Export>) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{Layer, Registry};

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
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![logs];
    // Span export has a filter of its own: the request's `verify`, `encode` and `publish`
    // children are debug spans, exported without turning debug logging on.
    if let Some(export) = export {
        layers.push(
            export
                .layer()
                .with_filter(Targets::new().with_target("hookbridge", tracing::Level::DEBUG))
                .boxed(),
        );
    }
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
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
        record_build_info();
        handle
    })
}

/// The `/metrics` page: everything recorded through `metrics`, then the `process_*` figures.
pub fn render() -> String {
    let mut page = prometheus().render();
    if let Some(process) = ProcessStats::read() {
        process.render_into(&mut page);
    }
    page
}

/// What the build script (build.rs) found: the commit (`GIT_SHA` when set at build time, else
/// git's short hash, else "unknown") and the compiler's version.
pub const GIT_SHA: &str = env!("HOOKBRIDGE_GIT_SHA");
pub const RUSTC_VERSION: &str = env!("HOOKBRIDGE_RUSTC_VERSION");

fn record_build_info() {
    // Named through its module like every other recording, for tools that read src/.
    metrics::gauge!(
        crate::telemetry::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "git_sha" => GIT_SHA,
        "rustc" => RUSTC_VERSION
    )
    .set(1.0);
}

/// Creates, at 0, the series alerts take `increase()` of, for each configured provider: a
/// counter that appears only with its first increment hides that increment from `increase()`,
/// so a pod's first dead letter or first forged request would go unseen.
pub fn preregister(providers: &[&'static str]) {
    for &provider in providers {
        for outcome in ["dead_lettered", "unavailable", "unauthorized"] {
            metrics::counter!(REQUESTS, "provider" => provider, "outcome" => outcome, "family" => "none")
                .increment(0);
        }
        for reason in crate::verify::SignatureError::REASONS {
            metrics::counter!(SIGNATURE_FAILURES, "provider" => provider, "reason" => reason)
                .increment(0);
        }
    }
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
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which version, commit and compiler built the binary."
    );
    describe_kafka_statistics();
}

fn describe_kafka_statistics() {
    use metrics::Unit;
    metrics::describe_gauge!(
        KAFKA_QUEUE_MESSAGES,
        "Records in the producer queue, not yet acknowledged (librdkafka msg_cnt)."
    );
    metrics::describe_gauge!(
        KAFKA_QUEUE_BYTES,
        Unit::Bytes,
        "Bytes of the records in the producer queue (librdkafka msg_size)."
    );
    metrics::describe_gauge!(
        KAFKA_QUEUE_MAX_MESSAGES,
        "Limit of records in the producer queue (librdkafka msg_max)."
    );
    metrics::describe_gauge!(
        KAFKA_QUEUE_MAX_BYTES,
        Unit::Bytes,
        "Limit of bytes in the producer queue (librdkafka msg_size_max)."
    );
    metrics::describe_gauge!(
        KAFKA_BROKER_UP,
        "1 while the producer's connection to the broker is up (librdkafka state UP), else 0."
    );
    metrics::describe_gauge!(
        KAFKA_BROKER_RTT_AVG,
        Unit::Seconds,
        "Mean request round-trip time to the broker in the last statistics window."
    );
    metrics::describe_gauge!(
        KAFKA_BROKER_RTT_P99,
        Unit::Seconds,
        "99th percentile request round-trip time to the broker in the last statistics window."
    );
    metrics::describe_counter!(
        KAFKA_BROKER_REQUESTS,
        "Requests sent to the broker (librdkafka tx)."
    );
    metrics::describe_counter!(
        KAFKA_BROKER_TX_ERRORS,
        "Requests that could not be sent to the broker (librdkafka txerrs)."
    );
    metrics::describe_counter!(
        KAFKA_BROKER_RX_ERRORS,
        "Responses from the broker that could not be read (librdkafka rxerrs)."
    );
    metrics::describe_counter!(
        KAFKA_BROKER_RETRIES,
        "Requests to the broker sent again (librdkafka txretries)."
    );
    metrics::describe_counter!(
        KAFKA_BROKER_TIMEOUTS,
        "Requests to the broker that timed out (librdkafka req_timeouts)."
    );
    metrics::describe_counter!(
        KAFKA_BROKER_DISCONNECTS,
        "Connections to the broker that were lost or closed (librdkafka disconnects)."
    );
    metrics::describe_gauge!(
        KAFKA_TOPIC_BATCH_BYTES,
        Unit::Bytes,
        "Mean batch size sent to the topic in the last statistics window."
    );
    metrics::describe_gauge!(
        KAFKA_TOPIC_BATCH_MESSAGES,
        "Mean records per batch sent to the topic in the last statistics window."
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

/// Clock ticks per second in `/proc/<pid>/stat`. Linux fixes this `USER_HZ` at 100 for user
/// space on every architecture a container runs on (the kernel's own HZ may differ); Prometheus'
/// Go procfs hard-codes it likewise rather than call `sysconf`, which would need `unsafe` here.
const USER_HZ: f64 = 100.0;

/// The process's own figures under the names Prometheus' client libraries use, so existing
/// dashboards and alerts work unchanged. Rendered by hand rather than recorded through
/// `metrics`: its counters are integers, and CPU time in whole seconds would make
/// `rate(process_cpu_seconds_total[1m])` of a mostly idle gateway jump between 0 and 1/60.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub start_time_seconds: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads `/proc`; `None` where there is none (not Linux), so the page just lacks them.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let boot = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut stats = ProcessStats::parse(&stat, &status, &limits, &boot)?;
        // The directory listing holds one descriptor of its own while it is read, as it does in
        // the other client libraries.
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64);
        Some(stats)
    }

    /// The figures in `/proc/self/stat`, `/proc/self/status`, `/proc/self/limits` and
    /// `/proc/stat` (for the boot time); `None` when `stat` cannot be read as such.
    pub fn parse(stat: &str, status: &str, limits: &str, boot: &str) -> Option<ProcessStats> {
        // The command name (field 2) is in parentheses and may contain spaces and ')'.
        let (_, after_name) = stat.rsplit_once(')')?;
        // Index 0 is field 3 (state); proc(5) numbers fields from 1.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let utime = field(14)?;
        let stime = field(15)?;
        let boot_time = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        let start_time_seconds = match (boot_time, field(22)) {
            (Some(boot), Some(ticks)) => Some((boot as f64 * USER_HZ + ticks as f64) / USER_HZ),
            _ => None,
        };
        let status_kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|soft| soft.parse::<u64>().ok());
        Some(ProcessStats {
            cpu_seconds: (utime + stime) as f64 / USER_HZ,
            start_time_seconds,
            resident_memory_bytes: status_kib("VmRSS:").map(|kib| kib * 1024),
            virtual_memory_bytes: status_kib("VmSize:").map(|kib| kib * 1024),
            threads: status_kib("Threads:"),
            open_fds: None,
            max_fds,
        })
    }

    /// Appends the figures in the Prometheus text format; unknown ones are left out.
    pub fn render_into(&self, page: &mut String) {
        use std::fmt::Write;
        let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
            if let Some(value) = value {
                // Writing to a String cannot fail.
                let _ = write!(
                    page,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
                );
            }
        };
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            Some(self.cpu_seconds),
        );
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds,
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_memory_bytes.map(|v| v as f64),
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_memory_bytes.map(|v| v as f64),
        );
        metric(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            self.threads.map(|v| v as f64),
        );
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.map(|v| v as f64),
        );
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            self.max_fds.map(|v| v as f64),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Laid out as proc(5) describes them; the command name holds a space and a ')', which
    /// must not shift the fields.
    const STAT: &str = "4242 (hook bridge) x) S 1 4242 4242 0 -1 4194560 3150 0 0 0 \
        1234 567 0 0 20 0 9 0 5038 1091239936 4120 18446744073709551615 1 1 0 0 0 0 0 4096 \
        17987 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const STATUS: &str = "Name:\thookbridge\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t 1101988 kB\nVmSize:\t 1065664 kB\nVmRSS:\t   16480 kB\nThreads:\t9\n";
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max cpu time              unlimited            unlimited            seconds   \n\
        Max open files            1048576              1048576              files     \n";
    const BOOT: &str = "cpu  1 2 3 4\nintr 1 2\nctxt 99\nbtime 1795000000\nprocesses 7\n";

    #[test]
    fn process_figures_come_from_the_proc_files() {
        let stats = ProcessStats::parse(STAT, STATUS, LIMITS, BOOT).expect("parses");
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 18.01,
                start_time_seconds: Some(1_795_000_050.38),
                resident_memory_bytes: Some(16_480 * 1024),
                virtual_memory_bytes: Some(1_065_664 * 1024),
                threads: Some(9),
                open_fds: None,
                max_fds: Some(1_048_576),
            }
        );
        assert_eq!(ProcessStats::parse("garbage", "", "", ""), None);
        let partial = ProcessStats::parse(STAT, "", "", "").expect("stat alone is enough");
        assert_eq!(partial.cpu_seconds, 18.01);
        assert_eq!(partial.start_time_seconds, None);
        assert_eq!(partial.max_fds, None);
    }

    #[test]
    fn process_figures_render_in_the_text_format_without_the_unknown_ones() {
        let stats = ProcessStats {
            cpu_seconds: 0.25,
            resident_memory_bytes: Some(4096),
            open_fds: Some(12),
            ..ProcessStats::default()
        };
        let mut page = String::new();
        stats.render_into(&mut page);
        assert!(
            page.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 0.25\n"
            ),
            "{page}"
        );
        assert!(
            page.contains("\nprocess_resident_memory_bytes 4096\n"),
            "{page}"
        );
        assert!(page.contains("\nprocess_open_fds 12\n"), "{page}");
        assert!(!page.contains("process_max_fds"), "{page}");
        assert!(!page.contains("process_start_time_seconds"), "{page}");
    }

    #[test]
    fn this_process_reads_its_own_figures() {
        let stats = ProcessStats::read().expect("tests run on Linux");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let started = stats.start_time_seconds.expect("boot time and start ticks");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        assert!(stats.resident_memory_bytes.expect("VmRSS") > 1024 * 1024);
        // The listing's own descriptor at least.
        assert!(stats.open_fds.expect("fd listing") >= 1);
        assert!(stats.max_fds.expect("limits") >= stats.open_fds.expect("fd listing"));
        assert!(stats.threads.expect("Threads") >= 1);
    }

    #[test]
    fn build_info_names_the_version_commit_and_compiler() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, record_build_info);
        let page = handle.render();
        let line = page
            .lines()
            .find(|l| l.starts_with(BUILD_INFO))
            .unwrap_or_else(|| panic!("no build info in {page}"));
        assert!(
            line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
        assert!(line.contains(&format!("git_sha=\"{GIT_SHA}\"")), "{line}");
        assert!(line.ends_with("} 1"), "{line}");
        // The compiler that built this test: the build script asked the same one.
        let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .expect("rustc runs");
        let version = String::from_utf8_lossy(&rustc.stdout);
        assert!(
            version.split_whitespace().nth(1) == Some(RUSTC_VERSION),
            "{version} vs {RUSTC_VERSION}"
        );
        assert!(
            line.contains(&format!("rustc=\"{RUSTC_VERSION}\"")),
            "{line}"
        );
    }
}
