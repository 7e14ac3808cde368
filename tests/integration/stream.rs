//! Stream Chat against the real Kafka and registry: bodies signed as Stream signs them land in
//! their family topics keyed by channel and decode with the registered schema; a gzip body is
//! recorded as the JSON it carries; a request naming another app's API key writes nothing; an
//! authentic body that is not an event is dead-lettered as received.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use apache_avro::types::Value;
use hookbridge::providers::stream::ApiSecret;
use rdkafka::message::{Message, OwnedMessage};

use crate::support::*;

const SOURCE_ID: &str = "chat-app";
const SECRET: &str = "stream-integration-api-secret";
const API_KEY: &str = "k7x2streamkey";
const ROUTE: &str = "/webhooks/stream/chat-app";

/// Every fixture with its family topic suffix and record key, written out.
const EXPECTED: &[(&str, &str, Option<&str>)] = &[
    (
        "message.new",
        "message",
        Some("messaging:fun-d5f396e3-fbaf-469c-9b45-8837b4f75baa"),
    ),
    ("message.updated", "message", Some("messaging:fun")),
    ("message.deleted", "message", Some("messaging:fun")),
    ("message.read", "message", Some("messaging:fun")),
    ("reaction.new", "reaction", Some("messaging:fun")),
    ("reaction.deleted", "reaction", Some("messaging:fun")),
    ("member.added", "member", Some("messaging:fun")),
    ("member.updated", "member", Some("messaging:fun")),
    ("member.removed", "member", Some("messaging:fun")),
    (
        "channel.created",
        "channel",
        Some("messaging:custom-channel-7-channel-chat-1"),
    ),
    ("channel.updated", "channel", Some("messaging:fun")),
    ("channel.deleted", "channel", Some("messaging:fun")),
    ("user.updated", "user", Some("thierry")),
    (
        "user.deleted",
        "user",
        Some("bfdf5075-fe36-4b84-9732-39c09843dfd8"),
    ),
    (
        "user.banned",
        "user",
        Some("2a653a76-ae41-4608-8092-5ce9adf5e608"),
    ),
    (
        "user.messages.deleted",
        "user",
        Some("messaging:055e05e7-d0ed-4563-962e-db6b21ce2a5c"),
    ),
    ("call.created", "other", None),
];

const FAMILIES: &[&str] = &["message", "channel", "member", "user", "reaction", "other"];

/// A gateway with one Stream source (and no Sendbird app), its topics under a prefix of its own.
async fn spawn_stream_app(broker: &Broker, test: &str) -> TestApp {
    let prefix = unique_prefix(test);
    let mut env = base_env(broker, &prefix).await;
    for legacy in [
        "HOOKBRIDGE_SENDBIRD_APP_ID",
        "HOOKBRIDGE_SENDBIRD_API_TOKENS",
        "HOOKBRIDGE_TOPIC_PREFIX",
    ] {
        env.remove(legacy);
    }
    let toml = format!(
        r#"
[[sources]]
provider = "stream"
id = "{SOURCE_ID}"
secrets = ["{SECRET}"]
topic_prefix = "{prefix}"
api_key = "{API_KEY}"
"#
    );
    spawn_app_with(&prefix, env, Some(&toml)).await
}

