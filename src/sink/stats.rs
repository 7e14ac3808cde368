//! librdkafka's statistics as Prometheus metrics. librdkafka reports them every
//! `statistics.interval.ms` through the client context's stats callback
//! (`sink::kafka::TelemetryContext`), which [`parse`]s each report and [`record`]s it. Nothing
//! here logs a report, which is one large JSON document.
//!
//! Label values stay bounded: brokers by their id and `host:port` (the cluster's brokers; the
//! bootstrap entries, id -1, are only seeds and left out), topics only once the producer sent
//! them a batch (the gateway's own topics). Window figures (round trip, batch size) are left at
//! their last value when a window saw no request, rather than reported as 0.

use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::Statistics;
use rdkafka::statistics::{Broker, Window};

use crate::telemetry;

/// Maps one statistics report onto the gateway's `hookbridge_kafka_*` metrics.
pub fn record(stats: &Statistics) {
    metrics::gauge!(telemetry::KAFKA_QUEUE_MESSAGES).set(stats.msg_cnt as f64);
    metrics::gauge!(telemetry::KAFKA_QUEUE_BYTES).set(stats.msg_size as f64);
    metrics::gauge!(telemetry::KAFKA_QUEUE_MAX_MESSAGES).set(stats.msg_max as f64);
    metrics::gauge!(telemetry::KAFKA_QUEUE_MAX_BYTES).set(stats.msg_size_max as f64);
    for broker in stats.brokers.values().filter(|b| b.nodeid >= 0) {
        record_broker(broker);
    }
    for topic in stats.topics.values() {
        if let Some(avg) = window_avg(&topic.batchsize) {
            metrics::gauge!(telemetry::KAFKA_TOPIC_BATCH_BYTES, "topic" => topic.topic.clone())
                .set(avg);
        }
        if let Some(avg) = window_avg(&topic.batchcnt) {
            metrics::gauge!(telemetry::KAFKA_TOPIC_BATCH_MESSAGES, "topic" => topic.topic.clone())
                .set(avg);
        }
    }
}

fn record_broker(broker: &Broker) {
    let labels = [
        ("broker_id", broker.nodeid.to_string()),
        ("broker", broker.nodename.clone()),
    ];
    let up = if broker.state == "UP" { 1.0 } else { 0.0 };
    metrics::gauge!(telemetry::KAFKA_BROKER_UP, &labels).set(up);
    if let Some(rtt) = broker.rtt.as_ref().filter(|w| w.cnt > 0) {
        metrics::gauge!(telemetry::KAFKA_BROKER_RTT_AVG, &labels).set(micros(rtt.avg));
        metrics::gauge!(telemetry::KAFKA_BROKER_RTT_P99, &labels).set(micros(rtt.p99));
    }
    let counters = [
        (telemetry::KAFKA_BROKER_REQUESTS, broker.tx),
        (telemetry::KAFKA_BROKER_TX_ERRORS, broker.txerrs),
        (telemetry::KAFKA_BROKER_RX_ERRORS, broker.rxerrs),
        (telemetry::KAFKA_BROKER_RETRIES, broker.txretries),
        (telemetry::KAFKA_BROKER_TIMEOUTS, broker.req_timeouts),
    ];
    for (name, total) in counters {
        metrics::counter!(name, &labels).absolute(total);
    }
    if let Some(disconnects) = broker.disconnects {
        metrics::counter!(telemetry::KAFKA_BROKER_DISCONNECTS, &labels)
            .absolute(u64::try_from(disconnects).unwrap_or(0));
    }
}

/// librdkafka's windows hold microseconds; Prometheus wants seconds.
fn micros(value: i64) -> f64 {
    value as f64 / 1_000_000.0
}

fn window_avg(window: &Window) -> Option<f64> {
    (window.cnt > 0).then_some(window.avg as f64)
}

