//! `/metrics` of a gateway producing to the real broker: librdkafka's statistics as
//! `hookbridge_kafka_*` series, `hookbridge_build_info` and the `process_*` figures; and the real
//! binary never logs a statistics report.

use std::time::Duration;

use crate::support::*;

/// Statistics every 200 ms, so a report follows the first batch quickly.
const FAST_STATISTICS: &str = "[kafka_properties]\n\"statistics.interval.ms\" = \"200\"\n";

/// The series of `name` (any labels) as (labels, value).
fn series<'a>(page: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    page.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            (labels.is_empty() || labels.starts_with('{')).then_some((labels, value.parse().ok()?))
        })
        .collect()
}

/// Scrapes `admin` until `done` holds for the page; gives up after 30 s (a hang, not a speed
/// limit: reports come every 200 ms) and returns the last page either way.
async fn scrape_until(
    client: &reqwest::Client,
    admin: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = match client.get(format!("http://{admin}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if done(&page) || tokio::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The topic's batch series: only this gateway's producer sent to its uniquely named topics.
fn batch_series(topic: &str) -> String {
    format!("hookbridge_kafka_topic_batch_messages_avg{{topic=\"{topic}\"}}")
}

#[tokio::test]
async fn metrics_show_kafka_statistics_build_info_and_process_figures() {
    let broker = broker().await;
    let prefix = unique_prefix("metrics");
    let env = base_env(&broker, &prefix).await;
    let app = spawn_app_with(&prefix, env, Some(FAST_STATISTICS)).await;
    let body = fixture("group_channel__message_send");
    let response = app.post_signed(&body).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    let batches = batch_series(&app.topic("group_channel"));
    let page = scrape_until(&app.client, &app.admin.to_string(), |page| {
        page.contains(&batches)
    })
    .await;

    // This gateway's producer reported the batch that carried the webhook.
    let batch = series(&page, &batches)
        .first()
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {batches} in\n{page}"));
    assert!(batch >= 1.0, "{batch}");
    // The broker it sent to: up, with a measured round trip, labelled by id and address.
    let up = series(&page, "hookbridge_kafka_broker_up");
    assert!(
        up.iter()
            .any(|(labels, v)| *v == 1.0 && labels.contains("broker_id=\"")),
        "{page}"
    );
    let rtt = series(&page, "hookbridge_kafka_broker_rtt_avg_seconds");
    assert!(
        rtt.iter()
            .any(|(labels, v)| *v > 0.0 && labels.contains("broker=\"")),
        "{page}"
    );
    assert!(
        !series(&page, "hookbridge_kafka_broker_rtt_p99_seconds").is_empty(),
        "{page}"
    );
    for name in [
        "hookbridge_kafka_broker_requests_total",
        "hookbridge_kafka_broker_transmit_errors_total",
        "hookbridge_kafka_broker_retries_total",
        "hookbridge_kafka_broker_request_timeouts_total",
    ] {
        assert!(
            page.contains(&format!("# TYPE {name} counter")),
            "{name} in\n{page}"
        );
    }
    let requests = series(&page, "hookbridge_kafka_broker_requests_total");
    assert!(requests.iter().any(|(_, v)| *v >= 1.0), "{page}");
    assert!(
        series(&page, "hookbridge_kafka_producer_queue_max_bytes")
            .iter()
            .any(|(_, v)| *v > 0.0),
        "{page}"
    );
    assert!(
        page.contains("# HELP hookbridge_kafka_producer_queue_messages "),
        "described: {page}"
    );

    let build = series(&page, "hookbridge_build_info");
    assert_eq!(build.len(), 1, "{page}");
    let (labels, value) = build[0];
    assert_eq!(value, 1.0);
    assert!(
        labels.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{labels}"
    );
    assert!(
        labels.contains(&format!("git_sha=\"{}\"", hookbridge::telemetry::GIT_SHA)),
        "{labels}"
    );
    assert!(labels.contains("rustc=\"1."), "{labels}");

    let rss = series(&page, "process_resident_memory_bytes");
    assert!(
        rss.first().is_some_and(|(_, v)| *v > 1024.0 * 1024.0),
        "{page}"
    );
    assert!(
        page.contains("# TYPE process_cpu_seconds_total counter"),
        "{page}"
    );
    assert!(
        series(&page, "process_open_fds")
            .first()
            .is_some_and(|(_, v)| *v >= 1.0),
        "{page}"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_reports_reach_the_binary_without_a_log_line() {
    let broker = broker().await;
    let prefix = unique_prefix("metrics-log");
    let mut env = base_env(&broker, &prefix).await;
    let config = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(config.path(), FAST_STATISTICS).expect("write config");
    env.insert(
        "HOOKBRIDGE_CONFIG".into(),
        config.path().display().to_string(),
    );
    // Everything hookbridge and its libraries log, at every level.
    env.insert("HOOKBRIDGE_LOG_LEVEL".into(), "trace".into());
    let mut serve = Serve::start(env).await;
    let (http, admin) = (serve.http.clone(), serve.admin.clone());
    let client = reqwest::Client::new();
    // Before any request, the series alerts take increase() of exist at 0 (a fresh process).
    let fresh = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("page");
    for (name, labels) in [
        (
            "hookbridge_webhook_requests_total",
            ["provider=\"sendbird\"", "outcome=\"dead_lettered\""],
        ),
        (
            "hookbridge_signature_failures_total",
            ["provider=\"sendbird\"", "reason=\"mismatch\""],
        ),
    ] {
        let at_zero = series(&fresh, name)
            .iter()
            .any(|(l, v)| *v == 0.0 && labels.iter().all(|want| l.contains(want)));
        assert!(
            at_zero,
            "{name} {labels:?} is not pre-registered at 0:\n{fresh}"
        );
    }
    let body = fixture("group_channel__message_send");
    let response = client
        .post(format!("http://{http}/webhooks/sendbird"))
        .header("content-type", "application/json")
        .header("x-sendbird-signature", sign(&body))
        .body(body)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    let batches = batch_series(&format!("{prefix}group_channel"));
    let page = scrape_until(&client, &admin, |page| page.contains(&batches)).await;
    let _ = serve.child.kill();
    let _ = serve.child.wait();
    assert!(
        page.contains(&batches),
        "no statistics report reached /metrics:\n{page}"
    );
    let logs = serve.logs();
    assert!(logs.contains("hookbridge ready"), "the log was captured");
    for telltale in ["msg_cnt", "Client stats", "statistics could not be read"] {
        assert!(
            !logs.contains(telltale),
            "a statistics report was logged ({telltale:?}):\n{logs}"
        );
    }
}