fn stream_fixture(event_type: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/stream/{event_type}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Stream's `X-Signature`: hex HMAC-SHA256 of the uncompressed JSON under the API secret.
fn signature(json: &[u8]) -> String {
    ApiSecret::parse(SECRET).expect("valid secret").sign(json)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// POSTs `body` with Stream's headers; `signed` is what the signature covers.
async fn post_stream(
    app: &TestApp,
    path: &str,
    body: &[u8],
    signed: &[u8],
    webhook_id: &str,
    api_key: Option<&str>,
    compressed: bool,
) -> reqwest::Response {
    let sig = signature(signed);
    let mut headers = vec![
        ("x-signature", Some(sig.as_str())),
        ("x-webhook-id", Some(webhook_id)),
        ("x-webhook-attempt", Some("1")),
        ("x-api-key", api_key),
    ];
    if compressed {
        headers.push(("content-encoding", Some("gzip")));
    }
    app.post_to(path, body, &headers).await
}

fn all_stream_topics(app: &TestApp) -> Vec<String> {
    FAMILIES
        .iter()
        .chain(&["dlq"])
        .map(|f| app.topic(f))
        .collect()
}

fn text_header(m: &OwnedMessage, name: &str) -> Option<String> {
    header(m, name).map(|v| String::from_utf8(v.to_vec()).expect("utf-8 header"))
}

#[tokio::test]
async fn every_stream_event_lands_in_its_family_topic_keyed_by_channel() {
    let broker = broker().await;
    let app = spawn_stream_app(&broker, "stream-families").await;
    let dir = format!("{}/tests/fixtures/stream", env!("CARGO_MANIFEST_DIR"));
    let on_disk = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(on_disk, EXPECTED.len(), "every fixture is in the table");

    let mut sent = BTreeMap::new();
    for (i, (event_type, _, _)) in EXPECTED.iter().enumerate() {
        let body = stream_fixture(event_type);
        let webhook_id = format!("123e4567-e89b-12d3-a456-{i:012}");
        // The provider's own route serves its only source too.
        let path = if i == 0 { "/webhooks/stream" } else { ROUTE };
        let response =
            post_stream(&app, path, &body, &body, &webhook_id, Some(API_KEY), false).await;
        assert_eq!(response.status(), 200, "{event_type}");
        let answer: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(answer["status"], "accepted", "{event_type}");
        assert_eq!(answer["event_id"], webhook_id.as_str(), "{event_type}");
        sent.insert(webhook_id, (*event_type, body));
    }

    // Every topic including the DLQ: nothing of a valid body may land there.
    let records = consume(
        &all_stream_topics(&app),
        sent.len(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        records.len(),
        sent.len(),
        "every accepted event is in Kafka"
    );
    for m in &records {
        let event_id = text_header(m, "hookbridge-event-id").expect("event id header");
        let (event_type, body) = sent.get(&event_id).expect("a record we sent");
        let (_, family, key) = EXPECTED
            .iter()
            .find(|(t, _, _)| t == event_type)
            .expect("in the table");
        assert_eq!(m.topic(), app.topic(family), "{event_type}");
        assert_eq!(
            m.key().map(|k| std::str::from_utf8(k).expect("utf-8 key")),
            *key,
            "{event_type}"
        );
        assert_eq!(
            text_header(m, "hookbridge-category").as_deref(),
            Some(*event_type)
        );
        assert_eq!(
            text_header(m, "hookbridge-app-id").as_deref(),
            Some(SOURCE_ID)
        );
        assert_eq!(
            text_header(m, "hookbridge-source").as_deref(),
            Some("stream")
        );

        let record = decode(m.payload().expect("value")).await;
        assert_eq!(string_field(&record, "event_id"), Some(event_id.clone()));
        assert_eq!(string_field(&record, "type").as_deref(), Some(*event_type));
        assert_eq!(
            string_field(&record, "source_id").as_deref(),
            Some(SOURCE_ID)
        );
        assert_eq!(
            string_field(&record, "raw_body")
                .as_deref()
                .map(str::as_bytes),
            Some(body.as_slice()),
            "{event_type}: raw body kept byte for byte"
        );
        assert_eq!(record.get("compressed"), Some(&Value::Boolean(false)));
        let json: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(
            string_field(&record, "cid").as_deref(),
            json["cid"].as_str(),
            "{event_type}"
        );
        if json["cid"].is_string() {
            assert_eq!(
                string_field(&record, "cid").as_deref(),
                *key,
                "{event_type}"
            );
            assert!(
                string_field(&record, "channel_type").is_some(),
                "{event_type}"
            );
            assert!(
                string_field(&record, "channel_id").is_some(),
                "{event_type}"
            );
        }
        let Some(Value::TimestampMillis(received)) = record.get("received_at") else {
            panic!("received_at is timestamp-millis")
        };
        assert_eq!(m.timestamp().to_millis(), Some(*received));
        assert!(
            matches!(
                record.get("occurred_at").map(unwrap_union),
                Some(Value::TimestampMillis(_))
            ),
            "{event_type}: occurred_at from created_at"
        );
    }
}

#[tokio::test]
async fn a_gzip_body_signed_over_its_json_is_recorded_as_the_json() {
    let broker = broker().await;
    let app = spawn_stream_app(&broker, "stream-gzip").await;
    let json = stream_fixture("message.new");
    let body = gzip(&json);
    let response = post_stream(&app, ROUTE, &body, &json, "gz-1", Some(API_KEY), true).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    assert_eq!(answer["event_id"], "gz-1");

    // Signed over the compressed bytes, as Stream never does: refused.
    let sig = signature(&body);
    let response = app
        .post_to(
            ROUTE,
            &body,
            &[
                ("x-signature", Some(&sig)),
                ("x-webhook-id", Some("gz-forged")),
                ("x-api-key", Some(API_KEY)),
                ("content-encoding", Some("gzip")),
            ],
        )
        .await;
    assert_eq!(response.status(), 401);

    let records = consume(&[app.topic("message")], 1, Duration::from_secs(60)).await;
    assert_eq!(records.len(), 1);
    let m = &records[0];
    assert_eq!(
        text_header(m, "hookbridge-event-id").as_deref(),
        Some("gz-1")
    );
    assert_eq!(
        m.key(),
        Some(&b"messaging:fun-d5f396e3-fbaf-469c-9b45-8837b4f75baa"[..])
    );
    let record = decode(m.payload().expect("value")).await;
    assert_eq!(
        string_field(&record, "raw_body")
            .as_deref()
            .map(str::as_bytes),
        Some(json.as_slice()),
        "the record holds the signed JSON"
    );
    assert_eq!(record.get("compressed"), Some(&Value::Boolean(true)));
    assert_eq!(
        string_field(&record, "type").as_deref(),
        Some("message.new")
    );
}

#[tokio::test]
async fn a_request_naming_another_api_key_is_refused_and_writes_nothing() {
    let broker = broker().await;
    let app = spawn_stream_app(&broker, "stream-apikey").await;
    let body = stream_fixture("message.new");
    for api_key in [Some("another-apps-key"), None] {
        let response = post_stream(&app, ROUTE, &body, &body, "refused", api_key, false).await;
        assert_eq!(response.status(), 401, "{api_key:?}");
    }
    let marker = "marker-after-refusals";
    let response = post_stream(&app, ROUTE, &body, &body, marker, Some(API_KEY), false).await;
    assert_eq!(response.status(), 200);
    let seen =
        consume_through_marker(&all_stream_topics(&app), marker, Duration::from_secs(2)).await;
    let ids: Vec<Option<String>> = seen
        .iter()
        .map(|m| text_header(m, "hookbridge-event-id"))
        .collect();
    assert_eq!(
        ids,
        vec![Some(marker.to_owned())],
        "only the marker was written"
    );
}

#[tokio::test]
async fn authentic_bodies_that_are_not_events_are_dead_lettered_as_received() {
    let broker = broker().await;
    let app = spawn_stream_app(&broker, "stream-poison").await;
    let not_json = b"this is not JSON".to_vec();
    let no_type = br#"{"cid":"messaging:fun"}"#.to_vec();
    // (body as sent, what the signature covers, reason, webhook id)
    let cases: Vec<(Vec<u8>, Vec<u8>, &str, &str)> = vec![
        (not_json.clone(), not_json.clone(), "not_json", "dlq-1"),
        (no_type.clone(), no_type.clone(), "no_type", "dlq-2"),
        // Compressed: the dead letter keeps the compressed bytes, as received.
        (gzip(&not_json), not_json.clone(), "not_json", "dlq-3"),
    ];
    for (body, signed, _, id) in &cases {
        let compressed = body != signed;
        let response = post_stream(&app, ROUTE, body, signed, id, Some(API_KEY), compressed).await;
        assert_eq!(response.status(), 200, "{id}");
        let answer: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(answer["status"], "dead_lettered", "{id}");
        assert_eq!(answer["event_id"], *id);
    }
    let records = consume(&[app.topic("dlq")], cases.len(), Duration::from_secs(60)).await;
    assert_eq!(records.len(), cases.len());
    for (body, _, reason, id) in &cases {
        let m = records
            .iter()
            .find(|m| text_header(m, "hookbridge-event-id").as_deref() == Some(*id))
            .unwrap_or_else(|| panic!("{id}: not dead-lettered"));
        assert_eq!(m.payload(), Some(body.as_slice()), "{id}: byte for byte");
        assert_eq!(
            text_header(m, "hookbridge-dlq-reason").as_deref(),
            Some(*reason)
        );
        assert_eq!(
            text_header(m, "hookbridge-source").as_deref(),
            Some("stream")
        );
        assert_eq!(m.key(), None);
    }
}