/// Reads a report as librdkafka sends it. A report that rdkafka cannot read is logged once (the
/// error, never the document) and otherwise skipped: it would recur at every interval.
pub fn parse(json: &[u8]) -> Option<Statistics> {
    match serde_json::from_slice::<Statistics>(json) {
        Ok(stats) => Some(stats),
        Err(error) => {
            static LOGGED: AtomicBool = AtomicBool::new(false);
            if !LOGGED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "librdkafka",
                    %error,
                    "librdkafka statistics could not be read; the hookbridge_kafka_* metrics taken from them stay unset"
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

    /// Three consecutive reports captured from librdkafka 2.12.1 (the one rdkafka-sys builds)
    /// producing to the local stack's broker: tests/fixtures/librdkafka/README.md says how.
    const QUEUED: &str = include_str!("../../tests/fixtures/librdkafka/statistics-queued.json");
    const SENT: &str = include_str!("../../tests/fixtures/librdkafka/statistics-sent.json");
    const IDLE: &str = include_str!("../../tests/fixtures/librdkafka/statistics-idle.json");

    const BROKER: &[(&str, &str)] = &[("broker_id", "1"), ("broker", "127.0.0.1:9092")];
    const TOPIC: &[(&str, &str)] = &[("topic", "stats-capture.orders")];

    /// Records `reports` in order through a recorder of its own (the global one is shared by
    /// every test) and renders it after each.
    fn pages(recorder: &PrometheusRecorder, reports: &[&str]) -> Vec<String> {
        reports
            .iter()
            .map(|json| {
                let stats = parse(json.as_bytes()).expect("rdkafka reads librdkafka's report");
                metrics::with_local_recorder(recorder, || record(&stats));
                recorder.handle().render()
            })
            .collect()
    }

    /// The value of the series `name` whose labels are exactly `labels`, if there is one.
    fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        want.sort_unstable();
        page.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(series, _)| {
                let (series_name, series_labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (*series, ""),
                };
                let mut have: Vec<&str> =
                    series_labels.split(',').filter(|l| !l.is_empty()).collect();
                have.sort_unstable();
                series_name == name && have == want
            })
            .and_then(|(_, v)| v.parse().ok())
    }

    /// A series (name and exact labels) and the value it must have, `None` for no such series.
    type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<f64>);

    fn assert_values(page: &str, expected: &[Expected<'_>]) {
        for (name, labels, want) in expected {
            assert_eq!(
                value(page, name, labels),
                *want,
                "{name}{labels:?} in\n{page}"
            );
        }
    }

    #[test]
    fn captured_reports_map_to_queue_broker_and_topic_metrics() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let pages = pages(&recorder, &[QUEUED, SENT, IDLE]);
        use crate::telemetry::*;
        // 40 records waiting out the linger; the connection's first requests measured.
        assert_values(
            &pages[0],
            &[
                (KAFKA_QUEUE_MESSAGES, &[], Some(40.0)),
                (KAFKA_QUEUE_BYTES, &[], Some(8390.0)),
                (KAFKA_QUEUE_MAX_MESSAGES, &[], Some(100_000.0)),
                (KAFKA_QUEUE_MAX_BYTES, &[], Some(1_073_741_824.0)),
                (KAFKA_BROKER_UP, BROKER, Some(1.0)),
                (KAFKA_BROKER_RTT_AVG, BROKER, Some(0.00108)),
                (KAFKA_BROKER_RTT_P99, BROKER, Some(0.001391)),
                (KAFKA_BROKER_REQUESTS, BROKER, Some(2.0)),
                (KAFKA_BROKER_TX_ERRORS, BROKER, Some(0.0)),
                (KAFKA_BROKER_RX_ERRORS, BROKER, Some(0.0)),
                (KAFKA_BROKER_RETRIES, BROKER, Some(0.0)),
                (KAFKA_BROKER_TIMEOUTS, BROKER, Some(0.0)),
                (KAFKA_BROKER_DISCONNECTS, BROKER, Some(0.0)),
                // No batch sent yet: no topic series rather than a made-up 0.
                (KAFKA_TOPIC_BATCH_BYTES, TOPIC, None),
                (KAFKA_TOPIC_BATCH_MESSAGES, TOPIC, None),
            ],
        );
        // Sent in two batches of 20 records, 358 bytes on average.
        assert_values(
            &pages[1],
            &[
                (KAFKA_QUEUE_MESSAGES, &[], Some(0.0)),
                (KAFKA_QUEUE_BYTES, &[], Some(0.0)),
                (KAFKA_BROKER_RTT_AVG, BROKER, Some(0.002769)),
                (KAFKA_BROKER_RTT_P99, BROKER, Some(0.003215)),
                (KAFKA_BROKER_REQUESTS, BROKER, Some(4.0)),
                (KAFKA_TOPIC_BATCH_BYTES, TOPIC, Some(358.0)),
                (KAFKA_TOPIC_BATCH_MESSAGES, TOPIC, Some(20.0)),
            ],
        );
        // An empty window keeps the last measured figures instead of reporting 0 s.
        assert_values(
            &pages[2],
            &[
                (KAFKA_BROKER_UP, BROKER, Some(1.0)),
                (KAFKA_BROKER_RTT_AVG, BROKER, Some(0.002769)),
                (KAFKA_BROKER_RTT_P99, BROKER, Some(0.003215)),
                (KAFKA_BROKER_REQUESTS, BROKER, Some(4.0)),
                (KAFKA_TOPIC_BATCH_BYTES, TOPIC, Some(358.0)),
            ],
        );
        // Counters are typed as such, gauges as gauges.
        assert!(pages[2].contains("# TYPE hookbridge_kafka_broker_requests_total counter"));
        assert!(pages[2].contains("# TYPE hookbridge_kafka_broker_up gauge"));
    }

    #[test]
    fn each_broker_counter_and_state_comes_from_its_own_field() {
        let mut stats = parse(SENT.as_bytes()).expect("captured report");
        let broker = stats
            .brokers
            .get_mut("127.0.0.1:9092/1")
            .expect("the captured broker");
        broker.state = "CONNECT".into();
        broker.txerrs = 3;
        broker.rxerrs = 5;
        broker.txretries = 7;
        broker.req_timeouts = 11;
        broker.disconnects = Some(13);
        // A bootstrap entry (as librdkafka lists before it learned the cluster) is a seed, not a
        // broker: no series of its own.
        let mut seed = broker.clone();
        seed.nodeid = -1;
        seed.name = "kafka.example:9092/bootstrap".into();
        seed.nodename = "kafka.example:9092".into();
        stats.brokers.insert(seed.name.clone(), seed);
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || record(&stats));
        let page = recorder.handle().render();
        use crate::telemetry::*;
        assert_values(
            &page,
            &[
                (KAFKA_BROKER_UP, BROKER, Some(0.0)),
                (KAFKA_BROKER_TX_ERRORS, BROKER, Some(3.0)),
                (KAFKA_BROKER_RX_ERRORS, BROKER, Some(5.0)),
                (KAFKA_BROKER_RETRIES, BROKER, Some(7.0)),
                (KAFKA_BROKER_TIMEOUTS, BROKER, Some(11.0)),
                (KAFKA_BROKER_DISCONNECTS, BROKER, Some(13.0)),
            ],
        );
        assert!(!page.contains("kafka.example"), "{page}");
        assert!(!page.contains("broker_id=\"-1\""), "{page}");
    }

    #[test]
    fn an_unreadable_report_is_skipped() {
        assert!(parse(b"{\"name\": 42}").is_none());
        assert!(parse(b"not json").is_none());
    }
}
