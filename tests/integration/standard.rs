//! Standard Webhooks end to end: bodies signed as the spec says (by this file, not by the
//! gateway's code) through the real broker and registry.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apache_avro::types::Value;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rdkafka::message::{Message, OwnedMessage};
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::support::*;

const SOURCE_ID: &str = "acme-billing";
/// The secret of the reference libraries' shared test vector.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Fixture name, event type, key at `/data/channel_id`.
const FIXTURES: &[(&str, &str, Option<&str>)] = &[
    ("invoice.paid", "invoice.paid", None),
    ("user.created", "user.created", None),
    (
        "channel.message_created",
        "channel.message_created",
        Some("ch_7b3e9f21d4"),
    ),
];

fn standard_fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/standard/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock after 1970")
}

/// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under the decoded secret.
fn signature(id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = BASE64
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("the secret is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// POSTs `body` to `path` as a sender does, signed at `timestamp`.
async fn post(
    app: &TestApp,
    path: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> reqwest::Response {
    let ts = timestamp.to_string();
    let sig = signature(id, timestamp, body);
    app.post_to(
        path,
        body,
        &[
            ("webhook-id", Some(id)),
            ("webhook-timestamp", Some(&ts)),
            ("webhook-signature", Some(&sig)),
        ],
    )
    .await
}

/// A gateway with one Standard Webhooks source and no other.
async fn spawn_standard(broker: &Broker, test: &str) -> TestApp {
    let prefix = unique_prefix(test);
    let mut env = base_env(broker, &prefix).await;
    for sendbird_setting in [
        "HOOKBRIDGE_SENDBIRD_APP_ID",
        "HOOKBRIDGE_SENDBIRD_API_TOKENS",
        "HOOKBRIDGE_TOPIC_PREFIX",
    ] {
        env.remove(sendbird_setting);
    }
    let toml = format!(
        r#"[[sources]]
provider = "standard"
id = "{SOURCE_ID}"
secrets = ["{SECRET}"]
topic_prefix = "{prefix}"
key_pointer = "/data/channel_id"
"#
    );
    spawn_app_with(&prefix, env, Some(&toml)).await
}

fn both_topics(app: &TestApp) -> Vec<String> {
    vec![app.topic("events"), app.topic("dlq")]
}

fn event_id_of(m: &OwnedMessage) -> String {
    let id = header(m, "hookbridge-event-id").expect("event id header");
    String::from_utf8(id.to_vec()).expect("utf-8")
}

/// The exact text of the body's `data` member, read by serde_json.
fn data_text(body: &[u8]) -> String {
    let members: BTreeMap<String, &RawValue> = serde_json::from_slice(body).expect("a JSON object");
    members["data"].get().to_owned()
}

#[tokio::test]
async fn signed_events_land_as_envelopes_keyed_by_the_pointer() {
    let broker = broker().await;
    let app = spawn_standard(&broker, "std-events").await;
    let signed_at = now_seconds();
    // id → (event type, key, body)
    let mut sent: BTreeMap<String, (&str, Option<&str>, Vec<u8>)> = BTreeMap::new();
    for (route, path) in [
        ("by-id", format!("/webhooks/standard/{SOURCE_ID}")),
        ("single", "/webhooks/standard".to_owned()),
    ] {
        for (name, event_type, key) in FIXTURES {
            let body = standard_fixture(name);
            let id = format!("msg_{route}_{}", name.replace('.', "_"));
            let response = post(&app, &path, &id, signed_at, &body).await;
            assert_eq!(response.status(), 200, "{path} {name}");
            let answer: serde_json::Value = response.json().await.expect("JSON answer");
            assert_eq!(answer["status"], "accepted", "{path} {name}");
            assert_eq!(
                answer["event_id"],
                id.as_str(),
                "the event id is webhook-id"
            );
            sent.insert(id, (event_type, *key, body));
        }
    }

    // Both topics: nothing of a valid body may land in the dead-letter topic.
    let records = consume(&both_topics(&app), sent.len(), Duration::from_secs(60)).await;
    assert_eq!(
        records.len(),
        sent.len(),
        "every accepted event is in Kafka"
    );
    for m in &records {
        let id = event_id_of(m);
        let (event_type, key, body) = sent.get(&id).expect("a record we sent");
        assert_eq!(m.topic(), app.topic("events"), "{id}");
        assert_eq!(header(m, "hookbridge-source"), Some(&b"standard"[..]));
        assert_eq!(header(m, "hookbridge-app-id"), Some(SOURCE_ID.as_bytes()));
        assert_eq!(
            header(m, "hookbridge-category"),
            Some(event_type.as_bytes())
        );
        assert_eq!(m.key(), key.map(str::as_bytes), "{id}");

        let record = decode(m.payload().expect("value")).await;
        assert_eq!(
            string_field(&record, "event_id").as_deref(),
            Some(id.as_str())
        );
        assert_eq!(
            string_field(&record, "event_type").as_deref(),
            Some(*event_type)
        );
        assert_eq!(
            string_field(&record, "source_id").as_deref(),
            Some(SOURCE_ID)
        );
        let Some(Value::TimestampMillis(received)) = record.get("received_at") else {
            panic!("received_at is timestamp-millis")
        };
        assert_eq!(m.timestamp().to_millis(), Some(*received));
        assert_eq!(
            record.get("occurred_at").map(unwrap_union),
            Some(&Value::TimestampMillis(signed_at * 1000)),
            "occurred_at is the signed webhook-timestamp"
        );
        assert_eq!(string_field(&record, "key").as_deref(), *key);
        assert_eq!(
            string_field(&record, "raw_body")
                .map(String::into_bytes)
                .as_ref(),
            Some(body),
            "{id}: raw body kept byte for byte"
        );
        assert_eq!(string_field(&record, "data"), Some(data_text(body)), "{id}");
    }
}

#[tokio::test]
async fn stale_or_forged_deliveries_are_refused_and_write_nothing() {
    let broker = broker().await;
    let app = spawn_standard(&broker, "std-refused").await;
    let path = format!("/webhooks/standard/{SOURCE_ID}");
    let body = standard_fixture("invoice.paid");
    let now = now_seconds();
    // Correctly signed, but outside the 5-minute tolerance either way (by more than the second
    // the clock may turn while the request is on its way; the boundary is a unit test).
    for (id, at) in [("msg_stale", now - 310), ("msg_future", now + 310)] {
        let response = post(&app, &path, id, at, &body).await;
        assert_eq!(response.status(), 401, "{id}");
        let answer: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(answer["error"], "unauthorized");
    }
    // A signature over another body.
    let sig = signature("msg_tampered", now, &body);
    let mut tampered = body.clone();
    tampered[20] ^= 0x01;
    let ts = now.to_string();
    let response = app
        .post_to(
            &path,
            &tampered,
            &[
                ("webhook-id", Some("msg_tampered")),
                ("webhook-timestamp", Some(&ts)),
                ("webhook-signature", Some(&sig)),
            ],
        )
        .await;
    assert_eq!(response.status(), 401);
    // No signature header at all.
    let response = app
        .post_to(
            &path,
            &body,
            &[
                ("webhook-id", Some("msg_unsigned")),
                ("webhook-timestamp", Some(&ts)),
            ],
        )
        .await;
    assert_eq!(response.status(), 401);

    // A valid delivery last: whatever the refused ones wrote would have arrived before it.
    let marker = "msg_marker";
    assert_eq!(post(&app, &path, marker, now, &body).await.status(), 200);
    let records = consume_through_marker(&both_topics(&app), marker, Duration::from_secs(2)).await;
    let ids: Vec<String> = records.iter().map(event_id_of).collect();
    assert_eq!(ids, [marker], "only the valid delivery was written");
}

#[tokio::test]
async fn authentic_bodies_that_cannot_become_records_are_dead_lettered_byte_for_byte() {
    let broker = broker().await;
    let app = spawn_standard(&broker, "std-dlq").await;
    let now = now_seconds();
    let cases: [(&str, &[u8], &str); 2] = [
        (
            "msg_not_json",
            b"{\"type\": \"invoice.paid\", \"data\": ",
            "not_json",
        ),
        ("msg_not_utf8", b"\xff\xfe{\"type\":\"x\"}", "not_utf8"),
    ];
    for (id, body, _) in &cases {
        let response = post(&app, "/webhooks/standard", id, now, body).await;
        assert_eq!(response.status(), 200, "{id}");
        let answer: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(answer["status"], "dead_lettered", "{id}");
        assert_eq!(answer["event_id"], *id);
    }
    let records = consume(&both_topics(&app), cases.len(), Duration::from_secs(30)).await;
    assert_eq!(records.len(), cases.len());
    for (id, body, reason) in &cases {
        let m = records
            .iter()
            .find(|m| event_id_of(m) == *id)
            .unwrap_or_else(|| panic!("{id}: not written"));
        assert_eq!(m.topic(), app.topic("dlq"), "{id}");
        assert_eq!(m.payload(), Some(*body), "{id}: body kept byte for byte");
        assert_eq!(header(m, "hookbridge-dlq-reason"), Some(reason.as_bytes()));
        assert_eq!(header(m, "hookbridge-source"), Some(&b"standard"[..]));
        assert_eq!(m.key(), None);
    }
}
