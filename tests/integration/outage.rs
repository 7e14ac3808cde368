//! Kafka down: the gateway must answer 503, never 200, and recover when the broker returns.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::message::Message;
use sha2::{Digest, Sha256};

use crate::support::*;

async fn readyz(app: &TestApp) -> u16 {
    app.client
        .get(format!("http://{}/readyz", app.admin))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"category":"group_channel:message_send","app_id":"{APP_ID}","channel":{{"channel_url":"outage_{i}"}},"payload":{{"message_id":{i},"message":"during outage"}}}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn a_stopped_broker_makes_the_gateway_answer_503_never_200() {
    // Exclusive: no other test runs while the broker is down.
    let broker = broker_exclusive().await;
    let stack = broker.stack;
    let prefix = unique_prefix("outage");
    let mut env = base_env(&broker, &prefix).await;
    env.insert("HOOKBRIDGE_PUBLISH_TIMEOUT".into(), "2s".into());
    let app = spawn_app_with(&prefix, env, None).await;

    let mut accepted = BTreeSet::new();
    let before = event(0);
    assert_eq!(app.post_signed(&before).await.status(), 200);
    accepted.insert(hex::encode(Sha256::digest(&before)));

    stack.stop_broker().await;
    // Observe first, assert after restarting the broker, so a failure never leaves it stopped.
    let mut during = Vec::new();
    for i in 1..=4 {
        let body = event(i);
        let started = std::time::Instant::now();
        let response = app.post_signed(&body).await;
        let retry_after = response.headers().get("retry-after").cloned();
        during.push((response.status().as_u16(), retry_after, started.elapsed()));
        if response.status() == 200 {
            accepted.insert(hex::encode(Sha256::digest(&body)));
        }
    }
    let mut ready_during = 200;
    for _ in 0..40 {
        ready_during = readyz(&app).await;
        if ready_during == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.start_broker().await;

    for (status, retry_after, took) in &during {
        assert_eq!(
            *status, 503,
            "answered {status} while the broker was stopped"
        );
        assert!(retry_after.is_some(), "503 carries Retry-After");
        assert!(
            *took < Duration::from_secs(4),
            "answered within the deadline, took {took:?}"
        );
    }
    assert_eq!(ready_during, 503, "readiness reports the broker outage");

    // The gateway recovers by itself once the broker is back.
    let mut recovered: Option<String> = None;
    for i in 100..160 {
        let body = event(i);
        let status = app.post_signed(&body).await.status();
        if status == 200 {
            let id = hex::encode(Sha256::digest(&body));
            accepted.insert(id.clone());
            recovered = Some(id);
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let recovered = recovered.expect("gateway accepted again after the broker returned");

    // Everything answered 200 is in Kafka (503'd events may also be there: at-least-once).
    let records = consume_through_marker(
        &[app.topic("group_channel")],
        &recovered,
        Duration::from_secs(3),
    )
    .await;
    let stored: BTreeSet<String> = records
        .iter()
        .filter_map(|m| header(m, "hookbridge-event-id"))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        accepted.is_subset(&stored),
        "answered 200 but missing from Kafka: {:?}",
        accepted.difference(&stored).collect::<Vec<_>>()
    );
    assert!(
        records
            .iter()
            .all(|m| m.topic() == app.topic("group_channel"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channels_events_keep_their_order_while_many_wait_on_a_stalled_broker() {
    let broker = broker_exclusive().await;
    let stack = broker.stack;
    let prefix = unique_prefix("stall");
    let mut env = base_env(&broker, &prefix).await;
    // The whole stall must fit in one deadline (Sendbird waits 5 s).
    env.insert("HOOKBRIDGE_PUBLISH_TIMEOUT".into(), "4900ms".into());
    let app = std::sync::Arc::new(spawn_app_with(&prefix, env, None).await);
    let channel = "sendbird_group_channel_stall";
    let body = |i: usize| {
        format!(
            r#"{{"category":"group_channel:message_send","app_id":"{APP_ID}","channel":{{"channel_url":"{channel}"}},"payload":{{"message_id":{i},"message":"m{i}"}}}}"#
        )
        .into_bytes()
    };
    assert_eq!(app.post_signed(&body(0)).await.status(), 200, "warm-up");

    // With the broker frozen, every request below is in flight at once; they start 60 ms
    // apart, so they are produced in order and must be stored in that order.
    stack.freeze_broker(true).await;
    let n = 20;
    let mut tasks = Vec::new();
    for i in 1..=n {
        let app = app.clone();
        let b = body(i);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60 * i as u64)).await;
            app.post_signed(&b).await.status().as_u16()
        }));
    }
    tokio::time::sleep(Duration::from_millis(60 * n as u64 + 500)).await;
    stack.freeze_broker(false).await;
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let records = consume(
        &[app.topic("group_channel")],
        n + 1,
        Duration::from_secs(30),
    )
    .await;
    let mut ids = Vec::new();
    for m in &records {
        let record = decode(m.payload().expect("value")).await;
        let Some(apache_avro::types::Value::Union(1, message)) = record.get("message") else {
            panic!("message record")
        };
        let apache_avro::types::Value::Record(fields) = message.as_ref() else {
            panic!("record")
        };
        let id = fields
            .iter()
            .find(|(k, _)| k == "message_id")
            .map(|(_, v)| unwrap_union(v));
        let Some(apache_avro::types::Value::Long(id)) = id else {
            panic!("message_id")
        };
        ids.push(*id);
    }
    assert_eq!(
        ids,
        (0..=n as i64).collect::<Vec<_>>(),
        "stored in the order produced"
    );
}
